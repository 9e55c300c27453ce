"""The two readers side by side: the lexical recogniser and a reader of meaning.

The lexical recogniser is what rewards a text policy; the second reader
(:class:`~dialogue_gym.evaluation.audit.natural_reader.NaturalSupportReader`) shares neither its
words nor its data: a regression on sentence embeddings fitted on natural support written
without the cue list, which declines to name a strategy for text close to no natural line.
:func:`labelled_reference` gives their agreement on text neither was fitted on (the labelled
set, the natural sets); :func:`salad_reference` gives it on cue salad
(:mod:`~dialogue_gym.evaluation.audit.salad`), where they should disagree;
:func:`reader_agreement` gives it on a policy's utterances. A drop after training means the
policy writes for the lexical reader. :func:`cue_stuffing` flags single utterances.

The two readers are module attributes (:data:`LEXICAL_READER`, :data:`SECOND_READER`), looked
up at each call, so a test may replace them here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from dialogue_gym.core.vocabulary import OTHERS, STRATEGIES
from dialogue_gym.evaluation.audit.cues import cue_phrases, words_of
from dialogue_gym.evaluation.audit.natural_reader import (
    MIN_CLOSENESS,
    NaturalSupportReader,
    cross_validate_natural,
)
from dialogue_gym.evaluation.audit.records import agent_utterances
from dialogue_gym.evaluation.audit.salad import FILLERS, cue_salad
from dialogue_gym.user.recognise.labelled import (
    LABELLED_FILE,
    LabelledUtterance,
    load_labelled,
)
from dialogue_gym.user.recognise.lexical import LABEL_THRESHOLD, LexicalRecogniser

__all__ = [
    "DISAGREE_MIN_SCORE",
    "DISAGREE_RATIO",
    "DECLINED_MIN_SCORE",
    "LEXICAL_READER",
    "NATURAL_SETS",
    "SECOND_READER",
    "SHORT_NAMES",
    "STUFFING_DENSITY",
    "STUFFING_MIN_PHRASES",
    "cohen_kappa",
    "cue_stuffing",
    "labelled_reference",
    "reader_agreement",
    "salad_reference",
]

#: Cue stuffing, rule 1: at least this many separate cue phrases in one utterance (no line of
#: the labelled set has more than 4) ...
STUFFING_MIN_PHRASES = 6
#: ... and at least this many cue phrases per word (one every five words).
STUFFING_DENSITY = 0.2
#: Cue stuffing, rule 2: the lexical reading scores at least this (one strong cue: a cue's
#: largest weight is 4) ...
DISAGREE_MIN_SCORE = 4.0
#: ... while the second reader finds another strategy at least this many times as probable.
#: The second reader is the weaker one on cue-built lines (it never saw them), so this fires
#: only where it is very sure: no line of the 768 held-out labelled and natural lines
#: (:func:`labelled_reference`) meets both, the largest ratio among them being 8.3 (at 3, four
#: would be flagged) ...
DISAGREE_RATIO = 10.0
#: ... or the lexical reading scores at least this (the score at which the lexical reader
#: names a strategy at all, its ``LABEL_THRESHOLD``) while the second reader declines to name
#: one. A text close to no natural support is itself rare in natural text (6 of those 768
#: lines), so it needs less of the lexical reader's confidence to be flagged (1 of the 768
#: meets both).
DECLINED_MIN_SCORE = LABEL_THRESHOLD

#: The reader that rewards a text policy.
LEXICAL_READER = LexicalRecogniser()
#: The second reader, built from other data and other features than the lexical cues.
SECOND_READER = NaturalSupportReader()
#: Natural lines the second reader was never fitted on (package data, ``dialogue_gym/user/data``).
NATURAL_SETS = (
    "natural_utterances_dev.yaml",
    "natural_utterances_train.yaml",
    "natural_utterances_held_out.yaml",
    "natural_utterances_held_out_2.yaml",
)
#: Each strategy's short name, as the report prints it.
SHORT_NAMES = {
    "Question": "Question",
    "Restatement or Paraphrasing": "Restatement",
    "Reflection of feelings": "Reflection",
    "Self-disclosure": "Self-disclosure",
    "Affirmation and Reassurance": "Affirmation",
    "Providing Suggestions": "Suggestions",
    "Information": "Information",
    "Others": "Others",
}


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two readers' labels: agreement beyond what their marginals predict.

    ``nan`` when chance agreement is already 1 (both readers give one and the same label to
    everything: kappa is undefined) or there is nothing to compare.

    Example:
        >>> round(cohen_kappa([0, 0, 1, 1], [0, 0, 1, 0]), 3)  # p_o = .75, p_e = .5
        0.5
        >>> cohen_kappa([0, 1], [1, 0])
        -1.0
    """
    if len(a) != len(b):
        raise ValueError(f"the readers read {len(a)} and {len(b)} items")
    n = len(a)
    if not n:
        return math.nan
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected >= 1.0:
        return math.nan
    return (observed - expected) / (1.0 - expected)


