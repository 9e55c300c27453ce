"""TRL adapter: train a language model on ``EmpathyDialogueText-v0`` with TRL's ``GRPOTrainer``.

Two forms, as TRL offers them (both use only the env's public API: ``gym.make``,
``reset``/``step`` and ``info``):

- :class:`DialogueRollout`, a ``rollout_func``: plays whole conversations with the trainer's
  model, all episodes of a generation batch turn by turn together (one ``generate`` call a
  turn), and hands TRL the token ids **by concatenation** (token in, token out: the policy's
  sampled tokens, then the chat template's tokens for the user's reply and the next assistant
  header, then the policy's next turn...), with ``env_mask`` 1 exactly on the policy's tokens
  and the episode's return under the chosen reward wrapper as the extra field ``env_reward``.
  Works with any chat model whose chat template is prefix-preserving (SmolLM2's, Qwen2.5's; no
  tool support needed); Qwen3's, which strips earlier turns' thinking, is refused.
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

Modules:

- :mod:`~dialogue_gym.integrations.trl.models`: the policy and its tokenizer
  (:func:`load_policy`, :func:`tiny_policy`, :func:`smollm2_tokenizer`,
  :func:`tool_chat_template`);
- :mod:`~dialogue_gym.integrations.trl.env`: the simulated user both forms play
  (:func:`make_dialogue_env`, :data:`ENV_ID`, :data:`DEFAULT_ENV_KWARGS`; a served user's
  session, checked against the form's settings);
- :mod:`~dialogue_gym.integrations.trl.data`: the prompt dataset (:func:`episode_dataset`,
  :data:`SYSTEM_PROMPT`, :data:`TOOL_SYSTEM_PROMPT`);
- :mod:`~dialogue_gym.integrations.trl.episode`: the :class:`Episode` record and how a turn
  extends its token ids and ``env_mask``;
- :mod:`~dialogue_gym.integrations.trl.rollout`: :class:`DialogueRollout`, the
  ``rollout_func`` form;
- :mod:`~dialogue_gym.integrations.trl.config`: the ``GRPOConfig`` a rollout trains with
  (:meth:`DialogueRollout.grpo_config`);
- :mod:`~dialogue_gym.integrations.trl.manager`: the hierarchical realiser's strategy manager
  (``DialogueRollout(manager=...)``: a strategy policy picks each turn's act, the language
  model says it);
- :mod:`~dialogue_gym.integrations.trl.memory`: the GPU memory a GRPO step needs, estimated
  before the run (:func:`~dialogue_gym.integrations.trl.memory.estimate_memory`);
- :mod:`~dialogue_gym.integrations.trl.tool_env`: :class:`DialogueToolEnv` and
  :class:`ToolEnvFactory`, the ``environment_factory`` form;
- :mod:`~dialogue_gym.integrations.trl.extras`: the optional packages, imported on demand.

Inside this package ``import trl`` is the third-party TRL (imports are absolute), never this
adapter.

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
also needs ``dialogue_gym[serve]``); this package imports them only when a function needs them.
"""

from __future__ import annotations

from dialogue_gym.integrations.trl.data import SYSTEM_PROMPT, TOOL_SYSTEM_PROMPT, episode_dataset
from dialogue_gym.integrations.trl.env import DEFAULT_ENV_KWARGS, ENV_ID, make_dialogue_env
from dialogue_gym.integrations.trl.episode import Episode
from dialogue_gym.integrations.trl.models import (
    DEFAULT_TOOL_TEMPLATE,
    load_policy,
    smollm2_tokenizer,
    tiny_policy,
    tool_chat_template,
)
from dialogue_gym.integrations.trl.rollout import DialogueRollout
from dialogue_gym.integrations.trl.tool_env import DialogueToolEnv, ToolEnvFactory

__all__ = [
    "DEFAULT_ENV_KWARGS",
    "DEFAULT_TOOL_TEMPLATE",
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
