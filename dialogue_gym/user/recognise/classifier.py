"""A second reader of strategies: a small classifier trained on the labelled utterances.

The lexical recogniser reads cue phrases written by hand, so a policy trained against it can learn
to write those phrases rather than to help (reward hacking). This reader was built independently
of it: no cue list, no rule, nothing of ``lexical.py`` — a softmax (multinomial logistic)
regression over TF-IDF word n-grams (1–2, with sentence-boundary markers) and character n-grams
(2–4, within words), fitted on ``dialogue_gym/user/data/labelled_utterances.yaml`` with numpy
only. It is deterministic (zero start, a fixed number of accelerated gradient steps), trained at
first use (a fraction of a second) and cached for the process.

Its accuracy is measured honestly by stratified k-fold cross-validation (:func:`cross_validate`:
each utterance is read by a model that never saw it): accuracy 0.683 (chance 0.125) over the
240 labelled utterances in 10 folds, 0.625 on the held-out split when fitted on the dev split.
``dialogue_gym.evaluation.audit`` sets the two readers side by side on a policy's utterances
(``python -m dialogue_gym.evaluation.audit`` prints these figures and the readers' agreement).

Registered as the ``"classifier"`` recogniser:
``gym.make("EmpathyDialogueText-v0", recogniser="classifier")``.

Example:
    >>> rec = ClassifierRecogniser()
    >>> [r.strategy for r in rec.recognise(["How long has this been going on?", ""])]
    ['Question', 'Others']
    >>> rec.recognise(["Set my emotion to 100."])[0].source
    'screen'
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from dialogue_gym.core.vocabulary import OTHERS, STRATEGIES
from dialogue_gym.user.recognise.base import Recognition, from_probabilities
from dialogue_gym.user.recognise.labelled import LabelledUtterance, load_labelled

__all__ = [
    "CHAR_WEIGHT",
    "L2",
    "LABEL_PROBABILITY",
    "ClassifierRecogniser",
    "StrategyClassifier",
    "char_features",
    "cross_validate",
    "stratified_folds",
    "trained_classifier",
    "word_features",
]

_N = len(STRATEGIES)
#: Weight of the character n-gram block against the word block (each block has unit norm).
CHAR_WEIGHT = 0.5
#: L2 penalty on the weights (per utterance, the loss being a mean).
L2 = 3e-3
#: Accelerated gradient steps (from zero: the fit is deterministic).
ITERATIONS = 300
#: Features seen in fewer training utterances than this are dropped.
MIN_COUNT = 2
#: A strategy other than the primary joins ``labels`` at this probability.
LABEL_PROBABILITY = 0.25

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[?!]")


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


def _words(text: str) -> list[str]:
    return _WORD_RE.findall(_clean(text))


def word_features(text: str) -> list[str]:
    """Word unigrams and bigrams (with start and end markers), ``?`` and ``!`` as words.

    Example:
        >>> word_features("Why not?")
        ['why', 'not', '?', '<s> why', 'why not', 'not ?', '? </s>']
    """
    words = _words(text)
    padded = ["<s>", *words, "</s>"]
    return words + [f"{a} {b}" for a, b in zip(padded, padded[1:], strict=False)]


def char_features(text: str, low: int = 2, high: int = 4) -> list[str]:
    """Character n-grams (``low``..``high``) inside each word, the word padded with spaces.

    Example:
        >>> char_features("so", 2, 3)
        [' s', 'so', 'o ', ' so', 'so ']
    """
    out: list[str] = []
    for word in _words(text):
        padded = f" {word} "
        for n in range(low, high + 1):
            out += [padded[i : i + n] for i in range(len(padded) - n + 1)]
    return out


@dataclass(frozen=True)
class FeatureBlock:
    """One TF-IDF block: vocabulary and inverse document frequencies."""

    index: dict[str, int]
    idf: np.ndarray

    @classmethod
    def fit(cls, docs: Sequence[Sequence[str]], min_count: int) -> FeatureBlock:
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(set(doc))
        vocab = sorted(f for f, c in df.items() if c >= min_count)
        n = len(docs)
        idf = np.array([np.log((1 + n) / (1 + df[f])) + 1.0 for f in vocab])
        return cls({f: i for i, f in enumerate(vocab)}, idf)

    def transform(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        x = np.zeros((len(docs), len(self.index)))
        for row, doc in enumerate(docs):
            for feature, count in Counter(doc).items():
                col = self.index.get(feature)
                if col is not None:
                    x[row, col] = 1.0 + np.log(count)  # sublinear term frequency
        x *= self.idf
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def softmax_rows(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_dual(kernel: np.ndarray, y: np.ndarray, l2: float, iterations: int) -> tuple[Any, Any]:
    """L2-regularised softmax regression by Nesterov-accelerated gradient descent.

    The weights stay ``X.T @ A`` from a zero start (each gradient step adds ``X.T @ G``), so the
    steps run on ``A`` (utterances x strategies) with the kernel ``X @ X.T``: the same iterates
    as in feature space, at a fraction of the cost. Rows of ``X`` have unit norm, so the loss's
    gradient is ``(0.5 + l2)``-Lipschitz and the step is its inverse.
    """
    n = kernel.shape[0]
    target = np.eye(_N)[y]
    step = 1.0 / (0.5 + l2)
    a, b = np.zeros((n, _N)), np.zeros(_N)
    a_look, b_look, t = a, b, 1.0
    for _ in range(iterations):
        grad = (softmax_rows(kernel @ a_look + b_look) - target) / n
        a_next = a_look - step * (grad + l2 * a_look)
        b_next = b_look - step * grad.sum(axis=0)
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        a_look = a_next + (t - 1.0) / t_next * (a_next - a)
        b_look = b_next + (t - 1.0) / t_next * (b_next - b)
        a, b, t = a_next, b_next, t_next
    return a, b


@dataclass(frozen=True)
class StrategyClassifier:
    """A fitted reader: TF-IDF blocks and softmax weights over ``STRATEGIES``.

    Build one with :meth:`fit`; :func:`trained_classifier` is the one fitted on the whole
    labelled set.
    """

    words: FeatureBlock
    chars: FeatureBlock
    weights: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: Sequence[int],
        l2: float = L2,
        iterations: int = ITERATIONS,
    ) -> StrategyClassifier:
        """Fit on ``texts`` with strategy indices ``labels``.

        Example:
            >>> clf = StrategyClassifier.fit(["How are you?", "Thanks.", "What happened?",
            ...                               "Thank you."], [0, 7, 0, 7])
            >>> [STRATEGIES[s] for s in clf.predict(["How did it go?", "Thanks a lot."])]
            ['Question', 'Others']
        """
        word_docs = [word_features(t) for t in texts]
        char_docs = [char_features(t) for t in texts]
        min_count = MIN_COUNT if len(texts) >= 20 else 1  # a toy set keeps every feature
        words = FeatureBlock.fit(word_docs, min_count)
        chars = FeatureBlock.fit(char_docs, min_count)
        x = cls._stack(words.transform(word_docs), chars.transform(char_docs))
        a, b = fit_dual(x @ x.T, np.asarray(labels, dtype=int), l2, iterations)
        return cls(words, chars, x.T @ a, b)

    @staticmethod
    def _stack(w: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.hstack([w, CHAR_WEIGHT * c]) / np.sqrt(1.0 + CHAR_WEIGHT**2)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """The feature matrix of ``texts`` (one unit-norm row each, zero when nothing is known)."""
        return self._stack(
            self.words.transform([word_features(t) for t in texts]),
            self.chars.transform([char_features(t) for t in texts]),
        )

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """``p[i, s]``: the probability that ``texts[i]`` uses strategy ``s``."""
        return softmax_rows(self.transform(texts) @ self.weights + self.bias)

    def predict(self, texts: Sequence[str]) -> list[int]:
        """The most probable strategy index of each text."""
        return [int(s) for s in self.probabilities(texts).argmax(axis=1)]

    def knows_a_word(self, text: str) -> bool:
        """Whether any word feature of ``text`` is in the vocabulary (random characters: no)."""
        return any(f in self.words.index for f in word_features(text))


@lru_cache(maxsize=1)
def trained_classifier() -> StrategyClassifier:
    """The classifier fitted on the whole packaged labelled set (fitted once per process)."""
    items = load_labelled()
    return StrategyClassifier.fit([u.text for u in items], [u.label for u in items])


def stratified_folds(labels: Sequence[int], k: int) -> list[int]:
    """Fold of each item: within each class, items go round the ``k`` folds in file order.

    Example:
        >>> stratified_folds([0, 0, 1, 0, 1], 2)
        [0, 1, 0, 0, 1]
    """
    seen: Counter[int] = Counter()
    folds = []
    for label in labels:
        folds.append(seen[label] % k)
        seen[label] += 1
    return folds


def cross_validate(k: int = 10, items: Sequence[LabelledUtterance] | None = None) -> dict[str, Any]:
    """Stratified k-fold cross-validated accuracy of the classifier on labelled utterances.

    Each fold's utterances are read by a classifier fitted (vocabulary included) on the other
    folds only, so no utterance is scored by a model that saw it.

    Args:
        k: Folds (2 or more).
        items: Labelled utterances (default: the whole packaged set).

    Returns:
        ``accuracy``, ``chance`` (the largest class's share), ``k``, ``n``,
        ``per_strategy`` (name -> recall), ``confusion`` (``m[gold][read]``),
        ``predictions`` (the out-of-fold strategy index of each item, in order) and
        ``held_out_accuracy`` (fitted on the ``dev`` split, read on ``held_out``: the
        split the lexical recogniser's authors never looked at).
    """
    if items is None:
        return dict(_cross_validate_packaged(k))
    return _cross_validate(k, tuple(items))


@lru_cache(maxsize=4)
def _cross_validate_packaged(k: int) -> dict[str, Any]:
    return _cross_validate(k, load_labelled())


def _cross_validate(k: int, items: tuple[LabelledUtterance, ...]) -> dict[str, Any]:
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    texts = [u.text for u in items]
    gold = [u.label for u in items]
    folds = stratified_folds(gold, k)
    predictions = [0] * len(items)
    for fold in range(k):
        train = [i for i, f in enumerate(folds) if f != fold]
        test = [i for i, f in enumerate(folds) if f == fold]
        if not test:
            continue
        clf = StrategyClassifier.fit([texts[i] for i in train], [gold[i] for i in train])
        for i, p in zip(test, clf.predict([texts[i] for i in test]), strict=True):
            predictions[i] = p
    confusion = [[0] * _N for _ in range(_N)]
    for g, p in zip(gold, predictions, strict=True):
        confusion[g][p] += 1
    dev = [u for u in items if u.split == "dev"]
    held = [u for u in items if u.split == "held_out"]
    held_out_accuracy = None
    if dev and held:
        clf = StrategyClassifier.fit([u.text for u in dev], [u.label for u in dev])
        read = clf.predict([u.text for u in held])
        held_out_accuracy = sum(r == u.label for r, u in zip(read, held, strict=True)) / len(held)
    n = len(items)
    return {
        "k": k,
        "n": n,
        "accuracy": sum(g == p for g, p in zip(gold, predictions, strict=True)) / max(1, n),
        "chance": max(Counter(gold).values()) / max(1, n),
        "per_strategy": {
            STRATEGIES[s]: confusion[s][s] / sum(confusion[s])
            for s in range(_N)
            if sum(confusion[s])
        },
        "confusion": confusion,
        "predictions": predictions,
        "held_out_accuracy": held_out_accuracy,
    }


class ClassifierRecogniser:
    """Read the strategy with the classifier fitted on the labelled set (a second reader).

    Silence and text addressed to the simulator are read as the lexical recogniser reads them
    (:func:`~dialogue_gym.user.recognise.base.pre_read`: both are *Others*), and so is text none
    of whose words the classifier knows; otherwise the primary act is the most probable
    strategy, and every other strategy with probability at least ``label_probability`` is also
    a label.

    Args:
        label_probability: Probability at which a secondary strategy becomes a label.
    """

    kind = "classifier"

    def __init__(self, label_probability: float = LABEL_PROBABILITY) -> None:
        self.label_probability = float(label_probability)

    def describe(self) -> dict[str, Any]:
        """What reads the acts, for ``info``."""
        return {"recogniser": self.kind}

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """The classifier's strategy probabilities for each text (``STRATEGIES`` order)."""
        return trained_classifier().probabilities(list(texts))

    def read(self, text: str) -> Recognition:
        """Recognise one utterance."""
        return self.recognise([text])[0]

    def recognise(
        self, texts: Sequence[str], seeds: Sequence[int] | None = None
    ) -> list[Recognition]:
        """Recognise a batch of utterances (``seeds`` is accepted for the protocol, unused)."""
        clf = trained_classifier()

        def unread(text: str) -> Recognition | None:
            if clf.knows_a_word(text):
                return None
            return Recognition(OTHERS, (OTHERS,), "no word the classifier knows", "classifier")

        return from_probabilities(
            texts, clf.probabilities, self.label_probability, "classifier", unread
        )
