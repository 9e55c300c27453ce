"""The audit's second reader: what a sentence means, learned from support written without cues.

The lexical recogniser rewards a text policy, so the reader that checks it must not share its
sources. This one shares neither its words nor its data:

- **its data**: ``dialogue_gym/user/data/natural_support.yaml`` (:data:`NATURAL_SUPPORT_FILE`),
  25 lines per ESConv strategy written as people talk, with no cue phrase of the lexical
  recogniser in any of them (a test checks every line with
  :func:`~dialogue_gym.user.recognise.lexical.cue_hits`). The labelled set the cues were written
  from, and the other natural sets, stay held out: the audit measures the reader on them.
- **its features**: the all-MiniLM-L6-v2 sentence embedding alone
  (:mod:`dialogue_gym.user.hearing.embedding`, the packaged model; nothing is downloaded), with
  no lexical cue score beside it (the ``embedding`` recogniser appends them; this reader must
  not).

**How it reads.** An L2-regularised softmax regression on the embeddings (the classifier's
numpy fit, :func:`~dialogue_gym.user.recognise.classifier.fit_dual`: a zero start and a fixed
number of full-batch steps, so the fit is deterministic and needs no seed) gives the
strategy probabilities. Logistic regression rather than nearest centroid: with 25 lines a class
the centroids pull Affirmation and Restatement into Reflection, and their 10-fold
cross-validated accuracy on the set is 0.685 against the regression's 0.730 (both without the
closeness check; :func:`cross_validate_natural` gives the reader's, with it). Then one check the regression
cannot make: **closeness**, the mean cosine similarity of the text to its
:data:`NEIGHBOURS` nearest training lines. Support that people write lands near some of them;
cue phrases strung among gibberish land near none, whatever strategy their formulas suggest. Below
:data:`MIN_CLOSENESS` the reader reads the text as *Others* ("like no natural support"), as
the lexical recogniser reads random characters: it declines to name a strategy.

The model and the fit are loaded once per process (:func:`fitted_reader`), and every text's
embedding is cached by the shared encoder.

Example:
    >>> reader = NaturalSupportReader()
    >>> reader.read("Has anyone at work noticed how much you're carrying?").strategy
    'Question'
    >>> reader.read("Blorptak zuvemi it's okay to kwarfel not your fault dribnox.").reason
    'like no natural support (closeness 0.17)'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.core.vocabulary import OTHERS
from dialogue_gym.user.recognise.base import Recognition, from_probabilities, pre_read
from dialogue_gym.user.recognise.classifier import fit_dual, softmax_rows, stratified_folds
from dialogue_gym.user.recognise.labelled import LabelledUtterance, load_labelled

__all__ = [
    "ITERATIONS",
    "L2",
    "LABEL_PROBABILITY",
    "MIN_CLOSENESS",
    "NATURAL_SUPPORT_FILE",
    "NEIGHBOURS",
    "FittedReader",
    "NaturalSupportReader",
    "cross_validate_natural",
    "fitted_reader",
    "load_natural_support",
]

#: The reader's training set (package data): natural support written without the cue list.
NATURAL_SUPPORT_FILE = (
    Path(__file__).resolve().parents[2] / "user" / "data" / "natural_support.yaml"
)
#: L2 penalty and gradient steps of the fit. 0.001 gave the best 10-fold cross-validated
#: accuracy on the set among 0.01, 0.003 and 0.001 (0.715, 0.725, 0.730).
L2, ITERATIONS = 0.001, 1500
#: Probability at which a secondary strategy becomes a label.
LABEL_PROBABILITY = 0.3
#: Closeness is the mean similarity to this many nearest training lines: one near line can be a
#: coincidence of topic, ten are a way of talking.
NEIGHBOURS = 10
#: Below this closeness the reader names no strategy. Measured on natural text it was never
#: fitted on: the 1st percentile of the 768 lines of the labelled set and the four
#: ``natural_utterances_*`` sets is 0.223 (their minimum 0.167), so about one natural line in a
#: hundred is declined; cue phrases among gibberish words have a median of 0.17.
MIN_CLOSENESS = 0.22
#: Closeness is rounded to this many decimals before the threshold sees it: float sums differ
#: in their last bits across CPUs and thread counts, and a reading should not.
DECIMALS = 3


def load_natural_support() -> tuple[LabelledUtterance, ...]:
    """The reader's training lines, in file order.

    Example:
        >>> items = load_natural_support()
        >>> len(items), sorted(Counter(u.label for u in items).values())[0]
        (200, 25)
    """
    return load_labelled("all", NATURAL_SUPPORT_FILE)


def _embed(texts: Sequence[str]) -> np.ndarray:
    from dialogue_gym.user.hearing.embedding import SentenceEncoder

    return SentenceEncoder.shared().encode(list(texts)).astype(np.float64)


@dataclass(frozen=True)
class FittedReader:
    """The fitted regression and the embedded training lines it measures closeness against.

    Build one with :meth:`fit`; :func:`fitted_reader` is the one fitted on the whole set.
    """

    weights: np.ndarray
    bias: np.ndarray
    lines: np.ndarray

    @classmethod
    def fit(cls, items: Sequence[LabelledUtterance]) -> FittedReader:
        """Fit on labelled lines (deterministic: zero start, fixed steps)."""
        x = _embed([u.text for u in items])
        a, b = fit_dual(x @ x.T, np.array([u.label for u in items]), L2, ITERATIONS)
        return cls(x.T @ a, b, x)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``p[i, s]``: the probability that ``texts[i]`` uses strategy ``s``."""
        return softmax_rows(_embed(texts) @ self.weights + self.bias)

    def closeness(self, texts: Sequence[str]) -> np.ndarray:
        """Mean cosine similarity of each text to its :data:`NEIGHBOURS` nearest lines."""
        sims = _embed(texts) @ self.lines.T
        k = min(NEIGHBOURS, self.lines.shape[0])
        return np.round(np.sort(sims, axis=1)[:, -k:].mean(axis=1), DECIMALS)


