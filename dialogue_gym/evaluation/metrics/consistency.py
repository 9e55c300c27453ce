"""The simulated user's consistency, read lexically: prompt-to-line and line-to-line.

A transparent lexical heuristic, not a judge: it finds a contradiction only where a line
states a checkable value (a self-introduced name, an age, a job, or a number, month,
weekday or person's name in a sentence about one of the card's facts) that differs from the
card. It misses paraphrased contradictions and may flag a value that belongs to something
else said in the same sentence; docs/metrics.md lists its limits.

:func:`qa_score` (the overlap of a reply with a fact's answer) uses the same reading; the
probe that asks the questions is :mod:`~dialogue_gym.evaluation.metrics.qa`.

Example:
    >>> card = load_scenarios("test")[0]
    >>> card_contradictions("I'm Anna.", card)
    ["name: says 'anna', the card's persona is 'Tomás'"]
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dialogue_gym.core.scenario import ScenarioCard, load_scenarios
from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.evaluation.metrics._common import example_episode  # noqa: F401  (examples)

__all__ = [
    "card_contradictions",
    "history_contradictions",
    "line_to_line_consistency",
    "prompt_to_line_consistency",
    "qa_score",
]

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*(?:-[^\W\d_]+)*|\d+(?:[.,]\d+)?")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MONTHS = _wordset(
    "january february march april may june july august september october november december"
)
_WEEKDAYS = _wordset("monday tuesday wednesday thursday friday saturday sunday")
#: Time units: they say what a number counts, not what a sentence is about.
_UNIT_WORDS = _wordset(
    "year month week day hour minute second time night morning evening afternoon "
    "percent point times"
)
_STOPWORDS = _wordset(
    """
    a about above after again against all almost also although always am an and any anyone
    anything are around as at away back be because been before being below between both but
    by can can't cannot could couldn't did didn't do does doesn't doing don't done down during
    each either else even ever every everyone everything few for from get gets getting give go
    going gone got had hadn't has hasn't have haven't having he he's her here hers herself him
    himself his how i i'd i'll i'm i've if in into is isn't it it's its itself just keep kept
    know last least less let like little long lot made make many may maybe me might mine more
    most much must my myself need needs never next no nobody none nor not nothing now of off
    often on once one only or other others our ours out over own part quite rather really
    right said same say says see she she's should shouldn't since so some someone something
    sometimes still such sure take tell than that that's the their theirs them themselves then
    there there's these they they're thing things think this those though thought through to
    told too toward under until up upon us very want was wasn't way we we're well went were
    weren't what what's when where whether which while who whole whom whose why will with
    without won't would wouldn't yes yet you you'd you'll you're you've your yours yourself
    actually feel feeling felt honestly just mean okay really thanks thank sorry
    """
)
#: Capitalised words that are not people's names (kinship terms are often capitalised).
_NOT_NAMES = _wordset(
    "i mum mom dad mother father mama papa grandma granny grandad grandpa nan nana god "
    "christmas easter english ok okay hi hello hey yes no sir madam"
)
_NOT_CLAIMED_NAMES = _STOPWORDS | _NOT_NAMES
_NUM_WORD = (
    r"(?:\d+|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three"
    r"|four|five|six|seven|eight|nine))?|one|two|three|four|five|six|seven|eight|nine|ten"
    r"|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"
)
_I_AM = r"\bI(?:'m|\u2019m| am)"
_NAME_CLAIM_RE = re.compile(
    rf"(?:\b[Mm]y name(?: is|'s|\u2019s)|{_I_AM}|\b[Cc]all me)\s+([^\W\d_]+)\b(?!['\u2019]s)"
)
_AGE_CLAIM_RE = re.compile(
    rf"{_I_AM} (?:an? |only |just |now )?({_NUM_WORD})(?:(?:[- ]years?)?[- ]old\b"
    r"|(?=\s*(?:[.,!?;](?!\d)|$|and\b|but\b|now\b)))",  # not "I'm 9.6"
    re.IGNORECASE,
)
_JOB_CLAIM_RE = re.compile(
    r"\b(?:I work as|[Mm]y job as|I(?:'m|\u2019m| am) employed as)\s+(?:an? |the )?([^.,;!?]+)"
)


def _fold(word: str) -> str:
    """Lower case, accents and curly apostrophes removed: ``"Tomás"`` -> ``"tomas"``."""
    decomposed = unicodedata.normalize("NFKD", word.replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _stem(word: str) -> str:
    """A crude singular: ``"fees"`` -> ``"fee"``, ``"exams"`` -> ``"exam"``."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word


def _name_key(word: str) -> str:
    """A folded name without a possessive: ``"Pat's"`` -> ``"pat"``."""
    return word[:-2] if word.endswith("'s") else word


