"""The listener's word lists, as data, and the lexical readings made with them.

``dialogue_gym/user/data/hearing.yaml`` holds the tone phrases (hostile: blame, mockery,
dismissal, sarcasm, harmful advice; cold; warm), the words that carry no topic, and the
prototypes of supportive turns and of off-topic chatter that the embedding listener compares a turn
with.
Everything here is pure Python and deterministic: the same words give the same reading on every
machine.

Example:
    >>> tone("So basically this is your own fault.").hostility
    0.8
    >>> tone("It's not your fault, and it makes sense you're upset.").hostility
    0.0
    >>> sorted(content_words("Losing the scholarship has been keeping me up"))
    ['keep', 'los', 'scholarship']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from dialogue_gym.user.recognise.lexical import normalise

__all__ = ["Tone", "content_words", "lexicon", "reactions", "sentences", "stem", "tone"]

_WORD = re.compile(r"[a-z][a-z']*")
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_PROPOSAL = re.compile(r"\bwhy don'?t (?:you|we)\b")


@dataclass(frozen=True)
class _Phrase:
    category: str
    weight: float
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class _Lexicon:
    hostile: tuple[_Phrase, ...]
    cold: tuple[_Phrase, ...]
    warm: tuple[_Phrase, ...]
    negation: re.Pattern[str]
    reported: re.Pattern[str]
    stopwords: frozenset[str]
    support_prototypes: tuple[str, ...]
    off_topic_prototypes: tuple[str, ...]
    reactions: dict[str, tuple[str, ...]]


def _phrases(category: str, items: list[Any]) -> tuple[_Phrase, ...]:
    return tuple(_Phrase(category, float(w), re.compile(p)) for w, p in items)


@cache
def lexicon() -> _Lexicon:
    """The packaged lexicon (``dialogue_gym/user/data/hearing.yaml``), parsed once."""
    text = resources.files("dialogue_gym.user").joinpath("data/hearing.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    hostile = tuple(p for cat, items in raw["hostile"].items() for p in _phrases(cat, items))
    return _Lexicon(
        hostile=hostile,
        cold=_phrases("cold", raw["cold"]),
        warm=_phrases("warm", raw["warm"]),
        negation=re.compile(raw["negation"]),
        reported=re.compile(raw["reported"]),
        stopwords=frozenset(raw["stopwords"].split()),
        support_prototypes=tuple(raw["support_prototypes"]),
        off_topic_prototypes=tuple(raw["off_topic_prototypes"]),
        reactions={k: tuple(v) for k, v in raw["reactions"].items()},
    )


def reactions() -> dict[str, tuple[str, ...]]:
    """How the user voices a delivery that did not land: reaction -> lines (see UserTurn)."""
    return lexicon().reactions


@dataclass(frozen=True)
class Tone:
    """The tone phrases found in one turn.

    Attributes:
        hostility: Sum of the hostile phrases' weights, capped at 1.
        coldness: Likewise for cold phrases.
        warmth: Likewise for warm phrases.
        phrases: ``(category, matched text)`` of each phrase found, in lexicon order.
    """

    hostility: float
    coldness: float
    warmth: float
    phrases: tuple[tuple[str, str], ...]


def _found(text: str, phrases: tuple[_Phrase, ...]) -> list[tuple[_Phrase, str]]:
    lex = lexicon()
    hits = []
    for phrase in phrases:
        for match in phrase.pattern.finditer(text):
            # "why don't you..." proposes; it negates nothing.
            before = _PROPOSAL.sub("", text[max(0, match.start() - 40) : match.start()])
            # "it's not your fault", "you don't have to give up": the negation turns it round;
            # "you feel stupid" reports the user's view of themselves.
            if lex.negation.search(before):
                continue
            if phrase.category == "mockery" and lex.reported.search(before):
                continue
            hits.append((phrase, match.group(0)))
            break
    return hits


def tone(text: str) -> Tone:
    """The tone phrases of ``text`` (see :class:`Tone`)."""
    lex = lexicon()
    norm = normalise(text)
    hostile = _found(norm, lex.hostile)
    cold = _found(norm, lex.cold)
    warm = _found(norm, lex.warm)

    def total(hits: list[tuple[_Phrase, str]]) -> float:
        return round(min(1.0, float(sum(p.weight for p, _ in hits))), 6)

    return Tone(
        hostility=total(hostile),
        coldness=total(cold),
        warmth=total(warm),
        phrases=tuple((p.category, m) for p, m in (*hostile, *cold, *warm)),
    )


def stem(word: str) -> str:
    """A crude, deterministic stem, the same for a word's common forms (not always a word).

    Example:
        >>> [stem(w) for w in ("losing", "lose", "exams", "worried", "worry", "stopping")]
        ['los', 'los', 'exam', 'worry', 'worry', 'stop']
    """
    w = word.strip("'")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith(("ies", "ied")):
        w = w[:-3] + "y"
    elif len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsaeiouy":
        w = w[:-1]
    return w


def content_words(text: str) -> frozenset[str]:
    """The stems of the words of ``text`` that can carry a topic (no stopwords, 3+ letters)."""
    stop = lexicon().stopwords
    words = _WORD.findall(normalise(text))
    return frozenset(stem(w) for w in words if len(w) > 2 and w not in stop)


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences at ``.``, ``!`` and ``?`` (each kept with its mark)."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip(" .!?")]
