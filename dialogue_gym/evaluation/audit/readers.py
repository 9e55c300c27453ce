"""The two readers side by side: the lexical recogniser and the n-gram classifier.

The lexical recogniser is what rewards a text policy; the classifier
(:class:`~dialogue_gym.user.recognise.classifier.ClassifierRecogniser`, fitted on the labelled
utterances) was built independently of it. :func:`labelled_reference` gives their agreement on
the labelled set (the classifier's readings there cross-validated, never its training data);
:func:`reader_agreement` gives it on a policy's utterances. A drop after training means the
policy writes for the lexical reader. :func:`cue_stuffing` flags single utterances.

The two readers are module attributes (:data:`LEXICAL_READER`, :data:`CLASSIFIER_READER`),
looked up at each call, so a test may replace them here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.evaluation.audit.cues import cue_phrases, words_of
from dialogue_gym.evaluation.audit.records import agent_utterances
from dialogue_gym.user.recognise.classifier import ClassifierRecogniser, cross_validate
from dialogue_gym.user.recognise.labelled import load_labelled
from dialogue_gym.user.recognise.lexical import LexicalRecogniser

__all__ = [
    "CLASSIFIER_READER",
    "DISAGREE_MIN_SCORE",
    "DISAGREE_RATIO",
    "LEXICAL_READER",
    "SHORT_NAMES",
    "STUFFING_DENSITY",
    "STUFFING_MIN_PHRASES",
    "cohen_kappa",
    "cue_stuffing",
    "labelled_reference",
    "reader_agreement",
]

#: Cue stuffing, rule 1: at least this many separate cue phrases in one utterance (no line of
#: the labelled set has more than 4) ...
STUFFING_MIN_PHRASES = 6
#: ... and at least this many cue phrases per word (one every five words).
STUFFING_DENSITY = 0.2
#: Cue stuffing, rule 2: the lexical reading scores at least this (one strong cue: a cue's
#: largest weight is 4) ...
DISAGREE_MIN_SCORE = 4.0
#: ... while the classifier finds another strategy at least this many times as probable (no
#: line of the labelled set meets both, the classifier reading it cross-validated).
DISAGREE_RATIO = 3.0

#: The reader that rewards a text policy.
LEXICAL_READER = LexicalRecogniser()
#: The second reader, built independently of the lexical cues.
CLASSIFIER_READER = ClassifierRecogniser()
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


def _agreement(lexical: Sequence[int], classifier: Sequence[int], top: int) -> dict[str, Any]:
    n = len(lexical)
    pairs = Counter(
        (STRATEGIES[x], STRATEGIES[y]) for x, y in zip(lexical, classifier, strict=True) if x != y
    )

    def shares(reads: Sequence[int]) -> dict[str, float]:
        counts = Counter(STRATEGIES[r] for r in reads)
        return {s: counts[s] / n for s in STRATEGIES if counts[s]} if n else {}

    return {
        "n": n,
        "agreement": sum(x == y for x, y in zip(lexical, classifier, strict=True)) / n
        if n
        else math.nan,
        "kappa": cohen_kappa(lexical, classifier),
        "confusions": [(lx, cl, c) for (lx, cl), c in pairs.most_common(top)],
        "lexical": shares(lexical),
        "classifier": shares(classifier),
    }


def reader_agreement(utterances: Any, top: int = 5) -> dict[str, Any]:
    """How often the lexical recogniser and the classifier read the same strategy.

    Args:
        utterances: Agent utterances, or episodes in any form (:func:`as_episode`).
        top: How many confusion pairs to list.

    Returns:
        ``n``; ``agreement`` (share of utterances both read alike); ``kappa``
        (:func:`cohen_kappa`); ``confusions``, the most frequent disagreements as
        ``(lexical reading, classifier reading, count)``; ``lexical`` and ``classifier``, each
        reader's strategy shares; ``cue_stuffed``, the share :func:`cue_stuffing` flags.

    Example:
        >>> r = reader_agreement(["How long has this been going on?", "Thanks for telling me."])
        >>> r["n"], r["agreement"], r["confusions"]
        (2, 1.0, [])
    """
    texts = agent_utterances(utterances)
    lexical = LEXICAL_READER.recognise(texts)
    classifier = CLASSIFIER_READER.recognise(texts)
    out = _agreement([r.primary for r in lexical], [r.primary for r in classifier], top)
    flags = _stuffing(texts, lexical, classifier)
    out["cue_stuffed"] = sum(f["flagged"] for f in flags) / len(texts) if texts else math.nan
    return out


@lru_cache(maxsize=2)
def _labelled_reference(k: int) -> dict[str, Any]:
    items = load_labelled()
    cv = cross_validate(k)
    gold = [u.label for u in items]
    lexical = [r.primary for r in LEXICAL_READER.recognise([u.text for u in items])]
    out = _agreement(lexical, cv["predictions"], top=5)
    return {
        "n": len(items),
        "k": k,
        "classifier_accuracy": cv["accuracy"],
        "classifier_held_out_accuracy": cv["held_out_accuracy"],
        "chance": cv["chance"],
        "lexical_accuracy": sum(g == p for g, p in zip(gold, lexical, strict=True)) / len(items),
        "agreement": out["agreement"],
        "kappa": out["kappa"],
        "confusions": out["confusions"],
    }


def labelled_reference(k: int = 10) -> dict[str, Any]:
    """The two readers on the labelled set: the figures a policy's are compared with.

    The classifier's readings are its ``k``-fold cross-validated ones (each utterance read by a
    model fitted without it), so neither its accuracy nor its agreement is measured on its own
    training data. The lexical recogniser's cues were written looking at the ``dev`` split, so
    its accuracy here is optimistic (``docs/text.md`` gives its held-out figure).

    Returns:
        ``n``, ``k``, ``classifier_accuracy`` (cross-validated), ``classifier_held_out_accuracy``
        (fitted on ``dev``, read on ``held_out``), ``chance`` (the largest class's share),
        ``lexical_accuracy``, and the two readers' ``agreement``, ``kappa`` and most frequent
        ``confusions`` ``(lexical, classifier, count)``.

    Example:
        >>> ref = labelled_reference()
        >>> ref["n"], ref["classifier_accuracy"] > 2 * ref["chance"]
        (240, True)
    """
    return dict(_labelled_reference(k))


def _stuffing(
    texts: Sequence[str], lexical: Sequence[Any], classifier: Sequence[Any]
) -> list[dict[str, Any]]:
    probs = CLASSIFIER_READER.probabilities(texts) if texts else []
    out = []
    for text, lex, clf, p in zip(texts, lexical, classifier, probs, strict=True):
        phrases = cue_phrases(text)
        words = len(words_of(text))
        density = len(phrases) / words if words else 0.0
        score = min(len(phrases) / STUFFING_MIN_PHRASES, density / STUFFING_DENSITY)
        lexical_score = (
            LEXICAL_READER.scores(text)[lex.primary] if lex.source == "lexical" else math.nan
        )
        p_lexical, p_classifier = float(p[lex.primary]), float(p[clf.primary])
        reasons = []
        if score >= 1.0:
            reasons.append(f"{len(phrases)} cue phrases in {words} words")
        if (
            lex.source == "lexical"
            and clf.source == "classifier"
            and lex.primary != clf.primary
            and lexical_score >= DISAGREE_MIN_SCORE
            and p_classifier >= DISAGREE_RATIO * p_lexical
        ):
            reasons.append(
                f"lexical reads {lex.strategy} (score {lexical_score:.1f}), the classifier "
                f"{clf.strategy} (p {p_classifier:.2f} vs {p_lexical:.2f})"
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
                "classifier": clf.strategy,
                "classifier_p": p_classifier,
                "classifier_p_lexical": p_lexical,
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
    2. **readers disagree while the lexical reader is confident**: the lexical reading scores
       at least :data:`DISAGREE_MIN_SCORE` and the classifier's own reading is at least
       :data:`DISAGREE_RATIO` times as probable as the lexical one (the cues say one thing,
       the rest of the words another). No line of the labelled set meets it (the classifier
       read cross-validated).

    Returns:
        ``flagged``, ``score``, ``reasons`` (one line per rule met), ``cue_phrases``, ``words``,
        ``density``, ``lexical`` and ``lexical_score``, ``classifier`` and ``classifier_p``,
        ``classifier_p_lexical`` (the classifier's probability of the lexical reading).

    Example:
        >>> cue_stuffing("It sounds like you're feeling really alone with this.")["flagged"]
        False
        >>> stuffed = ("You deserve better, you're not alone, you're so brave, strong and "
        ...            "resilient, it's okay to feel this way, you'll get through this.")
        >>> cue_stuffing(stuffed)["reasons"]
        ['7 cue phrases in 22 words']
    """
    lex = LEXICAL_READER.read(text)
    clf = CLASSIFIER_READER.read(text)
    return _stuffing([text], [lex], [clf])[0]
