"""How much GPU memory a GRPO step of ``dialogue-gym train-llm`` needs, before it runs.

A back-of-the-envelope estimate, in GiB (2**30 bytes), of what the trainer holds at its peak
(the backward pass of one micro-batch), part by part:

- **weights**: every parameter, fp32 (``--bf16`` is mixed precision: the weights stay fp32,
  because a learning rate of 1e-6 moves a bf16 weight by less than its rounding step); with
  LoRA the base weights are frozen and held in the compute dtype, the adapters in fp32;
- **gradients**: fp32, of the trained parameters only (all of them, or the LoRA adapters);
- **optimiser**: AdamW's two fp32 moments per trained parameter;
- **reference model**: a second copy of the weights when the KL coefficient ``beta`` > 0
  (none with LoRA: TRL disables the adapter to get the reference);
- **activations**: what autograd keeps for the backward pass, per token and layer about
  ``11 * hidden + 4 * intermediate`` values (norms, q/k/v/o, the gated MLP's four tensors;
  attention scores are not kept with SDPA/flash attention), in the compute dtype; with
  gradient checkpointing, each layer's input plus one layer's full set while it is recomputed;
- **logits**: ``micro_batch x sequence x vocabulary`` values in the compute dtype and their
  gradient (the vocabulary dominates small models: 151,936 for Qwen, 49,152 for SmolLM2).

The sequence is the prompt (system prompt and the user's opening, at most
:data:`PROMPT_TOKENS`) plus the completion budget, ``max_turns x (turn_tokens + 64)``. vLLM
colocated takes its own ``vllm_gpu_memory_utilization`` share of the GPU first; the rest must
hold the estimate with :data:`HEADROOM` to spare (the CUDA context, the allocator's
fragmentation, the evaluation's KV cache). Estimates, not measurements: they are meant to say
which knob to turn (micro-batch, checkpointing, LoRA) before an hour is spent loading a model.

Example (a 1.5B model, hand-written shape: the numbers of Qwen2.5-1.5B-Instruct):

    >>> shape = ModelShape(params=1_543_714_304, vocab_size=151_936, hidden_size=1536,
    ...                    intermediate_size=8960, num_layers=28, linear_in_out=41_216 * 28)
    >>> est = estimate_memory(shape, micro_batch=4, sequence=sequence_length(8, 128),
    ...                       dtype="bfloat16", gradient_checkpointing=True)
    >>> est.describe()
    '27.96 GiB (weights 5.75, gradients 5.75, optimiser 11.50, activations 1.19, logits 3.77)'
    >>> fits(est, gpu_memory_gib(gpu="h100"), vllm_share=0.3)
    True
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dialogue_gym.integrations.trl.extras import require

__all__ = [
    "GPUS",
    "HEADROOM",
    "PROMPT_TOKENS",
    "MemoryEstimate",
    "ModelShape",
    "check_fits",
    "estimate_memory",
    "fits",
    "gpu_memory_gib",
    "sequence_length",
]

GIB = 2**30
#: Tokens allowed for the prompt (the system prompt and the user's opening line: at most 81
#: with SmolLM2's template on the train and test cards).
PROMPT_TOKENS = 128
#: The share of the trainer's memory the estimate may take (the rest: CUDA context, allocator
#: fragmentation, the evaluation's KV cache).
HEADROOM = 0.9
#: Memory of the GPUs ``--gpu`` names, GiB (the nominal size; nvidia-smi shows a little less).
GPUS: dict[str, float] = {
    "h100": 80.0,
    "h200": 141.0,
    "a100": 80.0,
    "a100-40": 40.0,
    "l40s": 48.0,
    "a10g": 24.0,
    "l4": 24.0,
    "rtx4090": 24.0,
    "t4": 16.0,
}
#: The token count of a conversation per policy turn beyond its own tokens: the chat
#: template around the user's reply (the rollout's ``completion_budget``).
TEMPLATE_TOKENS_PER_TURN = 64
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a causal LM.

    Attributes:
        params: Parameters (tied embeddings counted once).
        vocab_size: The output layer's width.
        hidden_size: The residual stream's width.
        intermediate_size: The MLP's inner width.
        num_layers: Decoder layers.
        linear_in_out: Sum of ``in_features + out_features`` over the decoder's linear layers
            (the output layer excluded): a LoRA of rank ``r`` on all of them trains
            ``r * linear_in_out`` parameters.
    """

    params: int
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    linear_in_out: int

    @classmethod
    def of(cls, model: Any) -> ModelShape:
        """The shape of a model (real weights or on the ``meta`` device)."""
        torch = require("torch")
        config = model.config
        head = model.get_output_embeddings()
        linear = sum(
            m.in_features + m.out_features
            for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m is not head
        )
        hidden = int(config.hidden_size)
        return cls(
            params=sum(p.numel() for p in model.parameters()),
            vocab_size=int(config.vocab_size),
            hidden_size=hidden,
            intermediate_size=int(getattr(config, "intermediate_size", None) or 4 * hidden),
            num_layers=int(config.num_hidden_layers),
            linear_in_out=int(linear),
        )

    @classmethod
    def from_config(cls, config: Any) -> ModelShape:
        """The shape of the model a ``transformers`` config describes, built on the ``meta``
        device (no memory, no weights read)."""
        torch = require("torch")
        transformers = require("transformers")
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
        return cls.of(model)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """The estimate's parts in bytes (``parts``) and what it was computed for (``setting``)."""

    parts: dict[str, int]
    setting: dict[str, Any]

    @property
    def total(self) -> int:
        """All parts, bytes."""
        return sum(self.parts.values())

    @property
    def total_gib(self) -> float:
        """All parts, GiB."""
        return self.total / GIB

    def describe(self) -> str:
        """One line: the total and its parts, in GiB.

        Example:
            >>> MemoryEstimate({"weights": 2 * GIB, "logits": GIB // 2}, {}).describe()
            '2.50 GiB (weights 2.00, logits 0.50)'
        """
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.parts.items() if v)
        return f"{self.total_gib:.2f} GiB ({parts})"