@lru_cache(maxsize=1)
def fitted_reader() -> FittedReader:
    """The reader fitted on :func:`load_natural_support`, once per process (a few seconds)."""
    return FittedReader.fit(load_natural_support())


def cross_validate_natural(k: int = 10) -> dict[str, Any]:
    """Stratified ``k``-fold cross-validated accuracy of the reader on its own set.

    Each fold is read by a reader fitted on the other folds (closeness included), so the figure
    is the reader's accuracy on natural support it never saw.

    Returns:
        ``k``, ``n``, ``accuracy``, ``chance`` (the largest class's share) and ``predictions``
        (each line's out-of-fold strategy index, in file order).
    """
    return dict(_cross_validate_natural(k))


@lru_cache(maxsize=2)
def _cross_validate_natural(k: int) -> dict[str, Any]:
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    items = load_natural_support()
    gold = [u.label for u in items]
    folds = stratified_folds(gold, k)
    predictions = [OTHERS] * len(items)
    for fold in range(k):
        train = [u for u, f in zip(items, folds, strict=True) if f != fold]
        test = [i for i, f in enumerate(folds) if f == fold]
        reader = NaturalSupportReader(FittedReader.fit(train))
        for i, r in zip(test, reader.recognise([items[i].text for i in test]), strict=True):
            predictions[i] = r.primary
    n = len(items)
    return {
        "k": k,
        "n": n,
        "accuracy": sum(g == p for g, p in zip(gold, predictions, strict=True)) / n,
        "chance": max(Counter(gold).values()) / n,
        "predictions": predictions,
    }


class NaturalSupportReader:
    """Read the strategy from the sentence's meaning, as natural support says it.

    Silence and text addressed to the simulator are read as every reader reads them
    (:func:`~dialogue_gym.user.recognise.base.pre_read`: *Others*); text less close than
    :data:`MIN_CLOSENESS` to the natural lines is *Others* too ("like no natural support");
    otherwise the primary act is the most probable strategy, and every other one of probability
    at least ``label_probability`` is a further label.

    Args:
        model: The fitted reader (default: :func:`fitted_reader`, at first use).
        label_probability: Probability at which a secondary strategy becomes a label.

    Example:
        >>> NaturalSupportReader().recognise(["Want to grab a coffee and talk it through?",
        ...                                   "  "])[1].source
        'silence'
    """

    kind = "natural"

    def __init__(
        self, model: FittedReader | None = None, label_probability: float = LABEL_PROBABILITY
    ) -> None:
        self._model = model
        self.label_probability = float(label_probability)

    @property
    def model(self) -> FittedReader:
        """The fitted reader this one reads with."""
        return self._model if self._model is not None else fitted_reader()

    def describe(self) -> dict[str, Any]:
        """What reads the acts, for ``info``."""
        return {"recogniser": self.kind, "model": "sentence-transformers/all-MiniLM-L6-v2"}

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Strategy probabilities for each text (``STRATEGIES`` order), closeness aside."""
        return self.model.probabilities(list(texts))

    def closeness(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's closeness to natural support (:meth:`FittedReader.closeness`)."""
        return self.model.closeness(list(texts))

    def read(self, text: str) -> Recognition:
        """Recognise one utterance."""
        return self.recognise([text])[0]

    def recognise(
        self, texts: Sequence[str], seeds: Sequence[int] | None = None
    ) -> list[Recognition]:
        """Recognise a batch (one embedding pass; ``seeds`` is accepted for the protocol)."""
        texts = list(texts)
        todo = [t for t in texts if pre_read(t) is None]
        near = dict(zip(todo, self.closeness(todo).tolist(), strict=True)) if todo else {}

        def unread(text: str) -> Recognition | None:
            if near[text] >= MIN_CLOSENESS:
                return None
            reason = f"like no natural support (closeness {near[text]:.2f})"
            return Recognition(OTHERS, (OTHERS,), reason, self.kind)

        return from_probabilities(
            texts, self.model.probabilities, self.label_probability, self.kind, unread
        )
