"""Q&A consistency: pause an episode and ask the simulated user the card's fact questions.

Example:
    >>> QAResult("c", 2).score  # no question asked
    nan
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.vocabulary import emotion_band
from dialogue_gym.evaluation.episodes import AnyPolicy, EpisodeResult, run_episode
from dialogue_gym.evaluation.metrics.consistency import qa_score
from dialogue_gym.user.voices import UserTurn

__all__ = ["QA_REASON", "QAAnswer", "QAResult", "qa_consistency"]


#: The reason the simulated user is given when asked a fact question: the voices put it in
#: the prompt as "what you think of their last message" (first person, as an appraisal's).
QA_REASON = "They asked me a straight question about my situation, and I want to answer it."


@dataclass
class QAAnswer:
    """One probe: the card's question, its answer, what the simulated user said, the score."""

    question: str
    expected: str
    reply: str
    score: float


@dataclass
class QAResult:
    """The probes of one episode and the episode itself (played on after the probes).

    Attributes:
        card_id: The card.
        turn: The agent turns taken when the questions were asked.
        answers: One per question asked.
        episode: The whole episode: the probes are side conversations, so it is the episode
            the policy would have played without them.
    """

    card_id: str
    turn: int
    answers: list[QAAnswer] = field(default_factory=list)
    episode: EpisodeResult | None = None

    @property
    def score(self) -> float:
        """The mean :func:`qa_score` over the questions (NaN if none was asked)."""
        return float(np.mean([a.score for a in self.answers])) if self.answers else math.nan


def qa_consistency(
    env: gym.Env,
    policy: AnyPolicy,
    seed: int | None = None,
    card: str | int | None = None,
    ask_after: int | None = None,
    max_questions: int | None = None,
    voice: Any = None,
) -> QAResult:
    """Pause an episode mid-way and ask the simulated user the card's fact questions.

    Plays ``policy`` for ``ask_after`` agent turns (or until the episode ends, if sooner),
    then puts each of the card's fact questions to the user's voice as the agent's next
    line: the voice sees the persona, the recent chat, the emotion band and the act
    ``"disclose"``, with :data:`QA_REASON` as its reason; each reply is scored against the
    fact's answer with :func:`qa_score`. The questions are side conversations: they are not
    added to the chat and the env is not stepped, so the episode then plays on exactly as it
    would have. The template voice never answers questions (it speaks by act and band): it
    scores near 0, as a floor; the metric is meant for the LLM voice.

    Args:
        env: The env (its ``unwrapped`` an ``EmpathyDialogueEnv``).
        policy: ``obs -> action`` (``reset`` called if it has one).
        seed: Reset seed.
        card: Card id or index; default: drawn.
        ask_after: Agent turns before the questions (default: half of ``max_turns``).
        max_questions: Ask at most this many of the card's questions (default: all).
        voice: The user voice to ask (default: the env's own).

    Example:
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
        >>> from dialogue_gym.agents.reference import StageHeuristicPolicy
        >>> qa = qa_consistency(env, StageHeuristicPolicy(), seed=0, card=0, ask_after=2)
        >>> qa.turn, len(qa.answers), 0.0 <= qa.score <= 1.0
        (2, 3, True)
    """
    base = env.unwrapped
    after = base.max_turns // 2 if ask_after is None else int(ask_after)
    if after < 0:
        raise ValueError(f"ask_after must be >= 0, got {ask_after!r}")
    state: dict[str, Any] = {}

    def ask(at_env: gym.Env, info: Mapping[str, Any], done: bool) -> None:
        if state or (info.get("turn", 0) < after and not done):
            return
        state["result"] = _ask(base, info, voice, max_questions)

    if after == 0:
        # Before the first step: reset, ask, then play the episode from the same seed.
        _, info = env.reset(seed=seed, options={"card": card} if card is not None else None)
        state["result"] = _ask(base, info, voice, max_questions)
    episode = run_episode(env, policy, seed=seed, card=card, on_step=ask)
    result: QAResult = state["result"]
    result.episode = episode
    return result


def _ask(base: Any, info: Mapping[str, Any], voice: Any, max_questions: int | None) -> QAResult:
    card = base.card
    emotion = base.emotion
    facts = card.facts[:max_questions] if max_questions is not None else card.facts
    window = base.history_window
    history = tuple(base.messages[-window:]) if window else ()
    turn = int(info.get("turn", 0))
    seed = int(info.get("voice_seed", 0))
    turns = [
        UserTurn(
            card=card,
            act="disclose",
            emotion=emotion,
            band=emotion_band(emotion),
            reason=QA_REASON,
            cue=None,
            agent_utterance=fact.question,
            history=history,
            turn=turn + 1,
            # Far from the env's own turn seeds (voice_seed + 1, + 2, ...).
            seed=(seed + 7919 * (i + 1) + 2 * turn) % (2**31 - 1),
        )
        for i, fact in enumerate(facts)
    ]
    replies = (voice or base.voice).speak(turns) if turns else []
    answers = [
        QAAnswer(fact.question, fact.answer, reply, qa_score(reply, fact.answer))
        for fact, reply in zip(facts, replies, strict=True)
    ]
    return QAResult(card_id=card.id, turn=turn, answers=answers)
