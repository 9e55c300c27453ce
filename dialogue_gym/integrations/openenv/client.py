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

:func:`server_sessions` reads the server's session count (``GET /sessions``).

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
from typing import Any

import numpy as np
from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient
from openenv.core.env_server.types import Action
from websockets.exceptions import ConnectionClosed

from dialogue_gym.integrations.openenv.models import DialogueObservation, DialogueState

__all__ = ["DialogueEnvClient", "DialogueServerError", "server_sessions"]


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
