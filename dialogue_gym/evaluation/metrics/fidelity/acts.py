"""The act reader: which user acts a line performs, and whether it performs the core's.

Thanking, leaving, resisting, agreeing and asking each have a detector (phrases, data:
:mod:`~dialogue_gym.evaluation.metrics.fidelity.lexicon`); disclosure is conveying the turn's
need cue (most of its content words); venting is the rest (the speaker talks about themselves
and does none of the others). A line agrees with the core's act when it performs it and none of
the acts that contradict it (:data:`CONFLICTS`: a venting user who says goodbye, an agreeing one
who pushes back).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from dialogue_gym.core.vocabulary import USER_ACTS
from dialogue_gym.evaluation.metrics.fidelity.lexicon import (
    AGREE,
    FIRST_PERSON,
    LEAVE,
    QUESTION_START,
    RESIST,
    THANK,
)
from dialogue_gym.evaluation.metrics.fidelity.sentiment import read_sentiment
from dialogue_gym.evaluation.metrics.fidelity.text import SENTENCE_RE, content_words, norm

__all__ = ["CONFLICTS", "act_agrees", "read_acts"]

#: For each act, the acts whose presence in the same line contradicts it. Leaving ends the
#: conversation, so only a leaving line may say goodbye (a thanking one may too: success ends
#: it); an agreeing line does not push back; a thanking line does not resist.
CONFLICTS: Mapping[str, frozenset[str]] = {
    "vent": frozenset({"leave"}),
    "disclose": frozenset({"leave"}),
    "ask": frozenset({"leave"}),
    "resist": frozenset({"leave"}),
    "agree": frozenset({"resist", "leave"}),
    "thank": frozenset({"resist"}),
    "leave": frozenset(),
}


def _conveys_cue(line: str, cue: str) -> bool:
    # Not voices.cleaning.conveys: the voice grades itself with that, so this reader stays apart.
    wanted = content_words(cue)
    return not wanted or len(wanted & content_words(line)) >= 0.5 * len(wanted)


def _asks(text: str) -> bool:
    for sentence in SENTENCE_RE.split(text):
        s = sentence.strip()
        if s.endswith("?") or (s and QUESTION_START.search(s)):
            return True
    return False


def _talks_about_self(text: str) -> bool:
    return bool(FIRST_PERSON.search(text)) or read_sentiment(text).label != "neutral"


def read_acts(line: str, cue: str | None = None) -> frozenset[str]:
    """The user acts ``line`` performs.

    ``thank``, ``leave``, ``resist``, ``agree`` and ``ask`` each have a detector (phrases; a
    question mark or a question word starting a sentence for ``ask``); ``disclose`` is
    conveying ``cue`` (at least half of its content words, crudely stemmed); ``vent`` is the
    rest: the speaker talks about themselves (a first-person word or a feeling word) and
    performs none of thank, leave, resist, agree or ask.

    Example:
        >>> sorted(read_acts("I've tried that already and it didn't work."))
        ['resist']
        >>> sorted(read_acts("My dad hasn't called since Christmas.", "My dad hasn't spoken to me since Christmas."))
        ['disclose', 'vent']
        >>> sorted(read_acts("Is it normal to still feel this bad?"))
        ['ask']
    """
    text = norm(line)
    acts = set()
    if THANK.search(text) and not re.search(r"\bno,? thanks?\b|\bthanks for nothing\b", text):
        acts.add("thank")
    acts.update(
        act
        for act, pattern in (("leave", LEAVE), ("resist", RESIST), ("agree", AGREE))
        if pattern.search(text)
    )
    if _asks(text):
        acts.add("ask")
    if cue and _conveys_cue(line, cue):
        acts.add("disclose")
    if not acts - {"disclose"} and _talks_about_self(text):
        acts.add("vent")
    return frozenset(acts)


def act_agrees(line: str, act: str, cue: str | None = None, opening: bool = False) -> bool:
    """Whether ``line`` performs the core's ``act`` and nothing that contradicts it.

    ``disclose`` with no cue (a question put to the user outside the dynamics) agrees when the
    line talks about the speaker. The ``opening`` line (before the supporter has said
    anything; the core's act is ``vent``) agrees when it talks about the speaker and does not
    leave: "Could we talk about my exams?" opens well, and so does "Thanks for asking. I...". See :data:`CONFLICTS` for
    what contradicts what.

    Raises:
        ValueError: ``act`` is not one of ``USER_ACTS``.

    Example:
        >>> act_agrees("I'm going to go now. Thanks anyway.", "leave")
        True
        >>> act_agrees("It's been awful. Anyway, bye.", "vent")
        False
    """
    if act not in CONFLICTS:
        raise ValueError(f"unknown act {act!r}; acts: {USER_ACTS}")
    acts = read_acts(line, cue)
    if opening:
        return "leave" not in acts and _talks_about_self(norm(line))
    if acts & CONFLICTS[act]:
        return False
    if act == "disclose" and not cue:
        return _talks_about_self(norm(line))
    return act in acts
