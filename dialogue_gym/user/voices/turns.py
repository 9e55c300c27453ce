"""What a voice is asked to say: the turn records, and the two protocols voices implement.

The affective core decides; a voice only words the decision. A *user voice* says a
:class:`UserTurn` (``speak``), an *agent realiser* says a strategy as an :class:`AgentTurn`
(``say``); both take batches and return one string per turn, and both describe themselves for
``info["voice_config"]``.

Example:
    >>> from dialogue_gym.user.voices import TemplateUserVoice
    >>> isinstance(TemplateUserVoice(), UserVoice)
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import STRATEGIES

__all__ = ["AgentRealiser", "AgentTurn", "UserTurn", "UserVoice"]


# Not frozen: a frozen dataclass costs microseconds to build, and one is built per turn
# in RL loops. Treat it as read-only.
@dataclass(slots=True)
class UserTurn:
    """What the user voice must say this turn (decided by the affective core).

    Attributes:
        card: The scenario card (persona, situation, topic).
        act: The user's act, one of ``USER_ACTS``.
        emotion: Emotion score in [0, 100] after this turn's appraisal.
        band: ``core.vocabulary.emotion_band(emotion)``.
        reason: The appraisal's short first-person reason ("They jumped to advice before
            listening."); empty at the opening turn.
        cue: The need-cue text revealed this turn, if any; the user must convey it.
        agent_utterance: What the agent just said; ``None`` at the opening turn.
        history: The last few messages, roles ``"user"`` (the simulated user) and
            ``"assistant"`` (the agent); extra keys are ignored.
        turn: The turn index (0 at the opening).
        seed: Seed for this turn's wording.
        answer: The hearing user only: the answer to a question the card's facts answer,
            which the user must give.
        reaction: The hearing user only: how the delivery struck them (``"hurt"``,
            ``"off_topic"``, ``"muddled"``, ``"repeated"``), which the user voices; ``None``
            when it landed as meant.
    """

    card: ScenarioCard
    act: str
    emotion: float
    band: str
    reason: str
    cue: str | None
    agent_utterance: str | None
    history: tuple[Mapping[str, str], ...]
    turn: int
    seed: int
    answer: str | None = None
    reaction: str | None = None


# Not frozen: a frozen dataclass costs microseconds to build, and one is built per turn
# in RL loops. Treat it as read-only.
@dataclass(slots=True)
class AgentTurn:
    """What the agent realiser must say: one strategy, in words.

    Attributes:
        card: The scenario card (the realiser may use the topic and the user's name).
        strategy: Index into ``STRATEGIES``.
        user_utterance: The user's last words.
        cue: The latest need-cue text the user has revealed, if any (restatements and
            reflections can echo it).
        history: The last few messages, roles ``"user"`` (the simulated user) and
            ``"assistant"`` (the agent).
        turn: The turn index.
        seed: Seed for this turn's wording.
    """

    card: ScenarioCard
    strategy: int
    user_utterance: str
    cue: str | None
    history: tuple[Mapping[str, str], ...]
    turn: int
    seed: int


@runtime_checkable
class UserVoice(Protocol):
    """What the env needs of a user voice (``gym.make(..., voice=name)`` builds one).

    Attributes:
        kind: A short name for ``info["voice"]`` (the registered name, usually).
    """

    kind: str

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        """One line per turn, in order (a batch: an LLM voice makes one backend call)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What produces the words, for ``info["voice_config"]["user"]``."""
        ...


@runtime_checkable
class AgentRealiser(Protocol):
    """What the env needs of an agent realiser (``gym.make(..., agent_voice=name)``)."""

    kind: str

    def say(self, turns: Sequence[AgentTurn]) -> list[str]:
        """One utterance per turn, each saying the turn's strategy."""
        ...

    def describe(self) -> dict[str, Any]:
        """What produces the words, for ``info["voice_config"]["agent"]``."""
        ...


def check_strategy(strategy: int) -> int:
    index = int(strategy)
    if not 0 <= index < len(STRATEGIES):
        raise ValueError(f"strategy must be in [0, {len(STRATEGIES)}), got {strategy!r}")
    return index