def _number(word: str) -> int | None:
    """The value of a number token (``"68"``, ``"sixty-eight"``, ``"twelve-hour"``), else None.

    ``"one"`` alone is not read as a number: it is far more often a pronoun ("no one").
    """
    if word.isdigit():
        return int(word)
    parts = word.split("-")
    head = parts[0]
    if head in _TENS:
        tail = _UNITS.get(parts[1], 0) if len(parts) > 1 and _UNITS.get(parts[1], 10) < 10 else 0
        return _TENS[head] + tail
    if head in _UNITS and head != "one":
        return _UNITS[head]
    return None


@dataclass(frozen=True)
class _Sentence:
    """One sentence's checkable content: topic words and values by kind."""

    words: frozenset[str]
    values: Mapping[str, frozenset[str]]


def _sentences(text: str, names: frozenset[str] = frozenset()) -> list[_Sentence]:
    """Split ``text`` into sentences and read each one's topic words and values.

    Values are ``number`` (``"68"``), ``month``, ``weekday`` and ``name``: a capitalised word
    that is not the first of its sentence, or one of the ``names`` known from the card.
    """
    out = []
    for sentence in _SENTENCE_RE.split(text):
        tokens = _TOKEN_RE.findall(sentence)
        words: set[str] = set()
        values: dict[str, set[str]] = {"number": set(), "month": set(), "weekday": set()}
        values["name"] = set()
        previous_tens: str | None = None
        for i, token in enumerate(tokens):
            low = _fold(token)
            value = _number(low)
            if value is not None:
                if previous_tens is not None and low in _UNITS and _UNITS[low] < 10:
                    # "sixty eight": one number, not two
                    values["number"].discard(previous_tens)
                    value += int(previous_tens)
                values["number"].add(str(value))
                previous_tens = str(value) if low in _TENS else None
                # "twelve-hour": the number's noun is a word; "sixty-eight" has none
                words.update(
                    _stem(p) for p in low.split("-")[1:] if len(p) > 3 and _number(p) is None
                )
                continue
            previous_tens = None
            capital = token[:1].isupper() and not token.isupper()
            if capital and low in _MONTHS and (i > 0 or low != "may"):
                values["month"].add(low)
            elif capital and low in _WEEKDAYS:
                values["weekday"].add(low)
            elif capital and low not in _NOT_CLAIMED_NAMES and (i > 0 or _name_key(low) in names):
                values["name"].add(_name_key(low))
            elif low not in _STOPWORDS:
                words.update(_stem(p) for p in low.split("-") if len(p) > 3 and p not in _STOPWORDS)
        out.append(_Sentence(frozenset(words), {k: frozenset(v) for k, v in values.items() if v}))
    return out


@dataclass(frozen=True)
class _CardFacts:
    """What the lexical checks know of a card: names, each fact's topic words and values."""

    names: frozenset[str]
    topics: tuple[frozenset[str], ...]
    values: tuple[Mapping[str, frozenset[str]], ...]
    situation: Mapping[str, frozenset[str]]


_CARD_FACTS: dict[str, tuple[ScenarioCard, _CardFacts]] = {}


def _card_facts(card: ScenarioCard) -> _CardFacts:
    cached = _CARD_FACTS.get(card.id)
    if cached is not None and cached[0] is card:
        return cached[1]
    texts = [card.situation, *(c.text for c in card.need_cues)]
    texts += [t for f in card.facts for t in (f.question, f.answer)]
    names = {_fold(part) for part in card.persona.name.split()}
    for text in texts:
        for s in _sentences(text):
            names |= s.values.get("name", frozenset())
    known = frozenset(names)
    topics, values = [], []
    for fact in card.facts:
        said = _sentences(fact.question, known) + _sentences(fact.answer, known)
        topic = frozenset().union(*(s.words for s in said)) - _UNIT_WORDS
        answer = _sentences(fact.answer, known)
        kinds = {k for s in answer for k in s.values}
        topics.append(topic)
        values.append(
            {k: frozenset().union(*(s.values.get(k, frozenset()) for s in answer)) for k in kinds}
        )
    situation: dict[str, frozenset[str]] = {}
    for s in _sentences(card.situation, known):
        for k, v in s.values.items():
            situation[k] = situation.get(k, frozenset()) | v
    facts = _CardFacts(known, tuple(topics), tuple(values), situation)
    _CARD_FACTS[card.id] = (card, facts)
    return facts


def _claims(line: str) -> tuple[list[str], list[int], list[str]]:
    """The names, ages and jobs the speaker states about themselves in ``line``."""
    names = [
        _fold(m.group(1))
        for m in _NAME_CLAIM_RE.finditer(line)
        if m.group(1)[:1].isupper() and _fold(m.group(1)) not in _NOT_CLAIMED_NAMES
    ]
    ages = []
    for m in _AGE_CLAIM_RE.finditer(line):
        words = _fold(m.group(1)).replace(" ", "-")
        value = _number(words) if words != "one" else 1
        if value is not None:
            ages.append(value)
    jobs = [m.group(1) for m in _JOB_CLAIM_RE.finditer(line)]
    return names, ages, jobs


