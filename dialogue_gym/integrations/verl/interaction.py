"""verl's interaction API (verl 0.4.1 to 0.7.1): a store of simulated users, one env each.

Each conversation (``instance_id``) is its own simulated user: its own env, seeded by the
dataset row; the policy's words are the env's action, the user's reply is the env's
``info["user_utterance"]``, and the per-turn score is the reward of one of our reward
wrappers (by name; RLVER's layout by default: ``final_emotion``, ``max(e_T / 100, 0)`` once
at the end). :class:`DialogueInteraction` implements verl's ``BaseInteraction``
(``verl.interactions.base``): ``start_interaction``, ``generate_response`` ->
``(should_terminate, response, turn_score, metadata)``, ``calculate_score``,
``finalize_interaction``. When that verl is installed it subclasses verl's class; verl loads
it from an interaction config (``rollout.multi_turn.interaction_config_path``,
``examples/verl/interaction_config.yaml``). verl >= 0.8's agent loop
(:mod:`~dialogue_gym.integrations.verl.agent_loop`) drives the same store.

verl never calls ``finalize_interaction`` in 0.7.1's agent loop, and a conversation verl cuts
short (its turn or length limits) never reaches the env's end. So the store frees a user's
env as soon as its episode ends (keeping a few numbers until ``finalize_interaction``), returns
envs to a small pool for the next users, and drops conversations left idle past
``idle_timeout_s`` and the least recently used past ``max_sessions``.

:func:`compute_score` is verl's custom reward function for this form: the sum of the
conversation's turn scores.

Example:
    >>> user = DialogueInteraction({"name": "dialogue_gym", "env_kwargs": {"max_turns": 4}})
    >>> user.name, user.settings["env_kwargs"]["max_turns"], user.settings["env_kwargs"]["voice"]
    ('dialogue_gym', 4, 'template')
    >>> len(user), compute_score(extra_info={"turn_scores": [0.0, 0.5]})
    (0, 0.5)
"""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.envs.text import to_action
from dialogue_gym.rewards.base import COMPONENTS_KEY

__all__ = [
    "DEFAULT_CONFIG",
    "INTERACTION_NAME",
    "DialogueInteraction",
    "UnknownInstanceError",
    "compute_score",
]

logger = logging.getLogger(__name__)

#: The interaction's name in the config and in the rows' ``interaction_kwargs``.
INTERACTION_NAME = "dialogue_gym"

#: What the interaction config's ``config:`` may set, and the defaults (RLVER's layout: the
#: final-emotion reward, 8 turns; the hearing user (EmpathyDialogueText-v1, whose listener and
#: reader use the packaged MiniLM; "env_id": "EmpathyDialogueText-v0" for the user who hears the
#: strategy alone); the template voice, which needs no model; every card, since the dataset
#: rows name the card of each conversation).
DEFAULT_CONFIG: dict[str, Any] = {
    "env_id": "EmpathyDialogueText-v1",
    "reward": "final_emotion",
    "reward_kwargs": {},
    "env_kwargs": {
        "voice": "template",
        "scenarios": "all",
        "max_turns": 8,
    },
    # Conversations kept at once (live ones, and ended ones not yet finalized); past it the
    # least recently used is dropped, with a warning.
    "max_sessions": 4096,
    # Seconds a conversation may sit untouched before it is dropped (verl cut it short and
    # never finalized it), checked whenever a conversation starts.
    "idle_timeout_s": 900.0,
    # Idle envs kept for the next conversations (an LLM voice is costly to build).
    "pool_size": 64,
    # Step the env in a worker thread, so an LLM voice does not block verl's event loop.
    "in_thread": True,
    # Check that the chat starts with this user's opening line (the row and the config agree).
    "check_opening": True,
}


class UnknownInstanceError(LookupError):
    """An ``instance_id`` the interaction does not hold (never started, finalized or evicted)."""