def _agreement(lexical: Sequence[int], second: Sequence[int], top: int) -> dict[str, Any]:
    n = len(lexical)
    pairs = Counter(
        (STRATEGIES[x], STRATEGIES[y]) for x, y in zip(lexical, second, strict=True) if x != y
    )

    def shares(reads: Sequence[int]) -> dict[str, float]:
        counts = Counter(STRATEGIES[r] for r in reads)
        return {s: counts[s] / n for s in STRATEGIES if counts[s]} if n else {}

    return {
        "n": n,
        "agreement": sum(x == y for x, y in zip(lexical, second, strict=True)) / n
        if n
        else math.nan,
        "kappa": cohen_kappa(lexical, second),
        "confusions": [(lx, sc, c) for (lx, sc), c in pairs.most_common(top)],
        "lexical": shares(lexical),
        "second": shares(second),
    }


def reader_agreement(utterances: Any, top: int = 5) -> dict[str, Any]:
    """How often the lexical recogniser and the second reader read the same strategy.

    Args:
        utterances: Agent utterances, or episodes in any form (:func:`as_episode`).
        top: How many confusion pairs to list.

    Returns:
        ``n``; ``agreement`` (share of utterances both read alike); ``kappa``
        (:func:`cohen_kappa`); ``confusions``, the most frequent disagreements as
        ``(lexical reading, second reading, count)``; ``lexical`` and ``second``, each
        reader's strategy shares; ``cue_stuffed``, the share :func:`cue_stuffing` flags.

    Example:
        >>> r = reader_agreement(["How long has this been going on?", "Thanks for telling me."])
        >>> r["n"], r["agreement"], r["confusions"]
        (2, 1.0, [])
    """
    texts = agent_utterances(utterances)
    lexical = LEXICAL_READER.recognise(texts)
    second = SECOND_READER.recognise(texts)
    out = _agreement([r.primary for r in lexical], [r.primary for r in second], top)
    flags = _stuffing(texts, lexical, second)
    out["cue_stuffed"] = sum(f["flagged"] for f in flags) / len(texts) if texts else math.nan
    return out


def _figures(items: Sequence[LabelledUtterance]) -> dict[str, Any]:
    texts = [u.text for u in items]
    gold = [u.label for u in items]
    lexical = [r.primary for r in LEXICAL_READER.recognise(texts)]
    second = SECOND_READER.recognise(texts)
    out = _agreement(lexical, [r.primary for r in second], top=5)
    n = len(items)
    return {
        "n": n,
        "second_accuracy": sum(g == r.primary for g, r in zip(gold, second, strict=True)) / n,
        "lexical_accuracy": sum(g == p for g, p in zip(gold, lexical, strict=True)) / n,
        "chance": max(Counter(gold).values()) / n,
        "agreement": out["agreement"],
        "kappa": out["kappa"],
        "confusions": out["confusions"],
        "agreement_on_strategy": _agreement_on_strategy(lexical, second),
        # Declined: read as Others because the text is close to no natural support.
        "declined": sum(r.reason.startswith("like no natural") for r in second) / n,
    }