def sequence_length(max_turns: int, turn_tokens: int, prompt_tokens: int = PROMPT_TOKENS) -> int:
    """The longest token sequence of one conversation: the prompt plus ``max_turns`` policy
    turns of ``turn_tokens`` and the template's 64 tokens around each user reply.

    Example:
        >>> sequence_length(4, 40)
        544
    """
    return prompt_tokens + max_turns * (turn_tokens + TEMPLATE_TOKENS_PER_TURN)


def estimate_memory(
    shape: ModelShape,
    *,
    micro_batch: int,
    sequence: int,
    dtype: str = "float32",
    gradient_checkpointing: bool = False,
    lora_rank: int = 0,
    reference_model: bool = False,
) -> MemoryEstimate:
    """The trainer's peak memory for one micro-batch's forward and backward pass.

    Args:
        shape: The model's shape (:meth:`ModelShape.of`, :meth:`ModelShape.from_config`).
        micro_batch: Sequences a forward/backward pass holds (``per_device_train_batch_size``).
        sequence: Tokens a sequence (:func:`sequence_length`).
        dtype: The compute dtype: ``"float32"``, ``"bfloat16"`` (``--bf16``) or
            ``"float16"``.
        gradient_checkpointing: Activations are recomputed in the backward pass.
        lora_rank: LoRA's rank on every linear layer of the decoder (0: full fine-tuning).
        reference_model: A reference copy of the weights is held (``beta`` > 0 without LoRA).

    Returns:
        The parts: weights, gradients, optimiser, reference model, activations, logits.

    Raises:
        ValueError: An unknown dtype, or a micro-batch, sequence or rank out of range.

    Example (SmolLM2-135M's shape, full fine-tuning in fp32, 8 sequences of 544 tokens):

        >>> shape = ModelShape(params=134_515_008, vocab_size=49_152, hidden_size=576,
        ...                    intermediate_size=1536, num_layers=30, linear_in_out=0)
        >>> est = estimate_memory(shape, micro_batch=8, sequence=544)
        >>> {k: round(v / GIB, 2) for k, v in est.parts.items()}  # doctest: +NORMALIZE_WHITESPACE
        {'weights': 0.5, 'gradients': 0.5, 'optimiser': 1.0, 'reference model': 0.0,
         'activations': 6.07, 'logits': 1.59}
    """
    if dtype not in BYTES:
        raise ValueError(f"dtype {dtype!r}: allowed: {', '.join(BYTES)}")
    if micro_batch < 1 or sequence < 1 or lora_rank < 0:
        raise ValueError(
            f"micro_batch ({micro_batch}) and sequence ({sequence}) must be >= 1 and "
            f"lora_rank ({lora_rank}) >= 0"
        )
    act = BYTES[dtype]
    tokens = micro_batch * sequence
    if lora_rank:
        trained = lora_rank * shape.linear_in_out
        # Frozen base weights need no fp32 master copy; the adapters do.
        weights = shape.params * act + trained * 4
        reference = 0
    else:
        trained = shape.params
        weights = shape.params * 4
        reference = shape.params * 4 if reference_model else 0
    per_layer = 11 * shape.hidden_size + 4 * shape.intermediate_size
    if gradient_checkpointing:
        stored = shape.num_layers * shape.hidden_size + per_layer
    else:
        stored = shape.num_layers * per_layer
    parts = {
        "weights": weights,
        "gradients": trained * 4,
        "optimiser": trained * 8,
        "reference model": reference,
        "activations": tokens * stored * act,
        "logits": 2 * tokens * shape.vocab_size * act,
    }
    setting = {
        "micro_batch": micro_batch,
        "sequence": sequence,
        "dtype": dtype,
        "gradient_checkpointing": gradient_checkpointing,
        "lora_rank": lora_rank,
        "trained_params": trained,
    }
    return MemoryEstimate(parts, setting)


