"""A learned reading of contempt: the embedding listener's second opinion on tone.

Word lists catch the stock insults ("get over it", "your own fault"); contempt said in new words
("How exactly is this anyone's fault but yours?", "which is convenient, since then you don't have
to try") slips past them. This model reads it from word and character n-grams (TF-IDF, the
classifier reader's features) and the sentence's all-MiniLM-L6-v2 embedding, each block of unit
length, with an L2-regularised logistic regression (the classifier's numpy fit, deterministic).

It is fitted, once per process, on lines written for it (``data/tone_training.yaml``: 400 hostile,
400 kind, half of those hard cases that share words with hostility), on the first two halves of
the counterfactual lines (``data/counterfactual_dev.yaml`` and ``counterfactual_held_out.yaml``,
hostile against every other style) and on the labelled support lines (all kind). The second
held-out set (``counterfactual_held_out_2.yaml``) is never used: the benchmark's report is
measured on it.

Example:
    >>> model = fitted()
    >>> a, b = model.hostile_probability(
    ...     ["Did it ever occur to you that this is nobody's fault but yours?",
    ...      "It's not your fault, and I'm glad you told me."])
    >>> bool(a > b)
    True
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dialogue_gym.user.recognise.classifier import FeatureBlock, char_features, word_features

__all__ = ["TRAINING_SOURCES", "ToneModel", "cache_dir", "fitted", "training_lines"]

#: The support sets whose lines are all kind (package data).
_KIND_SETS = (
    "labelled_utterances.yaml",
    "natural_utterances_dev.yaml",
    "natural_utterances_train.yaml",
    "natural_utterances_held_out.yaml",
)
#: The counterfactual halves used for fitting (package data).
TRAINING_SOURCES = ("counterfactual_dev.yaml", "counterfactual_held_out.yaml")
L2, ITERATIONS = 0.001, 1500
#: Bumped when the model's code changes what a fit gives (the cache key includes it).
_VERSION = 1
#: Weights of the three feature blocks (words, characters, embedding).
WEIGHTS = (1.0, 0.5, 1.0)


def _data(name: str) -> str:
    return resources.files("dialogue_gym.user").joinpath("data", name).read_text("utf-8")


def training_lines() -> tuple[tuple[str, int], ...]:
    """``(text, hostile)`` for every line the model is fitted on."""
    lines = [
        (x["text"], int(x["hostile"])) for x in yaml.safe_load(_data("tone_training.yaml"))["lines"]
    ]
    for name in _KIND_SETS:
        lines += [(u["text"], 0) for u in yaml.safe_load(_data(name))["utterances"]]
    for name in TRAINING_SOURCES:
        styles = yaml.safe_load(_data(name))["styles"]
        for style, by in styles.items():
            for strategy_lines in by.values():
                for line in strategy_lines:
                    # Slots filled with a neutral phrase: the words around them carry the tone.
                    text = line.format(topic="all of this", problem="this", name="friend")
                    lines.append((text, int(style == "hostile")))
    return tuple(lines)


def _embed(texts: Sequence[str]) -> np.ndarray:
    from dialogue_gym.user.hearing.embedding import SentenceEncoder

    return SentenceEncoder.shared().encode(list(texts)).astype(np.float64)


def _fit_binary(kernel: np.ndarray, y: np.ndarray, l2: float, iterations: int) -> tuple[Any, float]:
    """Class-balanced, L2-regularised logistic regression by Nesterov-accelerated gradient
    descent on the dual coefficients (the weights stay ``X.T @ a``, as in the classifier's fit):
    deterministic, numpy only."""
    n = len(y)
    share = y.mean()
    balance = np.where(y == 1, 0.5 / share, 0.5 / (1.0 - share))
    step = 1.0 / (0.25 * balance.max() + l2)
    a, b = np.zeros(n), 0.0
    a_look, b_look, t = a, b, 1.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(kernel @ a_look + b_look)))
        grad = (p - y) * balance / n
        a_next = a_look - step * (grad + l2 * a_look)
        b_next = b_look - step * grad.sum()
        t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        momentum = (t - 1.0) / t_next
        a_look = a_next + momentum * (a_next - a)
        b_look = b_next + momentum * (b_next - b)
        a, b, t = a_next, b_next, t_next
    return a, float(b)


class ToneModel:
    """Logistic regression over n-grams and the sentence embedding; see the module docstring."""

    def __init__(self, lines: Sequence[tuple[str, int]]) -> None:
        texts = [t for t, _ in lines]
        labels = np.array([h for _, h in lines], dtype=np.float64)
        self._words = FeatureBlock.fit([word_features(t) for t in texts], 2)
        self._chars = FeatureBlock.fit([char_features(t) for t in texts], 2)
        x = self._features(texts)
        a, self._bias = _fit_binary(x @ x.T, labels, L2, ITERATIONS)
        self._weights = x.T @ a

    def _features(self, texts: Sequence[str]) -> np.ndarray:
        w, c, e = WEIGHTS
        blocks = [
            w * self._words.transform([word_features(t) for t in texts]),
            c * self._chars.transform([char_features(t) for t in texts]),
            e * _embed(texts),
        ]
        return np.hstack(blocks) / np.sqrt(w * w + c * c + e * e)

    def hostile_probability(self, texts: Sequence[str]) -> np.ndarray:
        """The probability that each text is heard as hostile."""
        return 1.0 / (1.0 + np.exp(-(self._features(texts) @ self._weights + self._bias)))


def cache_dir() -> Path:
    """Where fitted models are kept between processes: ``$DIALOGUE_GYM_CACHE``, else
    ``~/.cache/dialogue_gym``."""
    return Path(os.environ.get("DIALOGUE_GYM_CACHE", Path.home() / ".cache" / "dialogue_gym"))


def _key(lines: Sequence[tuple[str, int]]) -> str:
    digest = hashlib.sha256(repr((lines, L2, ITERATIONS, WEIGHTS, _VERSION)).encode())
    return digest.hexdigest()[:16]


@cache
def fitted() -> ToneModel:
    """The model fitted on :func:`training_lines`, once per machine: the fit (about 25 s on 2
    cores, mostly embedding the lines) is kept in :func:`cache_dir` under a key of the training
    lines and the settings, so later processes load it in a fraction of a second. A cache that
    cannot be read or written is skipped."""
    lines = training_lines()
    path = cache_dir() / f"tone_model-{_key(lines)}.pkl"
    try:
        with path.open("rb") as fh:
            model = pickle.load(fh)
        if isinstance(model, ToneModel):
            return model
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        pass
    model = ToneModel(lines)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as fh:
            pickle.dump(model, fh)
        os.replace(partial, path)  # whole or absent: two processes may fit at once
    except OSError:
        pass
    return model
