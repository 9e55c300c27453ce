"""The emotion reader: a line's sentiment, and whether it fits the core's emotion and change.

A scored lexicon written from first principles (no voice output was looked at; the words are
data, :mod:`~dialogue_gym.evaluation.metrics.fidelity.lexicon`) gives the line's sentiment
(negative, neutral, mixed, positive) and whether it says things just got better or worse. The
line agrees with the core when its sentiment fits the emotion band and its change words fit the
turn's change (:func:`emotion_agrees`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dialogue_gym.core.vocabulary import emotion_band
from dialogue_gym.evaluation.metrics.fidelity.lexicon import (
    BETTER_PHRASES,
    BETTER_WORDS,
    CLAUSE_BREAKS,
    NEGATORS,
    PHRASES,
    VALENCE,
    WORSE_PHRASES,
    WORSE_WORDS,
)
from dialogue_gym.evaluation.metrics.fidelity.text import WORD_RE, norm

__all__ = [
    "BAND_EXCLUDES",
    "CHANGE_MARGIN",
    "SentimentReading",
    "emotion_agrees",
    "read_sentiment",
]

#: A turn's change (emotion points) from which its direction must not be contradicted: the
#: core's own threshold for a drop that makes the user resist.
CHANGE_MARGIN = 3.0
_NEGATION_SPAN = 4  # "I don't think this is helping": the negation reaches the clause


@dataclass(frozen=True)
class SentimentReading:
    """What a line expresses about how the speaker feels.

    Attributes:
        label: ``"negative"``, ``"neutral"``, ``"mixed"`` or ``"positive"``.
        positive: The summed weight of positive words (after negation).
        negative: The summed weight of negative words (after negation), as a positive number.
        better: The line says things just got better ("that helps", "I feel lighter").
        worse: The line says things just got worse ("that makes it worse").
    """

    label: str
    positive: float
    negative: float
    better: bool
    worse: bool


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for word in WORD_RE.findall(text):
        if word.endswith("n't"):
            out.extend([word, "n't"])  # "isn't" counts as a negator after the word itself
        else:
            out.append(word)
    return out


def read_sentiment(line: str) -> SentimentReading:
    """Read the sentiment of ``line`` with the lexicon, negation-aware.

    A word's valence flips (at half weight) when a negator ("not", "never", "n't"...) stands
    within four words before it in the same clause; "better" after a negator is a worsening and the reverse.
    The label: no weight either way is neutral; weight one way only is that way; both ways,
    positive or negative when one side carries at least 70% of the weight, else mixed.

    Example:
        >>> r = read_sentiment("It's getting worse, not better.")
        >>> r.label, r.worse, r.better
        ('negative', True, False)
        >>> read_sentiment("Thanks, I suppose. I'm still not great, but it's something.").label
        'mixed'
        >>> read_sentiment("How do I even start looking for a new place?").label
        'neutral'
    """
    text = norm(line)
    pos = neg = 0.0
    better = bool(BETTER_PHRASES.search(text))
    worse = bool(WORSE_PHRASES.search(text))
    covered: list[tuple[int, int]] = []
    for pattern, value in PHRASES:
        for m in pattern.finditer(text):
            covered.append(m.span())
            if value > 0:
                pos += value
            elif value < 0:
                neg -= value
    # Mask the phrases so their words are not counted again.
    masked = list(text)
    for start, end in covered:
        masked[start:end] = " " * (end - start)
    tokens = _tokens("".join(masked))
    for i, word in enumerate(tokens):
        value = VALENCE.get(word)
        if value is None:
            continue
        negated = False
        for t in reversed(tokens[max(0, i - _NEGATION_SPAN) : i]):
            if t in CLAUSE_BREAKS:
                break
            if t in NEGATORS:
                negated = True
                break
        if negated:
            value = -0.5 * value
        if value > 0:
            pos += value
        else:
            neg -= value
        if word in BETTER_WORDS:
            if negated:
                worse = True
            else:
                better = True
        elif word in WORSE_WORDS:
            if negated:
                better = True
            else:
                worse = True
    if pos == 0 and neg == 0:
        label = "neutral"
    elif neg == 0:
        label = "positive"
    elif pos == 0:
        label = "negative"
    else:
        share = pos / (pos + neg)
        label = "positive" if share >= 0.7 else "negative" if share <= 0.3 else "mixed"
    return SentimentReading(label, round(pos, 3), round(neg, 3), better, worse)


#: The sentiments each emotion band rules out.
BAND_EXCLUDES: Mapping[str, frozenset[str]] = {
    "failing": frozenset({"positive"}),
    "low": frozenset({"positive"}),
    "middle": frozenset(),
    "good": frozenset({"negative"}),
    "top": frozenset({"negative"}),
}


def emotion_agrees(line: str, emotion: float, change: float = 0.0) -> bool:
    """Whether ``line`` expresses what the core's emotion and this turn's change say.

    The line's sentiment must fit the band of ``emotion`` (no positive line at ``failing`` or
    ``low``; no negative one at ``good`` or ``top``; ``middle`` takes any), and its change
    words the turn's ``change``: after a drop of :data:`CHANGE_MARGIN` points or more it must
    not say things got better, after such a rise not that they got worse. A line that
    expresses nothing agrees (it contradicts nothing).

    Example:
        >>> emotion_agrees("I feel a bit lighter now.", 75.0, 6.0)
        True
        >>> emotion_agrees("That helps, thanks.", 30.0, -5.0)
        False
        >>> emotion_agrees("I'm exhausted and scared.", 80.0)
        False
    """
    reading = read_sentiment(line)
    if reading.label in BAND_EXCLUDES[emotion_band(emotion)]:
        return False
    if change <= -CHANGE_MARGIN and reading.better and not reading.worse:
        return False
    return not (change >= CHANGE_MARGIN and reading.worse and not reading.better)