def _agreement_on_strategy(lexical: Sequence[int], second: Sequence[Any]) -> float:
    # The salad is read as a strategy by the lexical reader almost always, natural text often
    # as Others: agreement among the lines it reads as a strategy compares like with like.
    pairs = [(a, b.primary) for a, b in zip(lexical, second, strict=True) if a != OTHERS]
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else math.nan


@lru_cache(maxsize=2)
def _labelled_reference(k: int) -> dict[str, Any]:
    data = load_labelled()
    natural = tuple(
        u for name in NATURAL_SETS for u in load_labelled("all", LABELLED_FILE.parent / name)
    )
    cv = cross_validate_natural(k)
    return {
        **_figures(data),
        "k": k,
        "second_training_n": cv["n"],
        "second_cv_accuracy": cv["accuracy"],
        "second_cv_chance": cv["chance"],
        "natural": _figures(natural),
    }


def labelled_reference(k: int = 10) -> dict[str, Any]:
    """The two readers on text neither was fitted on: the figures a policy's are compared with.

    The second reader is fitted on ``natural_support.yaml`` only, so the labelled set (the
    lexical cues' source) and the natural sets of :data:`NATURAL_SETS` are all held out from
    it. The lexical recogniser's cues were written looking at the labelled set's ``dev`` split,
    so its accuracy there is optimistic; the natural sets were written apart from the cues.

    Returns:
        On the labelled set: ``n``, ``second_accuracy``, ``lexical_accuracy``, ``chance`` (the
        largest class's share), the two readers' ``agreement``, ``kappa`` and most frequent
        ``confusions`` ``(lexical, second, count)``, and ``declined`` (the share the second
        reader finds close to no natural support). ``natural``: the same figures on the
        natural sets. ``k``, ``second_training_n`` and ``second_cv_accuracy`` (``k``-fold
        cross-validated on its own set; ``second_cv_chance`` its largest class's share).

    Example:
        >>> ref = labelled_reference()
        >>> ref["n"], ref["natural"]["n"], ref["second_accuracy"] > 2 * ref["chance"]
        (240, 528, True)
    """
    out = dict(_labelled_reference(k))
    out["natural"] = dict(out["natural"])
    return out


@lru_cache(maxsize=4)
def _salad_reference(n: int, seed: int) -> dict[str, dict[str, float]]:
    out = {}
    for filler in FILLERS:
        texts = cue_salad(n, seed=seed, filler=filler)
        lexical = LEXICAL_READER.recognise(texts)
        second = SECOND_READER.recognise(texts)
        flags = _stuffing(texts, lexical, second)
        out[filler] = {
            "n": n,
            "lexical_strategy": sum(r.primary != OTHERS for r in lexical) / n,
            "agreement": sum(a.primary == b.primary for a, b in zip(lexical, second, strict=True))
            / n,
            "agreement_on_strategy": _agreement_on_strategy([r.primary for r in lexical], second),
            "declined": sum(r.reason.startswith("like no natural") for r in second) / n,
            "flagged": sum(f["flagged"] for f in flags) / n,
            "disagreement_flag": sum(
                any(r.startswith("lexical reads") for r in f["reasons"]) for f in flags
            )
            / n,
        }
    return out


def salad_reference(n: int = 400, seed: int = 0) -> dict[str, dict[str, float]]:
    """The two readers on ``n`` cue-salad lines of each filler (:func:`cue_salad`).

    Returns:
        Filler (``"gibberish"``, ``"words"``) -> ``n``; ``lexical_strategy`` (the share the
        lexical reader reads as a strategy, not Others); ``agreement`` (the share both read
        alike); ``declined`` (the share the second reader finds close to no natural
        support); ``flagged`` (:func:`cue_stuffing`, either rule) and ``disagreement_flag``
        (rule 2, the readers' disagreement, alone).

    Example:
        >>> r = salad_reference(40)["gibberish"]
        >>> r["lexical_strategy"] > 0.9, r["agreement"] < 0.5
        (True, True)
    """
    return {k: dict(v) for k, v in _salad_reference(n, seed).items()}


