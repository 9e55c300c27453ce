"""The reader of natural words: softmax regression over sentence embeddings and cue scores.

The lexical recogniser knows the stock formulas ("it sounds like you feel...") and misreads
support said without them; the n-gram classifier learned from cue-built lines. This reader sees
what a sentence *means*: each utterance is embedded with all-MiniLM-L6-v2 (the listener's model,
packaged; :mod:`dialogue_gym.user.hearing.embedding`), the lexical recogniser's eight cue scores
are appended (scaled to unit length, at weight :data:`CUE_WEIGHT`), and an L2-regularised softmax
regression (the classifier's numpy fit, deterministic) maps them to the eight strategies.

It is fitted on the labelled set's ``dev`` split and the natural lines of
:data:`TRAINING_FILES`, never on ``natural_utterances_held_out_2.yaml`` or the labelled set's
held-out split: ``python -m dialogue_gym.user.recognise --reader embedding`` and ``docs/text.md`` report
its accuracy on both held-out sets beside the other readers'.

Registered as ``"embedding"``, the default reader of ``EmpathyDialogueText-v1``.

Example:
    >>> rec = EmbeddingRecogniser()
    >>> rec.recognise(["I can hear how worn down you are.", ""])[1].source
    'silence'
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from dialogue_gym.user.recognise.base import Recognition, from_probabilities
from dialogue_gym.user.recognise.classifier import fit_dual, softmax_rows
from dialogue_gym.user.recognise.labelled import LabelledUtterance, load_labelled
from dialogue_gym.user.recognise.lexical import LexicalRecogniser

__all__ = ["CUE_WEIGHT", "TRAINING_FILES", "EmbeddingRecogniser", "fitted", "training_set"]

#: Weight of the (unit-length) cue scores beside the (unit-length) embedding.
CUE_WEIGHT = 0.3
#: L2 penalty and gradient steps of the fit.
L2, ITERATIONS = 0.001, 1500
#: Probability at which a secondary strategy becomes a label.
LABEL_PROBABILITY = 0.3
#: The natural lines it is fitted on, beside the labelled set's dev split (package data).
TRAINING_FILES = (
    "natural_utterances_dev.yaml",
    "natural_utterances_train.yaml",
    # Measured once as held out (67%, docs/text.md), then used for fitting: the second held-out
    # set, written later by another author, now measures the reader.
    "natural_utterances_held_out.yaml",
)


def training_set() -> tuple[LabelledUtterance, ...]:
    """Every utterance the reader is fitted on (no held-out line)."""
    items = list(load_labelled("dev"))
    data = resources.files("dialogue_gym.user").joinpath("data")
    for name in TRAINING_FILES:
        if data.joinpath(name).is_file():
            with resources.as_file(data.joinpath(name)) as path:
                items += load_labelled("all", path)
    return tuple(items)


def _features(texts: Sequence[str]) -> np.ndarray:
    from dialogue_gym.user.hearing.embedding import SentenceEncoder

    emb = SentenceEncoder.shared().encode(list(texts)).astype(np.float64)
    lexical = LexicalRecogniser()
    cues = np.array([lexical.scores(t) for t in texts], dtype=np.float64)
    cues /= np.maximum(np.linalg.norm(cues, axis=1, keepdims=True), 1e-12)
    return np.hstack([emb, CUE_WEIGHT * cues]) / np.sqrt(1.0 + CUE_WEIGHT**2)


class _Fit:
    def __init__(self, items: Sequence[LabelledUtterance]) -> None:
        x = _features([u.text for u in items])
        y = np.array([u.label for u in items])
        a, self.bias = fit_dual(x @ x.T, y, L2, ITERATIONS)
        self.weights = x.T @ a

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return softmax_rows(_features(texts) @ self.weights + self.bias)


@cache
def fitted() -> _Fit:
    """The reader fitted on :func:`training_set`, once per process (about a second)."""
    return _Fit(training_set())


class EmbeddingRecogniser:
    """Read the strategy from the sentence's meaning (see the module docstring).

    Silence and text addressed to the simulator are read as every reader reads them (*Others*,
    :func:`~dialogue_gym.user.recognise.base.pre_read`).

    Args:
        label_probability: Probability at which a secondary strategy becomes a label.
    """

    kind = "embedding"

    def __init__(self, label_probability: float = LABEL_PROBABILITY) -> None:
        self.label_probability = float(label_probability)

    def describe(self) -> dict[str, Any]:
        """What reads the acts, for ``info``."""
        return {"recogniser": self.kind, "model": "sentence-transformers/all-MiniLM-L6-v2"}

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Strategy probabilities for each text (``STRATEGIES`` order)."""
        return fitted().probabilities(list(texts))

    def read(self, text: str) -> Recognition:
        """Recognise one utterance."""
        return self.recognise([text])[0]

    def recognise(
        self, texts: Sequence[str], seeds: Sequence[int] | None = None
    ) -> list[Recognition]:
        """Recognise a batch (one embedding pass; ``seeds`` is accepted for the protocol)."""
        return from_probabilities(texts, self.probabilities, self.label_probability, "embedding")