def _job_words(text: str) -> set[str]:
    tokens = [_fold(t) for t in _TOKEN_RE.findall(text)]
    return {_stem(p) for t in tokens for p in t.split("-") if len(p) > 2 and p not in _STOPWORDS}


def card_contradictions(line: str, card: ScenarioCard) -> list[str]:
    """Where one user line contradicts the card (prompt-to-line), as readable reasons.

    A lexical heuristic. A line contradicts the card when it:

    - introduces the speaker under another name (``"I'm Anna"``, ``"my name is Anna"``,
      ``"call me Anna"``; accents and case ignored) than the persona's;
    - states another age (``"I'm 25"``, ``"I'm a 25-year-old"``);
    - states a job (``"I work as a nurse"``) sharing no word with the persona's occupation;
    - in a sentence about a fact (sharing a topic word with the fact's question or answer,
      time units and function words aside), states numbers, months, weekdays or people's
      names of a kind the fact's answer has, none of which is in the answers of the facts the
      sentence is about or in the card's situation (``"I'm on sixty-five"`` against
      *"Seventy percent, and I'm on sixty-eight"*).

    Args:
        line: What the user said.
        card: The scenario card the user was built from.

    Returns:
        One reason per contradiction; empty if none was found.

    Example:
        >>> card = load_scenarios("test")[0]
        >>> card.persona.name, card.facts[0].answer
        ('Tomás', "Seventy percent, and I'm on sixty-eight.")
        >>> card_contradictions("Hi, I'm Tomas. I need seventy, I'm on sixty-eight.", card)
        []
        >>> card_contradictions("Hi, I'm Anna. My average is sixty-five now.", card)
        ["name: says 'anna', the card's persona is 'Tomás'", "fact 'What average do you need?': says number 65, the card has 68, 70"]
    """
    facts = _card_facts(card)
    reasons = []
    names, ages, jobs = _claims(line)
    persona = card.persona
    allowed_names = {_fold(part) for part in persona.name.split()}
    for name in names:
        if name not in allowed_names:
            reasons.append(f"name: says {name!r}, the card's persona is {persona.name!r}")
    for age in ages:
        if age != persona.age:
            reasons.append(f"age: says {age}, the card's persona is {persona.age}")
    occupation = _job_words(persona.occupation)
    for job in jobs:
        if not _job_words(" ".join(job.split()[:4])) & occupation:
            reasons.append(f"job: says {job.strip()!r}, the card's is {persona.occupation!r}")
    for sentence in _sentences(line, facts.names):
        about = [i for i, topic in enumerate(facts.topics) if sentence.words & topic]
        for kind, said in sentence.values.items():
            checked = [i for i in about if kind in facts.values[i]]
            if not checked:
                continue
            allowed = frozenset().union(*(facts.values[i][kind] for i in checked))
            allowed |= facts.situation.get(kind, frozenset())
            if kind == "name":  # the persona may name themselves in a sentence about a fact
                allowed |= {_fold(part) for part in persona.name.split()}
            if not said & allowed:
                question = card.facts[checked[0]].question
                reasons.append(
                    f"fact {question!r}: says {kind} {', '.join(sorted(said))}, "
                    f"the card has {', '.join(sorted(allowed))}"
                )
    return reasons


def history_contradictions(lines: Sequence[str], card: ScenarioCard) -> list[list[str]]:
    """For each user line, where it contradicts the user's earlier lines (line-to-line).

    The same lexical reading as :func:`card_contradictions`, against what the user said
    before rather than the card: a line contradicts the earlier ones when it introduces the
    speaker under a name, or states an age, other than an earlier line did, or when, in a
    sentence about one of the card's facts, it states values of a kind (number, month,
    weekday, name) that earlier sentences about the same facts stated, sharing none of them.
    A value the user stated wrongly but steadily is consistent here (it is a prompt-to-line
    contradiction instead).

    Returns:
        One list of reasons per line (the first line's is always empty).

    Example:
        >>> card = load_scenarios("test")[0]
        >>> history_contradictions(
        ...     ["I'm Tomás. My average is sixty-five.", "I'm on sixty-five, as I said.",
        ...      "Honestly my average is sixty now."], card)
        [[], [], ["fact 'What average do you need?': says number 60, earlier 65"]]
    """
    facts = _card_facts(card)
    said_names: set[str] = set()
    said_ages: set[int] = set()
    said: dict[tuple[int, str], frozenset[str]] = {}
    out = []
    for line in lines:
        reasons = []
        names, ages, _ = _claims(line)
        for name in names:
            if said_names and name not in said_names:
                reasons.append(f"name: says {name!r}, earlier {', '.join(sorted(said_names))}")
        for age in ages:
            if said_ages and age not in said_ages:
                reasons.append(f"age: says {age}, earlier {', '.join(map(str, sorted(said_ages)))}")
        new: list[tuple[tuple[int, str], frozenset[str]]] = []
        for sentence in _sentences(line, facts.names):
            about = [i for i, topic in enumerate(facts.topics) if sentence.words & topic]
            for kind, values in sentence.values.items():
                earlier = frozenset().union(*(said.get((i, kind), frozenset()) for i in about))
                if earlier and not values & earlier:
                    question = card.facts[about[0]].question
                    reasons.append(
                        f"fact {question!r}: says {kind} {', '.join(sorted(values))}, "
                        f"earlier {', '.join(sorted(earlier))}"
                    )
                new.extend(((i, kind), values) for i in about)
        # Added after the whole line is read: a line does not contradict itself.
        for key, values in new:
            said[key] = said.get(key, frozenset()) | values
        said_names.update(names)
        said_ages.update(ages)
        out.append(reasons)
    return out


