"""The Python client of the OpenEnv server: OpenEnv's WebSocket ``EnvClient`` with our types.

:class:`DialogueEnvClient` is an ``openenv.core.EnvClient``: async by default (``async with``,
``await env.reset(seed=0)``, ``await env.step(action)``), synchronous through ``.sync()``.
One client is one session on the server, so one simulated user. On top of OpenEnv's API it

- takes a bare ``int`` (a strategy) or ``str`` (an utterance) as well as the typed actions;
- raises :class:`DialogueServerError` (a ``RuntimeError``, as OpenEnv's own) with the error
  response's ``code``, the env's message and, for a malformed action, pydantic's complaints;
- gives the Gymnasium form of a turn: :meth:`~DialogueEnvClient.gym_reset` returns
  ``(obs, info)`` and :meth:`~DialogueEnvClient.gym_step` ``(obs, reward, terminated,
  truncated, info)``, the observation as ``float32`` arrays exactly as in process.

:class:`RemoteDialogueEnv` is one session in Gymnasium's blocking form (``reset``/``step``/
``close``, as an in-process env), for code written against ``gym.make``'s env, such as the TRL
adapter's ``base_url=`` forms. :func:`server_sessions` reads the server's session count and
settings (``GET /sessions``); :func:`check_server` checks that a server plays the env and the
settings a client expects, with one clear error if not.

Example (``url`` is a running server's, e.g. ``dialogue-gym serve``'s ``http://127.0.0.1:8000``):

    >>> with DialogueEnvClient(base_url=url).sync() as env:  # doctest: +SKIP
    ...     result = env.reset(seed=0)
    ...     result = env.step(StrategyAction(strategy=0))  # or env.step(0)
    ...     print(result.observation.info["user_utterance"], result.reward, result.done)
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np
from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from openenv.core.env_server.types import Action
from websockets.exceptions import ConnectionClosed

from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.integrations.openenv.environment import SESSION_CLOSED
from dialogue_gym.integrations.openenv.models import DialogueObservation, DialogueState, jsonable

__all__ = [
    "DialogueEnvClient",
    "DialogueServerError",
    "RemoteDialogueEnv",
    "check_server",
    "server_sessions",
]


class DialogueServerError(RuntimeError):
    """An error response of the server: the session is still there, and usable.

    Attributes:
        code: OpenEnv's error code: ``EXECUTION_ERROR`` (the env raised: a bad action, a step
            after the end...), ``VALIDATION_ERROR`` (the action's JSON did not fit its type),
            ``CAPACITY_REACHED`` (no session: the server is at its limit; the server closes
            that connection), ``SESSION_ERROR``, ``FACTORY_ERROR``...
        message: The server's message: for ``EXECUTION_ERROR`` the env's own.
        details: Everything else the response carried (pydantic's ``errors``, the session
            counts of ``CAPACITY_REACHED``).

    Example:
        >>> err = DialogueServerError.from_response(
        ...     {"message": "Invalid message", "code": "VALIDATION_ERROR",
        ...      "errors": [{"loc": ["strategy"], "msg": "Field required"}]})
        >>> err.code, str(err)
        ('VALIDATION_ERROR', 'Invalid message: strategy: Field required (code: VALIDATION_ERROR)')
    """

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.details = dict(details or {})
        problems = [
            f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in self.details.get("errors", ())
            if isinstance(error, dict)
        ]
        text = f"{message}: {'; '.join(problems)}" if problems else message
        super().__init__(f"{text} (code: {code})")

    @classmethod
    def from_response(cls, data: dict[str, Any]) -> DialogueServerError:
        """The error of an OpenEnv error response's ``data``."""
        details = {k: v for k, v in data.items() if k not in ("code", "message")}
        code = data.get("code", "UNKNOWN")
        return cls(str(getattr(code, "value", code)), str(data.get("message", "")), details)


class DialogueEnvClient(EnvClient):
    """A session with a ``dialogue-gym serve`` server (either env id), over WebSocket.

    Args:
        base_url: The server's URL, ``http://host:port`` or ``ws://host:port``.
        **kwargs: OpenEnv's ``EnvClient`` options: ``connect_timeout_s``,
            ``message_timeout_s`` (60 s by default: raise it for an LLM voice on a slow
            machine), ``max_message_size_mb``.

    ``reset(seed=None, episode_id=None, options=None)`` and ``step(action)`` return OpenEnv's
    ``StepResult`` whose ``observation`` is a :class:`DialogueObservation`; ``state()`` a
    :class:`DialogueState`. ``close()`` (or leaving the ``with`` block) ends the session.
    """

    def _step_payload(self, action: Action | int | str) -> dict[str, Any]:
        """The JSON of a step: a typed action, or a bare strategy index or utterance."""
        if isinstance(action, Action):
            payload = action.model_dump()
            if not payload.get("metadata"):
                payload.pop("metadata", None)
            return payload
        if isinstance(action, str):
            return {"utterance": action}
        if isinstance(action, int | np.integer) and not isinstance(action, bool):
            return {"strategy": int(action)}
        raise TypeError(
            f"an action is a StrategyAction or UtteranceAction, an int (a strategy) or a str "
            f"(an utterance), got {type(action).__name__}"
        )

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[DialogueObservation]:
        observation = DialogueObservation(
            **payload.get("observation", {}),
            reward=payload.get("reward"),
            done=payload.get("done", False),
        )
        return StepResult(
            observation=observation, reward=payload.get("reward"), done=observation.done
        )

    def _parse_state(self, payload: dict[str, Any]) -> DialogueState:
        return DialogueState.model_validate(payload)

    async def _send_and_receive(self, message: dict[str, Any]) -> dict[str, Any]:
        """OpenEnv's exchange, with the error response kept whole as a DialogueServerError."""
        # A server at capacity answers the connection with an error and closes it: sending
        # fails, but the error is still waiting to be read, and says more than "closed".
        with contextlib.suppress(ConnectionClosed):
            await self._send(message)
        try:
            response = await self._receive()
        except ConnectionClosed as err:
            raise ConnectionError(
                f"the server closed the session's connection ({err}): connect again"
            ) from err
        if response.get("type") == "error":
            raise DialogueServerError.from_response(response.get("data", {}))
        return response

    async def gym_reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """``reset`` in Gymnasium's form: ``(obs, info)`` (``sync()`` makes it blocking).

        Args:
            **kwargs: ``seed``, ``episode_id``, ``options``, as :meth:`reset`.
        """
        result = await self.reset(**kwargs)
        return result.observation.to_gym(), result.observation.info

    async def gym_step(
        self, action: Action | int | str
    ) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """``step`` in Gymnasium's form: ``(obs, reward, terminated, truncated, info)``."""
        result = await self.step(action)
        obs = result.observation
        reward = 0.0 if result.reward is None else float(result.reward)
        return obs.to_gym(), reward, obs.terminated, obs.truncated, obs.info


def server_sessions(base_url: str, timeout: float = 10.0) -> dict[str, Any]:
    """The server's sessions: ``active_sessions``, ``max_sessions``, ``available_slots`` and
    ``idle_timeout_s`` (``GET /sessions``).

    Args:
        base_url: The server's ``http://host:port``.
        timeout: Seconds to wait for the answer.
    """
    url = base_url.rstrip("/").replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    with urllib.request.urlopen(f"{url}/sessions", timeout=timeout) as response:
        return json.loads(response.read())


def check_server(
    base_url: Any,
    env_id: str | None = None,
    expected: Mapping[str, Any] | None = None,
    owner: str = "RemoteDialogueEnv",
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Check that ``base_url`` is a ``dialogue-gym serve`` server of ``env_id`` whose envs are
    made with the ``expected`` settings; return its ``GET /sessions`` answer.

    ``expected`` holds ``gym.make``'s arguments as a client would pass them in process
    (``reward``, ``reward_kwargs``, ``voice``, ``max_turns``...); each must equal the server's
    (its ``env_kwargs``, which include the env's defaults), compared in JSON form. A server
    serves one configuration, set when it starts (``dialogue-gym serve --reward ... --voice
    ...``), so a mismatch is an error here, not a silently different user.

    Args:
        base_url: The server's ``http://host:port`` (or ``ws://``).
        env_id: The env id the server must serve (``None``: any).
        expected: The settings the server's envs must have.
        owner: Who is asking: the errors name ``{owner}.base_url`` or ``{owner}.{setting}``.
        timeout: Seconds to wait for the server's answer.

    Returns:
        The server's ``GET /sessions`` answer (``env_id``, ``env_kwargs``, session counts).

    Raises:
        InvalidArgument: ``base_url`` is not a URL, no server answers there, it serves
            another env id, or a setting differs from the server's (the message names the
            setting, both values and the ``dialogue-gym serve`` option that sets it).
    """
    if not isinstance(base_url, str) or not base_url.startswith(
        ("http://", "https://", "ws://", "wss://")
    ):
        raise InvalidArgument(
            owner, "base_url", base_url, "must be a server's URL, 'http://HOST:PORT'"
        )
    start = "dialogue-gym serve" + (f" --env {env_id}" if env_id else "")
    try:
        status = server_sessions(base_url, timeout=timeout)
    except (OSError, ValueError) as err:  # refused, timed out, not HTTP, not JSON
        raise InvalidArgument(
            owner,
            "base_url",
            base_url,
            f"no dialogue-gym server answers there ({err}); start one with `{start} "
            "--voice template --port PORT`",
        ) from None
    if not isinstance(status, dict) or "env_id" not in status:
        raise InvalidArgument(
            owner, "base_url", base_url, "answers GET /sessions, but not as dialogue-gym serve"
        )
    if env_id is not None and status["env_id"] != env_id:
        raise InvalidArgument(
            owner,
            "base_url",
            base_url,
            f"serves {status['env_id']}; this needs a server of {env_id}: `{start}`",
        )
    served = status.get("env_kwargs") or {}
    for key, value in (expected or {}).items():
        if key not in served:
            raise InvalidArgument(
                owner,
                key,
                value,
                f"the server at {base_url} does not publish a setting {key!r} (it has: "
                f"{', '.join(sorted(served)) or 'none'}): leave it out with base_url=",
            )
        want = jsonable(value)
        if key == "backend" and isinstance(want, str):
            want = want.split(":", 1)[0]  # the server publishes a backend's kind only
        if want != served[key]:
            option = "--" + key.replace("_", "-")
            raise InvalidArgument(
                owner,
                key,
                value,
                f"the server at {base_url} makes its envs with {key}={served[key]!r}; ask for "
                f"the server's value, or restart it with `{start} {option} ...`",
            )
    return status


class RemoteDialogueEnv:
    """One session with a ``dialogue-gym serve`` server, in Gymnasium's blocking form.

    ``reset`` and ``step`` take and return what the in-process env's do: ``(obs, info)`` and
    ``(obs, reward, terminated, truncated, info)``, the observation as ``float32`` arrays,
    ``info`` in its JSON form (tuples as lists, the transcript ``info["messages"]`` as a list of
    message dicts). It has no spaces and no wrappers: the server's env (its reward wrapper
    included) is configured when the server starts.

    The session opens on the first ``reset`` and is kept for the next episodes. A ``reset``
    whose session has gone (closed by the server's idle timeout, or its connection dropped)
    connects again once, so a trainer that pauses longer than the idle timeout between
    rollouts carries on; a ``step`` never does (the conversation it belongs to is gone), it
    raises. ``close()`` ends the session; a later ``reset`` opens a new one.

    Args:
        base_url: The server's ``http://host:port``.
        **client_kwargs: :class:`DialogueEnvClient`'s options (``message_timeout_s``...).

    Example (``url`` is a running server's):
        >>> with RemoteDialogueEnv(url) as env:  # doctest: +SKIP
        ...     obs, info = env.reset(seed=0, options={"card": 3})
        ...     obs, reward, terminated, truncated, info = env.step(0)
    """

    def __init__(self, base_url: str, **client_kwargs: Any) -> None:
        self.base_url = base_url
        self.client_kwargs = client_kwargs
        self._client: Any = None  # OpenEnv's SyncEnvClient over a DialogueEnvClient

    @property
    def connected(self) -> bool:
        """A session is open (or was, until the server closed it)."""
        return self._client is not None

    def _session(self) -> Any:
        if self._client is None:
            client = DialogueEnvClient(base_url=self.base_url, **self.client_kwargs).sync()
            client.connect()
            self._client = client
        return self._client

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a conversation: the server's env's ``reset(seed=seed, options=options)``.

        Raises:
            DialogueServerError: The server's error (an unknown card: the env's message).
            ConnectionError: No session could be opened.
        """
        reopened = self._client is None
        try:
            return self._session().gym_reset(seed=seed, options=options)
        except (ConnectionError, DialogueServerError) as err:
            gone = isinstance(err, ConnectionError) or err.message.startswith(SESSION_CLOSED)
            if reopened or not gone:
                raise
        self.close()  # the old session is gone: a new one, once
        return self._session().gym_reset(seed=seed, options=options)

    def step(self, action: Action | int | str) -> tuple[dict[str, Any], float, bool, bool, dict]:
        """Say one turn: ``(obs, reward, terminated, truncated, info)``.

        Raises:
            DialogueServerError: The env's error (a bad action, a step after the end).
            RuntimeError: No ``reset`` yet in this session.
        """
        if self._client is None:
            raise RuntimeError("reset() the environment before step(): no session is open")
        return self._client.gym_step(action)

    def state(self) -> DialogueState:
        """The session's episode (OpenEnv's ``state()``)."""
        if self._client is None:
            raise RuntimeError("reset() the environment first: no session is open")
        return self._client.state()

    def close(self) -> None:
        """End the session (the server frees it at once); safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):  # a server already gone has nothing to free
                client.close()

    def __enter__(self) -> RemoteDialogueEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteDialogueEnv({self.base_url!r}, connected={self.connected})"
