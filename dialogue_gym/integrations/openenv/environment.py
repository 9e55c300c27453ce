"""The OpenEnv ``Environment`` that the server runs once per session: one simulated user each.

OpenEnv's server calls the factory once per WebSocket session and keeps the instance for the
session's life; each instance here owns its own ``gym.make(env_id, **env_kwargs)``, so every
session talks to its own simulated user (its own affective core, card, seeds and transcript).
Nothing mutable is shared between instances (the LLM backends, when a voice uses one, are
shared and lock their own calls), hence ``SUPPORTS_CONCURRENT_SESSIONS = True``.

The gym env is built on the first ``reset``: OpenEnv's stateless HTTP routes (``/state``,
``/metadata``, ``/reset``) make a throwaway instance per request, which then costs nothing.

Example (in process; the server does the same over the wire):
    >>> from dialogue_gym.integrations.openenv.models import StrategyAction
    >>> env = DialogueEnvironment("EmpathyDialogue-v0", {"voice": "template", "scenarios": "test"})
    >>> obs = env.reset(seed=0)
    >>> obs = env.step(StrategyAction(strategy=0))
    >>> env.state.step_count, obs.info["strategy"], obs.done
    (1, 'Question', False)
    >>> env.close()
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, EnvironmentMetadata

import dialogue_gym
from dialogue_gym.integrations.openenv.models import (
    DialogueObservation,
    DialogueState,
    action_class,
)

__all__ = ["SESSION_CLOSED", "DialogueEnvironment"]

#: How the error of a call to a closed session starts: a client that sees it may connect again
#: (:class:`~dialogue_gym.integrations.openenv.client.RemoteDialogueEnv` does, on ``reset``).
SESSION_CLOSED = "this session is closed"


class DialogueEnvironment(Environment):
    """One session's simulated user behind OpenEnv's ``reset``/``step``/``state`` interface.

    Args:
        env_id: ``"EmpathyDialogue-v0"`` (actions: :class:`StrategyAction`) or
            ``"EmpathyDialogueText-v0"`` (actions: :class:`UtteranceAction`).
        env_kwargs: What ``gym.make(env_id, ...)`` gets: ``voice``, ``scenarios``, ``reward``,
            ``max_turns``... (the env card's arguments).

    ``reset(seed=None, episode_id=None, options=None)`` starts a conversation (``options``
    as Gymnasium's, e.g. ``{"card": id_or_index}``); ``step(action)`` says one turn. Errors
    are the env's own: a bad action raises its ``ValueError`` and leaves the session as it
    was; a step after the end raises ``RuntimeError`` saying to reset. OpenEnv's server turns
    each into an error response and keeps the session.

    Raises:
        ValueError: ``env_id`` has no action type here.
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.action_cls = action_class(env_id)
        self._env: gym.Env | None = None
        self._closed = False
        self._state = DialogueState(env_id=env_id, max_turns=self.env_kwargs.get("max_turns", 10))

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> DialogueObservation:
        """Start a conversation with a new simulated user (the env's ``reset``).

        Raises:
            ValueError: An argument ``reset`` does not take (the env's own errors too: an
                unknown card, say).
            RuntimeError: The session was closed (idle timeout, server shutdown).
        """
        if kwargs:
            raise ValueError(
                f"reset() got unknown argument(s) {', '.join(sorted(kwargs))}; it takes seed, "
                "episode_id and options (e.g. options={'card': card_id})"
            )
        env = self._open_env()
        obs, info = env.reset(seed=seed, options=options)
        self._state = DialogueState(
            episode_id=episode_id or uuid.uuid4().hex,
            step_count=0,
            env_id=self.env_id,
            card_id=info.get("card_id"),
            seed=seed,
            turn=0,
            max_turns=env.unwrapped.max_turns,
            emotion=info.get("emotion"),
            done=False,
            episodes=self._state.episodes + 1,
        )
        return DialogueObservation.from_step(obs, info)

    def step(
        self, action: Action, timeout_s: float | None = None, **kwargs: Any
    ) -> DialogueObservation:
        """Say one turn to the user (the env's ``step``); ``timeout_s`` is not used.

        Raises:
            TypeError: ``action`` is not this env's action type.
            ValueError: The env's: the action is outside its action space (the message names
                the valid range or the bad character).
            RuntimeError: No episode yet, the episode has ended, or the session was closed.
        """
        if not isinstance(action, self.action_cls):
            raise TypeError(
                f"{self.env_id} takes {self.action_cls.__name__}, got {type(action).__name__}"
            )
        env = self._open_env()
        if self._state.episode_id is None:
            raise RuntimeError(
                "call reset() before step(): a session starts without a conversation (over "
                "HTTP every /step request gets a fresh environment; use the WebSocket client)"
            )
        obs, reward, terminated, truncated, info = env.step(action.to_env())
        state = self._state
        state.step_count += 1
        state.turn = int(info.get("turn", state.turn + 1))
        state.emotion = info.get("emotion", state.emotion)
        state.done = bool(terminated or truncated)
        return DialogueObservation.from_step(obs, info, float(reward), terminated, truncated)

    @property
    def state(self) -> DialogueState:
        """The session's episode: id, steps, card, seed, turn, emotion, whether it is over."""
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        """Name, description and version that OpenEnv's ``GET /metadata`` serves."""
        return EnvironmentMetadata(
            name=self.env_id,
            description=f"{self.env_id}: a simulated user in distress to support, one "
            f"conversation at a time per session; actions: {self.action_cls.__name__}",
            version=dialogue_gym.__version__,
            documentation_url="docs/serving.md",
        )

    def close(self) -> None:
        """Close the env; the session refuses further calls (OpenEnv calls this when the
        client disconnects, the session idles out, or the server stops)."""
        self._closed = True
        if self._env is not None:
            self._env.close()
            self._env = None

    def _open_env(self) -> gym.Env:
        if self._closed:
            raise RuntimeError(
                f"{SESSION_CLOSED} (idle for longer than the server's idle timeout, or "
                "the server is stopping): connect again to start a new session"
            )
        if self._env is None:
            self._env = gym.make(self.env_id, **self.env_kwargs)
        return self._env
