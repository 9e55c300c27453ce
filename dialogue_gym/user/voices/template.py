"""The template voices: authored fragments picked by the turn's seed.

Deterministic and a few microseconds a turn, for RL at scale and tests. The user's line is
chosen by act and emotion band; the agent's by strategy, echoing the user's need cue (in the
second person) once one is revealed.

Example:
    >>> from dialogue_gym.core.scenario import load_scenarios
    >>> from dialogue_gym.user.voices.turns import AgentTurn
    >>> card = load_scenarios("test")[0]
    >>> turn = AgentTurn(card=card, strategy=0, user_utterance="Hi.", cue=None, history=(),
    ...     turn=0, seed=11)
    >>> TemplateAgentRealiser().say([turn]) == TemplateAgentRealiser().say([turn])
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dialogue_gym.core.vocabulary import USER_ACTS
from dialogue_gym.user.hearing.lexicon import reactions
from dialogue_gym.user.voices.cleaning import echo_back, second_person
from dialogue_gym.user.voices.fragments import BANDS, OPENING, Fragments, load_fragments
from dialogue_gym.user.voices.turns import AgentTurn, UserTurn, check_strategy

__all__ = ["TemplateAgentRealiser", "TemplateUserVoice"]

_M64 = (1 << 64) - 1


def mix_fragments(seed: int) -> int:
    """SplitMix64's finaliser: nearby seeds (the env's turn seeds step by 2) spread evenly."""
    z = (seed + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _heard(text: str, turn: UserTurn) -> str:
    """The hearing user's additions: the reaction to the delivery first, the answer last."""
    if turn.reaction is not None:
        options = reactions()[turn.reaction]
        text = f"{options[mix_fragments(turn.seed + 7) % len(options)]} {text}"
    return f"{text} {turn.answer}" if turn.answer else text


class TemplateUserVoice:
    """The user's words from authored fragments: deterministic and fast.

    The line is a fragment chosen by act and band (the opening table at the first turn),
    picked by the turn's seed, with ``{name}`` and ``{topic}`` filled, followed by the need
    cue's own text when one is revealed.
    """

    kind = "template"

    def __init__(self) -> None:
        self._table: Mapping[tuple[str, str], tuple[str, ...]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_table": None}  # reloaded (once per process) on first use

    def describe(self) -> dict[str, Any]:
        """What produced the words, for ``info``."""
        return {"voice": self.kind}

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        """Say each turn.

        Raises:
            ValueError: A turn's act or band is unknown.
        """
        table = self._table
        if table is None:
            table = self._table = load_fragments().user
        out: list[str] = []
        for t in turns:
            key = (OPENING if t.agent_utterance is None else t.act, t.band)
            options = table.get(key)
            if options is None:
                raise ValueError(
                    f"no user fragments for act {t.act!r} and band {t.band!r}; "
                    f"acts: {USER_ACTS}, bands: {BANDS}"
                )
            text = options[mix_fragments(t.seed) % len(options)]
            if "{" in text:
                text = text.format(name=t.card.persona.name, topic=t.card.topic)
            if t.reaction is not None or t.answer is not None:
                text = _heard(text, t)
            out.append(f"{text} {t.cue}" if t.cue else text)
        return out


class TemplateAgentRealiser:
    """The agent's words from authored fragments, one pool per strategy.

    Restatement and Reflection echo the latest need cue (in the second person) once the
    user has revealed one, or the topic; the other strategies stay generic but fit the topic.
    """

    kind = "template"

    def __init__(self) -> None:
        self._frags: Fragments | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_frags": None}

    def describe(self) -> dict[str, Any]:
        """What produced the words, for ``info``."""
        return {"agent_voice": self.kind}

    def say(self, turns: Sequence[AgentTurn]) -> list[str]:
        """Say each turn's strategy.

        Raises:
            ValueError: A strategy index is out of range.
        """
        frags = self._frags
        if frags is None:
            frags = self._frags = load_fragments()
        out: list[str] = []
        for t in turns:
            strategy = check_strategy(t.strategy)
            echo = echo_back(t.cue) if t.cue else None
            pool = frags.agent_plain[strategy] if echo is None else frags.agent_cue[strategy]
            text = pool[mix_fragments(t.seed) % len(pool)]
            if "{" in text:
                card = t.card
                text = text.format(
                    name=card.persona.name,
                    topic=second_person(card.topic),
                    feeling=frags.feelings.get(card.emotion_type, "upset"),
                    cue=echo or "",
                )
            out.append(text)
        return out