def _cards_by_id(
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None,
) -> Mapping[str, ScenarioCard]:
    if cards is None:
        cards = load_scenarios("all")
    if isinstance(cards, Mapping):
        return cards
    # By id and by the opaque key a step's info names a card with.
    return {name: card for card in cards for name in (card.id, card.key)}


def prompt_to_line_consistency(
    results: Sequence[EpisodeResult],
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None = None,
) -> float:
    """Share of the user's lines, pooled over episodes, that do not contradict their card.

    A line contradicts its card as :func:`card_contradictions` finds (a lexical
    heuristic). Every recorded user line counts, the opening included. NaN when no episode
    recorded user lines or no episode's card is known.

    Args:
        results: Episodes with ``user_lines`` (``evaluation.run_episode`` records them).
        cards: The cards by id, or a sequence of cards (default: the built-in ``"all"`` set).

    Example:
        >>> card = load_scenarios("test")[0]
        >>> r = example_episode([0, 0, 0], user_lines=[
        ...     "Hi, I'm Tomás.", "I'm on sixty-eight.", "I'm Tom, by the way.", "It's hard."])
        >>> prompt_to_line_consistency([r], {"c": card})
        0.75
    """
    by_id = _cards_by_id(cards)
    flags = [
        not card_contradictions(line, by_id[r.card_id])
        for r in results
        if r.card_id in by_id
        for line in r.user_lines
    ]
    return float(np.mean(flags)) if flags else math.nan


def line_to_line_consistency(
    results: Sequence[EpisodeResult],
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None = None,
) -> float:
    """Share of the user's lines, pooled over episodes, that do not contradict earlier lines.

    Each line is read against the same episode's earlier user lines as
    :func:`history_contradictions` does (a lexical heuristic, on the card's facts). NaN when
    no episode recorded user lines or no episode's card is known.

    Example:
        >>> card = load_scenarios("test")[0]
        >>> r = example_episode([0, 0], user_lines=[
        ...     "My average is sixty-five.", "I'm on sixty-five.", "My average is sixty."])
        >>> line_to_line_consistency([r], {"c": card}) == 2 / 3
        True
    """
    by_id = _cards_by_id(cards)
    flags = [
        not reasons
        for r in results
        if r.card_id in by_id
        for reasons in history_contradictions(r.user_lines, by_id[r.card_id])
    ]
    return float(np.mean(flags)) if flags else math.nan


def _answer_tokens(text: str) -> set[str]:
    """Content words and values of ``text``, normalised (numbers by value) for overlap."""
    tokens: set[str] = set()
    for s in _sentences(text):
        tokens |= s.words
        for kind, values in s.values.items():
            tokens |= {f"{kind}:{v}" for v in values}
    return tokens


def qa_score(reply: str, answer: str) -> float:
    """Token overlap of a reply with the card's answer: the share of the answer's tokens it has.

    Tokens are content words (function words dropped, crude singulars, accents and case
    ignored) and values (numbers by value, so ``"68"`` matches ``"sixty-eight"``; months;
    weekdays; names). The score is ``|answer & reply| / |answer|`` (recall of the answer),
    1.0 for an answer with no tokens.

    Example:
        >>> qa_score("I need 70 percent and I'm on 68.", "Seventy percent, and I'm on sixty-eight.")
        1.0
        >>> qa_score("I find out in July.", "After the exams in June.")
        0.0
        >>> qa_score("After my exams.", "After the exams in June.")
        0.5
    """
    wanted = _answer_tokens(answer)
    if not wanted:
        return 1.0
    return len(wanted & _answer_tokens(reply)) / len(wanted)
