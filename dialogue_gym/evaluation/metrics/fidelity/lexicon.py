"""The fidelity readers' word lists and patterns, loaded from data.

``dialogue_gym/evaluation/metrics/data/fidelity_lexicon.yaml`` holds them (its header says how
they were written and how patterns are spelled); this module reads it once, at import, into the
constants below: compiled patterns, frozen word sets and the valence table. Everything here is
deterministic: the same words give the same reading on every machine.

Example:
    >>> VALENCE["awful"], VALENCE["lighter"]
    (-2.0, 1.5)
    >>> bool(CONSOLES.search("i'm so sorry to hear that")), bool(THANK.search("cheers"))
    (True, True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "ADVISES",
    "AGREE",
    "BETTER_PHRASES",
    "BETTER_WORDS",
    "CLAUSE_BREAKS",
    "CONSOLES",
    "FIRST_PERSON",
    "FUNCTION_WORDS",
    "LEAVE",
    "META",
    "NEGATORS",
    "OKAY_TO_FEEL",
    "PHRASES",
    "QUESTION_START",
    "RESIST",
    "SAYS",
    "SUPPORTER",
    "THANK",
    "THIRD_PERSON_VERBS",
    "VALENCE",
    "WORSE_PHRASES",
    "WORSE_WORDS",
    "any_of",
    "load_lexicon",
    "wordset",
]


def any_of(patterns: Iterable[str]) -> re.Pattern[str]:
    """One pattern that matches where any of ``patterns`` does (each kept in a group of its own).

    Example:
        >>> any_of([r"\\bbye\\b", "good ?night"]).pattern
        '(?:\\\\bbye\\\\b)|(?:good ?night)'
    """
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``, as a set."""
    return frozenset(text.split())


def load_lexicon() -> dict[str, Any]:
    """The packaged lexicon file, parsed (sections ``role``, ``sentiment`` and ``acts``)."""
    data = resources.files("dialogue_gym.evaluation.metrics").joinpath("data/fidelity_lexicon.yaml")
    return yaml.safe_load(data.read_text(encoding="utf-8"))


def _valence(negative: Mapping[float, str], positive: Mapping[float, str]) -> dict[str, float]:
    # Later entries win: a word listed under two weights takes the last one (as when the lists
    # were Python dicts updated in this order).
    valence: dict[str, float] = {}
    for weight, words in negative.items():
        valence.update({w: -float(weight) for w in words.split()})
    for weight, words in positive.items():
        valence.update({w: float(weight) for w in words.split()})
    return valence


_RAW = load_lexicon()
_ROLE, _SENTIMENT, _ACTS = _RAW["role"], _RAW["sentiment"], _RAW["acts"]

# -- role

#: What a listener says to the person in distress (read only when no verb of :data:`SAYS`
#: precedes it in the sentence: reported speech is the user's own line).
CONSOLES = any_of(_ROLE["consoles"])
#: A verb of saying: what follows it is reported speech.
SAYS = re.compile(_ROLE["says"])
#: "It's okay to feel...": consoling, unless reported.
OKAY_TO_FEEL = re.compile(_ROLE["okay_to_feel"])
#: Advice given to the other party.
ADVISES = any_of(_ROLE["advises"])
#: The listener's own lines: offering help, inviting the other to talk.
SUPPORTER = any_of(_ROLE["supporter"])
#: Stepping out of the fiction.
META = any_of(_ROLE["meta"])
#: Verbs after the persona's name when a line speaks of the persona in the third person.
THIRD_PERSON_VERBS = wordset(_ROLE["third_person_verbs"])

# -- sentiment

#: Each sentiment word's valence, -2..+2.
VALENCE: dict[str, float] = _valence(_SENTIMENT["negative"], _SENTIMENT["positive"])
#: Phrases whose words alone mislead, with their valence (the phrase wins over its words).
PHRASES: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(p), float(v)) for p, v in _SENTIMENT["phrases"]
)
#: Words that flip the valence of a word shortly after them.
NEGATORS = wordset(_SENTIMENT["negators"])
#: Words that end a negation's reach.
CLAUSE_BREAKS = wordset(_SENTIMENT["clause_breaks"])
#: Words that say things just got better.
BETTER_WORDS = wordset(_SENTIMENT["better"])
#: Words that say things just got worse.
WORSE_WORDS = wordset(_SENTIMENT["worse"])
#: Phrases that say things just got better.
BETTER_PHRASES = re.compile("|".join(_SENTIMENT["better_phrases"]))
#: Phrases that say things just got worse.
WORSE_PHRASES = re.compile("|".join(_SENTIMENT["worse_phrases"]))

# -- acts

#: Thanking.
THANK = re.compile(_ACTS["thank"])
#: Leaving the conversation.
LEAVE = any_of(_ACTS["leave"])
#: Pushing back on the supporter.
RESIST = any_of(_ACTS["resist"])
#: Agreeing with the supporter.
AGREE = any_of(_ACTS["agree"])
#: A sentence that starts as a question (one the model forgot to end with "?").
QUESTION_START = re.compile(
    "^(?:" + "|".join(_ACTS["question_start"]).replace("{aux}", _ACTS["auxiliaries"]) + ")"
)
#: A first-person word: the speaker talks about themselves.
FIRST_PERSON = re.compile(_ACTS["first_person"])
#: Words that carry no content.
FUNCTION_WORDS = wordset(_ACTS["function_words"])