def _version_below(package: str, version: str) -> bool:
    """Whether ``package`` is installed at a release below ``version`` (major.minor), without
    importing it (importing verl imports Ray)."""
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = [int(p) if p.isdigit() else 0 for p in installed.split(".")[:2]]
    want = [int(p) for p in version.split(".")[:2]]
    return parts < want


if _version_below("verl", "0.8"):  # verl 0.4.1 - 0.7.1 have verl.interactions
    try:
        from verl.interactions.base import BaseInteraction as _Base
    except ImportError:  # pragma: no cover (an older or broken verl: keep the contract)
        _Base = None
else:
    _Base = None

if _Base is None:

    class _Base:  # type: ignore[no-redef]
        """verl's ``BaseInteraction`` constructor contract, for verl >= 0.8 or no verl at all."""

        def __init__(self, config: dict[str, Any]) -> None:
            self.config = config
            self.name: str = config.get("name", "interaction_agent")


@dataclass
class _Session:
    """One simulated user: its env while the episode runs, then only its outcome."""

    env: gym.Env | None
    opening: str
    seed: int | None
    card: str | int | None
    turns: int = 0
    score: float = 0.0
    scores: list[float] = field(default_factory=list)
    done: bool = False
    busy: bool = False
    touched: float = 0.0
    outcome: dict[str, Any] = field(default_factory=dict)


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a multimodal content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return "" if content is None else str(content)


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars to Python ones (verl logs the metadata)."""
    return value.item() if isinstance(value, np.generic) else value


class DialogueInteraction(_Base):
    """Simulated users for verl: one ``EmpathyDialogueText-v0`` env per ``instance_id``.

    Args:
        config: The interaction config's ``config`` mapping plus ``name`` (verl adds it): any
            key of :data:`DEFAULT_CONFIG`. ``env_kwargs`` are merged over the defaults'.

    Raises:
        ValueError: An unknown key or reward name.

    A conversation's ``interaction_kwargs`` (from the dataset row, verl passes them to
    :meth:`start_interaction`) give its user: ``card`` (an id or index) and ``seed``.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        super().__init__(config)
        unknown = set(config) - set(DEFAULT_CONFIG) - {"name"}
        if unknown:
            raise ValueError(
                f"unknown DialogueInteraction config keys {sorted(unknown)}; valid: "
                f"{sorted(DEFAULT_CONFIG)}"
            )
        settings = {**copy.deepcopy(DEFAULT_CONFIG), **config}
        settings["env_kwargs"] = {
            **DEFAULT_CONFIG["env_kwargs"],
            **(config.get("env_kwargs") or {}),
        }
        from dialogue_gym.rewards import REWARDS

        if settings["reward"] is not None and settings["reward"] not in REWARDS:
            raise ValueError(f"unknown reward {settings['reward']!r}; valid: {', '.join(REWARDS)}")
        self.settings = settings
        self.sessions: OrderedDict[str, _Session] = OrderedDict()
        self.pool: list[gym.Env] = []
        #: The clock of ``idle_timeout_s`` (a test may replace it).
        self.clock = time.monotonic

    # -- the store -------------------------------------------------------------------

    def __len__(self) -> int:
        """Conversations held (live, and ended but not finalized)."""
        return len(self.sessions)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self.sessions

    @property
    def live(self) -> int:
        """Conversations whose episode is still running (each holds an env)."""
        return sum(1 for s in self.sessions.values() if s.env is not None)

    def make_env(self) -> gym.Env:
        """A fresh env of the configured id, reward and env arguments."""
        s = self.settings
        return gym.make(
            s["env_id"],
            reward=s["reward"],
            reward_kwargs=dict(s["reward_kwargs"]),
            **s["env_kwargs"],
        )

    def _take_env(self) -> gym.Env:
        return self.pool.pop() if self.pool else self.make_env()

    def _release(self, session: _Session) -> None:
        env, session.env = session.env, None
        if env is None:
            return
        if len(self.pool) < int(self.settings["pool_size"]):
            self.pool.append(env)
        else:
            env.close()

    def _get(self, instance_id: str) -> _Session:
        try:
            session = self.sessions[instance_id]
        except KeyError:
            raise UnknownInstanceError(
                f"no conversation with instance_id {instance_id!r}: call start_interaction("
                f"{instance_id!r}, ...) first (it may also have been finalized, or dropped: idle "
                f"over idle_timeout_s={self.settings['idle_timeout_s']}, or past "
                f"max_sessions={self.settings['max_sessions']})"
            ) from None
        self.sessions.move_to_end(instance_id)
        session.touched = self.clock()
        return session

    def opening(self, instance_id: str) -> str:
        """The user's opening line in this conversation (what the row's prompt must end with)."""
        return self._get(instance_id).opening

    def close(self) -> None:
        """Close every env (held and pooled) and forget every conversation."""
        for session in self.sessions.values():
            if session.env is not None:
                session.env.close()
        for env in self.pool:
            env.close()
        self.sessions.clear()
        self.pool.clear()

    # -- verl's BaseInteraction ------------------------------------------------------

    async def start_interaction(
        self,
        instance_id: str | None = None,
        seed: int | None = None,
        card: str | int | None = None,
        **kwargs: Any,
    ) -> str:
        """Start a conversation: a user drawn (or named by ``card``) and seeded.

        Args:
            instance_id: verl's id for the conversation (default: a new UUID).
            seed: The episode's seed (``env.reset(seed=seed)``).
            card: The scenario card's id or index (default: drawn by the seed).
            **kwargs: The rest of the row's ``interaction_kwargs`` (``name``...): ignored.

        Returns:
            The instance id.

        Raises:
            ValueError: ``instance_id`` is already in use.
        """
        if instance_id is None:
            instance_id = str(uuid.uuid4())
        if instance_id in self.sessions:
            raise ValueError(
                f"instance_id {instance_id!r} is already in use: finalize_interaction it first"
            )
        env = self._take_env()
        options = {"card": card} if card is not None else None
        try:
            _, info = env.reset(seed=None if seed is None else int(seed), options=options)
        except Exception:
            env.close()
            raise
        self._evict(extra=1)
        self.sessions[instance_id] = _Session(
            env=env,
            opening=str(info["user_utterance"]),
            seed=seed,
            card=card,
            touched=self.clock(),
        )
        return instance_id

    def _evict(self, extra: int = 0) -> None:
        """Drop idle conversations, then the least recently used past ``max_sessions``.

        The store is in least-recently-used order, so both come off its front.
        """
        limit = int(self.settings["max_sessions"]) - extra
        stale = self.clock() - float(self.settings["idle_timeout_s"])
        while self.sessions:
            old_id, old = next(iter(self.sessions.items()))
            if old.touched >= stale and len(self.sessions) <= limit:
                break
            why = (
                f"idle over {self.settings['idle_timeout_s']} s"
                if old.touched < stale
                else (f"max_sessions={self.settings['max_sessions']}")
            )
            logger.warning("dropping conversation %r (%s): was it finalized?", old_id, why)
            del self.sessions[old_id]
            self._release(old)

    async def generate_response(
        self, instance_id: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> tuple[bool, str, float, dict[str, Any]]:
        """The user's answer to the last assistant message, and that turn's score.

        Args:
            instance_id: The conversation.
            messages: The chat so far (verl's messages); the last ``assistant`` message is
                the policy's turn. Any text is taken (mapped into the action space with
                :func:`~dialogue_gym.envs.text.to_action`).
            **kwargs: verl's ``interaction_kwargs`` again: ignored.

        Returns:
            ``(should_terminate, user_reply, turn_score, metadata)``: the episode ended;
            ``info["user_utterance"]``; the reward wrapper's reward for this turn; the turn's
            emotion, strategy, user act, reward components and, at the end, the outcome.

        Raises:
            UnknownInstanceError: ``instance_id`` is not held.
            ValueError: No assistant message; the chat does not start with this user's
                opening line; the conversation has already ended; a turn is already running
                for this id.
        """
        session = self._get(instance_id)
        if session.done:
            raise ValueError(
                f"conversation {instance_id!r} has ended (should_terminate was True): "
                "finalize_interaction it"
            )
        if session.busy:
            raise ValueError(f"conversation {instance_id!r} is already answering a turn")
        reply = next((m for m in reversed(messages) if m.get("role") == "assistant"), None)
        if reply is None:
            raise ValueError("generate_response needs the policy's turn: no assistant message")
        if self.settings["check_opening"] and session.turns == 0:
            first = next((m for m in messages if m.get("role") == "user"), None)
            if (
                first is not None
                and _text_of(first.get("content")).strip() != session.opening.strip()
            ):
                raise ValueError(
                    f"conversation {instance_id!r} does not start with this user's opening line "
                    f"({session.opening!r}): the dataset row and the interaction config disagree "
                    "(card, seed, voice, scenarios...); build rows with verl_rows()"
                )
        action = to_action(_text_of(reply.get("content")), self._max_length(session))
        session.busy = True
        try:
            if self.settings["in_thread"]:
                step = await asyncio.to_thread(session.env.step, action)
            else:
                step = session.env.step(action)
        finally:
            session.busy = False
        _, reward, terminated, truncated, info = step
        score = float(reward)
        session.turns += 1
        session.scores.append(score)
        session.score += score
        done = bool(terminated or truncated)
        metadata = {
            "turn": int(info.get("turn", session.turns)),
            "emotion": float(info["emotion"]),
            "strategy": str(info.get("strategy", "")),
            "user_act": str(info.get("user_act", "")),
            "reward_components": {k: float(v) for k, v in (info.get(COMPONENTS_KEY) or {}).items()},
            "done": done,
        }
        if done:
            session.done = True
            session.outcome = {
                "success": bool(info.get("success", False)),
                "user_left": bool(info.get("user_left", False)),
                "final_emotion": float(info["emotion"]),
                "turns": session.turns,
                "return": session.score,
                "card_id": str(info.get("card_id", "")),
            }
            metadata.update(session.outcome)
            self._release(session)  # verl may never finalize: free the env now
        return (
            done,
            str(info.get("user_utterance", "")),
            score,
            {k: _plain(v) for k, v in metadata.items()},
        )

    def _max_length(self, session: _Session) -> int:
        space = session.env.action_space if session.env is not None else None
        return int(getattr(space, "max_length", 1000))

    async def calculate_score(self, instance_id: str, **kwargs: Any) -> float:
        """The conversation's return so far: the sum of its turn scores (RLVER: ``e_T / 100``
        once it has ended, 0 before)."""
        return float(self._get(instance_id).score)

    async def finalize_interaction(self, instance_id: str, **kwargs: Any) -> None:
        """Free the conversation: its env goes back to the pool, its record is dropped.

        Raises:
            UnknownInstanceError: ``instance_id`` is not held.
        """
        session = self._get(instance_id)
        del self.sessions[instance_id]
        self._release(session)

    def outcome(self, instance_id: str) -> dict[str, Any]:
        """An ended conversation's outcome (``success``, ``final_emotion``, ``return``...);
        empty while it runs."""
        return dict(self._get(instance_id).outcome)

    def turn_scores(self, instance_id: str) -> list[float]:
        """The conversation's per-turn scores so far."""
        return list(self._get(instance_id).scores)


def compute_score(
    data_source: str | None = None,
    solution_str: str | None = None,
    ground_truth: Any = None,
    extra_info: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> float:
    """verl's custom reward function for the interaction form (verl <= 0.7.1).

    verl 0.7.1's agent loop hands the interaction's per-turn scores to the reward function as
    ``extra_info["turn_scores"]``; the conversation's reward is their sum: its return under
    the interaction's reward wrapper (RLVER: ``max(e_T / 100, 0)``, paid once at the end).
    ``DialogueAgentLoop`` (verl >= 0.8) sets the trajectory's reward itself and needs none.

    Example:
        >>> compute_score("dialogue_gym", "...", "card", {"turn_scores": [0.0, 0.0, 0.62]})
        0.62
    """
    return float(sum((extra_info or {}).get("turn_scores") or []))