def gpu_memory_gib(gpu: str | None = None, memory_gib: float | None = None) -> float | None:
    """The GPU's memory in GiB: ``memory_gib`` if given, else the named GPU's (:data:`GPUS`),
    else ``None``.

    Raises:
        ValueError: An unknown GPU name, or a memory size that is not positive.

    Example:
        >>> gpu_memory_gib(gpu="H100"), gpu_memory_gib(memory_gib=24), gpu_memory_gib()
        (80.0, 24.0, None)
    """
    if memory_gib is not None:
        if memory_gib <= 0:
            raise ValueError(f"GPU memory must be > 0 GiB, got {memory_gib}")
        return float(memory_gib)
    if gpu is None:
        return None
    try:
        return GPUS[gpu.lower()]
    except KeyError:
        raise ValueError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}") from None


def available_gib(capacity_gib: float, vllm_share: float = 0.0) -> float:
    """What the trainer may use of ``capacity_gib``: vLLM's share taken first, then
    :data:`HEADROOM`.

    Example:
        >>> available_gib(80.0, vllm_share=0.3)
        50.4
    """
    return round(capacity_gib * (1.0 - vllm_share) * HEADROOM, 6)


def fits(estimate: MemoryEstimate, capacity_gib: float, vllm_share: float = 0.0) -> bool:
    """Whether the estimate fits in :func:`available_gib`."""
    return estimate.total_gib <= available_gib(capacity_gib, vllm_share)


def check_fits(estimate: MemoryEstimate, capacity_gib: float, vllm_share: float = 0.0) -> None:
    """Refuse an estimate that does not fit, saying what to change.

    Raises:
        ValueError: The estimate, its parts and the knobs that shrink the largest ones.

    Example:
        >>> est = MemoryEstimate({"weights": 75 * GIB}, {"micro_batch": 4, "lora_rank": 0,
        ...                      "gradient_checkpointing": False, "dtype": "float32"})
        >>> check_fits(est, 80.0)
        Traceback (most recent call last):
        ...
        ValueError: the GRPO step needs about 75.00 GiB (weights 75.00) but 80 GiB leaves 72.0 GiB ...
    """
    room = available_gib(capacity_gib, vllm_share)
    if estimate.total_gib <= room:
        return
    s = estimate.setting
    advice = []
    acts = estimate.parts.get("activations", 0) + estimate.parts.get("logits", 0)
    if acts and s.get("micro_batch", 1) > 1:
        advice.append(
            f"a smaller --micro-batch (now {s['micro_batch']}; activations and logits "
            "scale with it)"
        )
    if acts and not s.get("gradient_checkpointing"):
        advice.append("--gradient-checkpointing (keeps one layer's activations, not all)")
    if acts and s.get("dtype") == "float32":
        advice.append("--bf16 (halves activations and logits)")
    if not s.get("lora_rank"):
        advice.append("--lora 16 (gradients and AdamW's moments for the adapters only)")
    if estimate.parts.get("reference model"):
        advice.append("--beta 0 (no reference model)")
    if vllm_share:
        advice.append(f"a smaller vLLM share (now {vllm_share:.0%} of the GPU)")
    advice.append("a smaller model or a larger GPU")
    raise ValueError(
        f"the GRPO step needs about {estimate.describe()} but {capacity_gib:g} GiB leaves "
        f"{room:.1f} GiB for the trainer"
        + (f" after vLLM's {vllm_share:.0%}" if vllm_share else "")
        + f" and {1 - HEADROOM:.0%} headroom; try: "
        + "; ".join(advice)
    )