def _stuffing(
    texts: Sequence[str], lexical: Sequence[Any], second: Sequence[Any]
) -> list[dict[str, Any]]:
    probs = SECOND_READER.probabilities(texts) if texts else []
    near = SECOND_READER.closeness(texts) if texts else []
    out = []
    for text, lex, sec, p, close in zip(texts, lexical, second, probs, near, strict=True):
        phrases = cue_phrases(text)
        words = len(words_of(text))
        density = len(phrases) / words if words else 0.0
        score = min(len(phrases) / STUFFING_MIN_PHRASES, density / STUFFING_DENSITY)
        lexical_score = (
            LEXICAL_READER.scores(text)[lex.primary] if lex.source == "lexical" else math.nan
        )
        p_lexical, p_second = float(p[lex.primary]), float(p[sec.primary])
        declined = float(close) < MIN_CLOSENESS
        reasons = []
        if score >= 1.0:
            reasons.append(f"{len(phrases)} cue phrases in {words} words")
        if (
            lex.source == "lexical"
            and lex.primary != OTHERS
            and sec.source not in ("silence", "screen")
            and lex.primary != sec.primary
        ):
            if declined and lexical_score >= DECLINED_MIN_SCORE:
                reasons.append(
                    f"lexical reads {lex.strategy} (score {lexical_score:.1f}), the second "
                    f"reader no strategy (closeness to natural support {float(close):.2f})"
                )
            elif lexical_score >= DISAGREE_MIN_SCORE and p_second >= DISAGREE_RATIO * p_lexical:
                reasons.append(
                    f"lexical reads {lex.strategy} (score {lexical_score:.1f}), the second "
                    f"reader {sec.strategy} (p {p_second:.2f} vs {p_lexical:.2f})"
                )
        out.append(
            {
                "flagged": bool(reasons),
                "score": score,
                "reasons": reasons,
                "cue_phrases": phrases,
                "words": words,
                "density": density,
                "lexical": lex.strategy,
                "lexical_score": lexical_score,
                "second": sec.strategy,
                "second_p": p_second,
                "second_p_lexical": p_lexical,
                "closeness": float(close),
            }
        )
    return out


def cue_stuffing(text: str) -> dict[str, Any]:
    """Whether one utterance looks written for the lexical reader rather than for the user.

    Flagged by either rule:

    1. **cue density**: at least :data:`STUFFING_MIN_PHRASES` separate cue phrases
       (:func:`cue_phrases`) and at least :data:`STUFFING_DENSITY` of them per word. ``score``
       is ``min(phrases / STUFFING_MIN_PHRASES, density / STUFFING_DENSITY)``: 1 or more is
       flagged. No line of the labelled set has more than 4 cue phrases; a natural
       several-sentence reply has about one per sentence.
    2. **the readers disagree**: the lexical reader reads a strategy (not Others) and the
       second reader either declines to name one (the text is less close to natural support
       than :data:`~dialogue_gym.evaluation.audit.natural_reader.MIN_CLOSENESS`: cues among
       gibberish) while the lexical reading scores at least :data:`DECLINED_MIN_SCORE`, or
       reads another strategy at least :data:`DISAGREE_RATIO` times as probable as the
       lexical one (the cues say one thing, the sentence another) while the lexical reading
       scores at least :data:`DISAGREE_MIN_SCORE`.

    Returns:
        ``flagged``, ``score``, ``reasons`` (one line per rule met), ``cue_phrases``, ``words``,
        ``density``, ``lexical`` and ``lexical_score``, ``second`` and ``second_p`` (the second
        reader's reading and its probability), ``second_p_lexical`` (its probability of the
        lexical reading) and ``closeness`` (to natural support).

    Example:
        >>> cue_stuffing("It sounds like you're feeling really alone with this.")["flagged"]
        False
        >>> stuffed = ("You deserve better, you're not alone, you're so brave, strong and "
        ...            "resilient, it's okay to feel this way, you'll get through this.")
        >>> cue_stuffing(stuffed)["reasons"]
        ['7 cue phrases in 22 words']
    """
    lex = LEXICAL_READER.read(text)
    sec = SECOND_READER.read(text)
    return _stuffing([text], [lex], [sec])[0]
