"""The server: OpenEnv's HTTP + WebSocket server over :class:`DialogueEnvironment` sessions.

:func:`make_app` builds the FastAPI app exactly as OpenEnv's ``create_app`` does without its
optional Gradio page (``create_fastapi_app``: a FastAPI app on which OpenEnv's
``HTTPEnvServer`` registers its routes), and keeps the ``HTTPEnvServer`` to publish its session
count at ``GET /sessions``. OpenEnv's routes:

- ``WS /ws``: a session (what :class:`~dialogue_gym.integrations.openenv.client.DialogueEnvClient`
  uses): messages ``reset``, ``step``, ``state``, ``close``; each connection gets its own
  :class:`DialogueEnvironment`, so its own simulated user;
- ``GET /health``, ``GET /schema`` (the action, observation and state JSON schemas),
  ``GET /metadata``;
- ``POST /reset``, ``POST /step``, ``GET /state``: OpenEnv's stateless HTTP forms, a fresh
  environment per request (a conversation needs the WebSocket session). An env error there
  is answered ``400`` (bad argument) or ``409`` (no episode), with the env's message.

Sessions are bounded by ``max_sessions`` (OpenEnv's ``max_concurrent_envs``: one more
connection gets a ``CAPACITY_REACHED`` error and is closed) and ``idle_timeout`` (OpenEnv's
``session_timeout``: its reaper closes a session with no ``reset``/``step`` for that long,
checking every ``max(idle_timeout / 4, 5)`` seconds). A client that disconnects, cleanly or
not (the OS closes a killed process's socket), frees its session at once.

Example:
    >>> from dialogue_gym.integrations.openenv.client import server_sessions
    >>> app = make_app("EmpathyDialogue-v0", {"voice": "template"}, max_sessions=8)
    >>> with running_server(app) as url:
    ...     server_sessions(url)["max_sessions"]
    8
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import gymnasium as gym
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from openenv.core.env_server.http_server import HTTPEnvServer
from openenv.core.env_server.types import ConcurrencyConfig
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

import dialogue_gym
from dialogue_gym.integrations.openenv.environment import DialogueEnvironment
from dialogue_gym.integrations.openenv.models import DialogueObservation, action_class

__all__ = [
    "DEFAULT_FIRST_MESSAGE_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_SESSIONS",
    "SessionsStatus",
    "make_app",
    "running_server",
    "serve",
    "served_settings",
]

#: Sessions at once unless told otherwise (TRL needs at least its generation batch size).
DEFAULT_MAX_SESSIONS = 64
#: Seconds without a ``reset`` or ``step`` after which a session is closed.
DEFAULT_IDLE_TIMEOUT = 300.0
#: Seconds a new WebSocket may stay silent before its first message: a connection that never
#: resets would otherwise hold a session slot for the whole idle timeout.
DEFAULT_FIRST_MESSAGE_TIMEOUT = 30.0
#: The longest value an error message echoes back; a longer field is named by its size.
ECHO_LIMIT = 200


class SessionsStatus(BaseModel):
    """``GET /sessions``: how many sessions the server holds, and its limits."""

    active_sessions: int = Field(description="Open sessions (WebSocket connections) now.")
    max_sessions: int = Field(description="The most sessions at once; more are refused.")
    available_slots: int = Field(description="max_sessions - active_sessions.")
    idle_timeout_s: float | None = Field(
        description="Seconds without reset/step before a session is closed (None: never)."
    )
    env_id: str = Field(description="The env id every session plays.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="The settings every session's env is made with: gym.make's arguments as "
        "given, over the env's own defaults, so that a client can check it trains against the "
        "user it expects (reward, reward_kwargs, voice, scenarios, max_turns...). JSON form; a "
        "backend spec is shown by its kind only, a value that is not plain data by its type.",
    )


def make_app(
    env_id: str = "EmpathyDialogue-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    first_message_timeout: float | None = DEFAULT_FIRST_MESSAGE_TIMEOUT,
) -> FastAPI:
    """The OpenEnv app serving ``env_id``: one simulated user per WebSocket session.

    Args:
        env_id: ``"EmpathyDialogue-v0"`` or ``"EmpathyDialogueText-v0"``.
        env_kwargs: ``gym.make``'s arguments for every session's env (``voice``,
            ``scenarios``, ``reward``, ``max_turns``, ``backend``...).
        max_sessions: The most sessions at once (OpenEnv's ``max_concurrent_envs``).
        idle_timeout: Close a session idle this many seconds (``None`` or ``0``: never).
        first_message_timeout: Close a new connection that sends nothing for this many
            seconds (``None`` or ``0``: never), so a silent client cannot hold a slot.

    Returns:
        The FastAPI app; ``app.state.openenv_server`` is OpenEnv's ``HTTPEnvServer``.

    Raises:
        ValueError: An env id without an action type here, ``max_sessions < 1``, or env
            arguments the env refuses (checked now by building one env, not at the first
            session).
    """
    action_cls = action_class(env_id)
    if max_sessions < 1:
        raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
    timeout = float(idle_timeout) if idle_timeout else None
    if timeout is not None and timeout < 0:
        raise ValueError(f"idle_timeout must be >= 0 seconds, got {idle_timeout}")
    kwargs = dict(env_kwargs or {})
    # Build one env now so a bad option fails the start, not every session's first reset
    # (a voice's model loads lazily: this stays cheap).
    probe = gym.make(env_id, **kwargs)
    settings = served_settings(env_id, kwargs, probe)
    probe.close()

    server = HTTPEnvServer(
        functools.partial(DialogueEnvironment, env_id, kwargs),
        action_cls,
        DialogueObservation,
        concurrency_config=ConcurrencyConfig(
            max_concurrent_envs=max_sessions, session_timeout=timeout
        ),
    )
    app = FastAPI(
        title=f"dialogue_gym {env_id} (OpenEnv)",
        version=dialogue_gym.__version__,
        description=f"{env_id} served with OpenEnv: one simulated user per WebSocket session "
        f"at /ws; actions {action_cls.__name__}, observations DialogueObservation (GET "
        "/schema). docs/serving.md describes the protocol.",
    )
    server.register_routes(app)
    app.add_middleware(_SessionGuard, first_message_timeout=first_message_timeout or None)
    app.state.openenv_server = server

    @app.get("/sessions", response_model=SessionsStatus, tags=["Health"])
    async def sessions() -> SessionsStatus:
        """The open sessions and the server's limits."""
        status = server.get_capacity_status()
        return SessionsStatus(
            active_sessions=status.active_sessions,
            max_sessions=status.max_sessions,
            available_slots=status.available_slots,
            idle_timeout_s=timeout,
            env_id=env_id,
            env_kwargs=settings,
        )

    # OpenEnv's HTTP /reset and /step let an env error through as a bare 500; say what the
    # env said instead (the WebSocket session already answers with the message).
    @app.exception_handler(ValueError)
    async def bad_request(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(status_code=400, content={"detail": str(exc)})

    @app.exception_handler(RuntimeError)
    async def conflict(request: Request, exc: RuntimeError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    return app


def served_settings(env_id: str, env_kwargs: Mapping[str, Any], env: gym.Env) -> dict[str, Any]:
    """What ``GET /sessions`` says every session's env is made with.

    The arguments given, over the registration's and the constructors' defaults (the entry
    point's ``reward``/``reward_kwargs``, the env class's own arguments), so that a setting
    left at its default is published too: a client compares values, not the way they were
    given. A backend spec shows only its kind (the part before ``:``), since a URL may carry
    credentials; a value that is not plain JSON data (scenario cards, a live backend) shows its
    type's name.

    Args:
        env_id: The env id.
        env_kwargs: ``gym.make``'s arguments.
        env: An env made with them (its class's signature gives the defaults).

    Example:
        >>> kwargs = {"voice": "template", "reward": "emotion_delta"}
        >>> env = gym.make("EmpathyDialogueText-v0", **kwargs)
        >>> settings = served_settings("EmpathyDialogueText-v0", kwargs, env)
        >>> settings["reward"], settings["reward_kwargs"], settings["max_turns"], settings["backend"]
        ('emotion_delta', {}, 10, 'llama_cpp')
    """
    defaults: dict[str, Any] = {}
    spec = gym.spec(env_id)
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    for function in (entry, type(env.unwrapped).__init__):
        with suppress(TypeError, ValueError):  # a callable without a readable signature
            for param in inspect.signature(function).parameters.values():
                if param.default is not inspect.Parameter.empty and param.name != "render_mode":
                    defaults[param.name] = param.default
    merged = {**defaults, **dict(spec.kwargs or {}), **dict(env_kwargs)}
    if merged.get("reward_kwargs") is None:
        merged["reward_kwargs"] = {}
    out = {key: _plain(value) for key, value in merged.items()}
    if isinstance(merged.get("backend"), str):
        out["backend"] = merged["backend"].split(":", 1)[0]
    return out


def _plain(value: Any) -> Any:
    """``value`` if it is JSON data (recursively), else its type's name in angle brackets."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        items = {str(k): _plain(v) for k, v in value.items()}
        return items
    if isinstance(value, list | tuple) and all(
        v is None or isinstance(v, str | bool | int | float) for v in value
    ):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return f"<{type(value).__name__}>"


class _SessionGuard:
    """The ``/ws`` sessions' guard, in front of OpenEnv's handler (ASGI middleware).

    - A frame that is valid JSON but not an object (``[1, 2]``, ``42``, ``null``) is answered
      with an ``INVALID_JSON`` error and the session goes on: OpenEnv reads ``.get`` on it
      outside its own ``try`` and would close the socket with ``SESSION_ERROR``, losing the
      conversation.
    - An error that would echo a long field back (a validation error quotes the input: a 10 MB
      utterance came back whole) quotes at most ``ECHO_LIMIT`` characters of it.
    - A connection silent for ``first_message_timeout`` seconds after it opens is closed (code
      1008), freeing its session slot.
    - The ``WebSocketDisconnect`` that OpenEnv 0.3's ``/ws`` lets escape after every session
      the client closed first is dropped (its ``finally`` closes the socket again and guards
      only ``RuntimeError``: huggingface/OpenEnv#1159): the session is already destroyed, and
      uvicorn would log a traceback for each ordinary disconnect.
    """

    def __init__(self, app: ASGIApp, first_message_timeout: float | None = None) -> None:
        self.app = app
        self.first_message_timeout = first_message_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        heard = False

        async def guarded_receive() -> Message:
            nonlocal heard
            while True:
                if heard or not self.first_message_timeout or not accepted:
                    message = await receive()
                else:
                    try:
                        message = await asyncio.wait_for(receive(), self.first_message_timeout)
                    except TimeoutError:
                        reason = f"no message within {self.first_message_timeout:g} s"
                        with suppress(RuntimeError, OSError):
                            await send({"type": "websocket.close", "code": 1008, "reason": reason})
                        return {"type": "websocket.disconnect", "code": 1008}
                if message["type"] != "websocket.receive":
                    return message
                heard = True
                text = message.get("text")
                if text is None or _is_object(text):
                    return message
                await send({"type": "websocket.send", "text": _NOT_AN_OBJECT})

        accepted = False

        async def guarded_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.send" and message.get("text"):
                message = {**message, "text": _short_errors(message["text"])}
            await send(message)

        with suppress(WebSocketDisconnect):
            await self.app(scope, guarded_receive, guarded_send)


_NOT_AN_OBJECT = json.dumps(
    {
        "type": "error",
        "data": {
            "message": "a message must be a JSON object with a 'type' (reset, step, state, "
            "close); the session goes on",
            "code": "INVALID_JSON",
        },
    }
)


def _is_object(text: str) -> bool:
    """Whether ``text`` is a JSON object, or not JSON at all (OpenEnv answers that itself)."""
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return True


def _short_errors(text: str) -> str:
    """An error frame with every echoed ``input`` longer than ``ECHO_LIMIT`` characters cut.

    Example:
        >>> frame = json.dumps({"type": "error", "data": {"errors": [{"input": "x" * 10**6}]}})
        >>> json.loads(_short_errors(frame))["data"]["errors"][0]["input"]
        '<1000000 characters, not echoed>'
    """
    if len(text) <= 4 * ECHO_LIMIT or '"type":"error"' not in text.replace(" ", ""):
        return text
    try:
        frame = json.loads(text)
    except ValueError:
        return text
    for error in frame.get("data", {}).get("errors") or []:
        if isinstance(error, dict) and "input" in error:
            shown = (
                error["input"] if isinstance(error["input"], str) else json.dumps(error["input"])
            )
            if len(shown) > ECHO_LIMIT:
                error["input"] = f"<{len(shown)} characters, not echoed>"
    return json.dumps(frame)


@contextmanager
def running_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread for the ``with`` block.

    For notebooks, tests and benchmarks; ``dialogue-gym serve`` runs uvicorn in the
    foreground instead.

    Args:
        app: The app (:func:`make_app`'s).
        host: The address to listen on (loopback by default).
        port: The port; ``0`` lets the OS pick a free one.
        log_level: uvicorn's log level.

    Yields:
        The server's base URL, ``http://host:port``.

    Raises:
        RuntimeError: The server did not start within 30 s.
    """
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, name="dialogue-gym-openenv", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30.0
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the OpenEnv server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=30.0)


def serve(
    env_id: str = "EmpathyDialogue-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    log_level: str = "info",
    first_message_timeout: float | None = DEFAULT_FIRST_MESSAGE_TIMEOUT,
) -> None:
    """Serve ``env_id`` in the foreground until interrupted (``dialogue-gym serve``'s body).

    Args:
        env_id: As :func:`make_app`.
        env_kwargs: As :func:`make_app`.
        host: The address to listen on (``0.0.0.0`` in a container).
        port: The port.
        max_sessions: As :func:`make_app`.
        idle_timeout: As :func:`make_app`.
        log_level: uvicorn's log level.
        first_message_timeout: As :func:`make_app`.
    """
    app = make_app(
        env_id,
        env_kwargs,
        max_sessions=max_sessions,
        idle_timeout=idle_timeout,
        first_message_timeout=first_message_timeout,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
