"""OpenEnv adapter: serve the simulated user over HTTP + WebSocket with OpenEnv's own server.

Training engines that talk to environments through OpenEnv (TRL's ``environment_factory``,
verl's and others' OpenEnv clients) reach ``EmpathyDialogue-v0`` or ``EmpathyDialogueText-v0``
through ``dialogue-gym serve``. Each WebSocket session is one simulated user of its own; the
server bounds the sessions (``max_sessions``) and closes idle ones (``idle_timeout``).
``docs/serving.md`` is the manual (protocol, limits, Docker, measured throughput).

Modules:

- :mod:`~dialogue_gym.integrations.openenv.models`: the wire types (:class:`StrategyAction`,
  :class:`UtteranceAction`, :class:`DialogueObservation`, :class:`DialogueState`);
- :mod:`~dialogue_gym.integrations.openenv.environment`: :class:`DialogueEnvironment`, the
  OpenEnv ``Environment`` each session runs;
- :mod:`~dialogue_gym.integrations.openenv.app`: :func:`make_app` (the FastAPI app of
  OpenEnv's ``HTTPEnvServer``), :func:`running_server` (uvicorn in a thread), :func:`serve`,
  :func:`served_settings` (what ``GET /sessions`` says the envs are made with);
- :mod:`~dialogue_gym.integrations.openenv.client`: :class:`DialogueEnvClient` (OpenEnv's
  ``EnvClient``), :class:`DialogueServerError`, :class:`RemoteDialogueEnv` (a session in
  Gymnasium's blocking form), :func:`server_sessions`, :func:`check_server`.

``openenv-core`` comes with ``pip install 'dialogue_gym[serve]'``.

Example (a server in this process, one session):
    >>> app = make_app("EmpathyDialogue-v0", {"voice": "template", "scenarios": "test"})
    >>> with running_server(app) as url, DialogueEnvClient(base_url=url).sync() as env:
    ...     obs, info = env.gym_reset(seed=0)
    ...     obs, reward, terminated, truncated, info = env.gym_step(0)
    >>> info["strategy"], reward, obs["emotion"].dtype
    ('Question', 0.0, dtype('float32'))
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("openenv") is None:  # say which extra, not just the missing name
    raise ModuleNotFoundError(
        "dialogue_gym.integrations.openenv needs OpenEnv (openenv-core): "
        "pip install 'dialogue_gym[serve]'",
        name="openenv",
    )

from dialogue_gym.integrations.openenv.app import (  # noqa: E402  (after the check)
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_SESSIONS,
    SessionsStatus,
    make_app,
    running_server,
    serve,
    served_settings,
)
from dialogue_gym.integrations.openenv.client import (
    DialogueEnvClient,
    DialogueServerError,
    RemoteDialogueEnv,
    check_server,
    server_sessions,
)
from dialogue_gym.integrations.openenv.environment import SESSION_CLOSED, DialogueEnvironment
from dialogue_gym.integrations.openenv.models import (
    ACTION_CLASSES,
    DialogueAction,
    DialogueObservation,
    DialogueState,
    StrategyAction,
    UtteranceAction,
    action_class,
    jsonable,
)

__all__ = [
    "ACTION_CLASSES",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_SESSIONS",
    "SESSION_CLOSED",
    "DialogueAction",
    "DialogueEnvClient",
    "DialogueEnvironment",
    "DialogueObservation",
    "DialogueServerError",
    "DialogueState",
    "RemoteDialogueEnv",
    "SessionsStatus",
    "StrategyAction",
    "UtteranceAction",
    "action_class",
    "check_server",
    "jsonable",
    "make_app",
    "running_server",
    "serve",
    "served_settings",
    "server_sessions",
]
