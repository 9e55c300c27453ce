"""The ``rollout_func`` form: whole conversations with the simulated user, for ``GRPOTrainer``.

:class:`DialogueRollout` plays whole conversations with the trainer's model, all episodes of a
generation batch turn by turn together (one ``generate`` call a turn), and hands TRL the token
ids by concatenation (:mod:`~dialogue_gym.integrations.trl.episode`), with ``env_mask`` 1
exactly on the policy's tokens and the episode's return under the chosen reward wrapper as the
extra field ``env_reward``. Works with any chat model whose chat template is prefix-preserving
(SmolLM2's, Qwen2.5's; no tool support needed); a template that re-renders earlier turns
(Qwen3's strips their thinking blocks) is refused on the first call
(:func:`~dialogue_gym.integrations.trl.episode.check_prefix_preserving`).

With ``manager=`` it is the hierarchical realiser: a strategy policy picks each turn's act and
the language model, which GRPO trains, says it (:mod:`~dialogue_gym.integrations.trl.manager`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.envs.text import prime_embeddings, to_action
from dialogue_gym.integrations.trl.config import grpo_config
from dialogue_gym.integrations.trl.data import prompt_key
from dialogue_gym.integrations.trl.env import (
    checked_client_kwargs,
    make_dialogue_env,
    remote_env,
    remote_settings,
)
from dialogue_gym.integrations.trl.episode import Episode, check_prefix_preserving, template_ids
from dialogue_gym.integrations.trl.extras import require
from dialogue_gym.integrations.trl.manager import DIRECTIVE_TOKENS, StrategyManager, directive

if TYPE_CHECKING:  # pragma: no cover
    from dialogue_gym.integrations.openenv import RemoteDialogueEnv

__all__ = ["DialogueRollout"]


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
    from ``dataset`` (:func:`~dialogue_gym.integrations.trl.episode_dataset` makes prompts
    unique); an unknown prompt is an error.

    vLLM (``GRPOConfig(use_vllm=True)``): each turn is generated through the trainer's
    ``vllm_generation`` (TRL syncs the weights before calling the rollout within a training
    step; a caller that calls the rollout outside one, as ``train-llm``'s evaluation does,
    must sync them first: ``trainer.vllm_generation.sync_weights()``). **Untested here** (no
    GPU, no vLLM on this machine).

    The chat template must be prefix-preserving (the token ids are concatenated turn by turn):
    the first call checks it and raises ``ValueError`` for one that is not (Qwen3's).

    A served user (``base_url=``): each conversation of a call is a session of the
    ``dialogue-gym serve --env EmpathyDialogueText-v0`` server at ``base_url``, opened on first
    use and kept for the next calls (one session per conversation of a generation batch, so
    the server's ``--max-sessions`` must be at least the generation batch size); the rest is
    the same, token for token. ``reward``, ``reward_kwargs``, ``max_turns`` and ``env_kwargs``
    still describe the user, and are checked against the server's settings when the rollout
    is built (an :class:`~dialogue_gym.InvalidArgument` names the first that differs). Call
    :meth:`close` (or use the rollout as a context manager) to free the sessions; the server
    also frees them when this process ends or after its idle timeout.

    The hierarchical realiser (``manager=``): each turn, before the policy generates, the
    manager reads the conversation's current observation (the strategy env's keys of the
    text env's) and picks a strategy; :func:`~dialogue_gym.integrations.trl.manager.directive`
    (its name, its one-line ESConv definition, "say it in one or two sentences") is appended
    to the user's message the policy reads: the opening line in the prompt (so
    ``prompt_ids`` is the prompt with it), each reply in the template tokens (``env_mask`` 0:
    never trained on). The directive is part of the message's content in ``messages`` too,
    so each turn still extends the token ids by concatenation. The manager is called once a
    policy turn (not on the final observation); its choices are each episode's ``planned``,
    beside the recogniser's reading (``strategies``); the returned dict gains ``delivery``
    (each conversation's share of turns read as planned, also logged as ``env/delivery``)
    and :attr:`history` the call's mean ``delivery``. ``manager=None`` is the flat policy,
    token for token as without the option.

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
            :data:`~dialogue_gym.integrations.trl.DEFAULT_ENV_KWARGS`); those that change the
            opening line must be the dataset's.
        base_url: ``None``: play in-process envs. Otherwise the URL of a ``dialogue-gym
            serve --env EmpathyDialogueText-v0`` server (``http://host:port``) whose users to
            play; its settings must be this rollout's (``--reward``, ``--max-turns``,
            ``--voice template`` for the default voice...); its ``--scenarios`` must hold the
            dataset's cards.
        client_kwargs: With ``base_url``: options of each session's
            :class:`~dialogue_gym.integrations.openenv.DialogueEnvClient`
            (``message_timeout_s``...).
        manager: ``None``: the flat policy. Otherwise the strategy manager of the
            hierarchical realiser: a reference policy's name (``"stage-heuristic"``...), a
            path to an SB3 model trained on ``EmpathyDialogue-v0`` (``*.zip``), a model with
            ``predict``, a policy object or an ``obs -> strategy index`` callable, or a
            :class:`~dialogue_gym.integrations.trl.manager.StrategyManager`.

    Attributes:
        episodes: The :class:`~dialogue_gym.integrations.trl.Episode` records of the last
            call, in order.
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
        ValueError: An unknown manager name, or a path that is not an SB3 model.
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
        manager: Any = None,
    ) -> None:
        if turn_tokens < 1 or max_turns < 1:
            raise ValueError("turn_tokens and max_turns must be positive")
        self.reward = reward
        self.reward_kwargs = dict(reward_kwargs or {})
        self.max_turns = int(max_turns)
        self.turn_tokens = int(turn_tokens)
        self.env_kwargs = {**dict(env_kwargs or {}), "max_turns": self.max_turns}
        self.base_url = base_url
        self.client_kwargs = checked_client_kwargs("DialogueRollout", client_kwargs)
        if manager is not None and not isinstance(manager, StrategyManager):
            manager = StrategyManager(manager)
        self.manager: StrategyManager | None = manager
        self.server: dict[str, Any] | None = None
        if base_url is not None:
            self.server = remote_settings(
                "DialogueRollout", base_url, reward, self.reward_kwargs, self.env_kwargs
            )
        self.index: dict[str, tuple[str, int, str]] = {}
        self.episodes: list[Episode] = []
        self.history: list[dict[str, float]] = []
        self._envs: dict[str, list[gym.Env | RemoteDialogueEnv]] = {}
        self._clock: dict[str, float] = {"generate_s": 0.0, "env_s": 0.0}
        self._checked_template: tuple[int, str | None] | None = None
        self.add(dataset)

    @property
    def completion_budget(self) -> int:
        """Tokens a whole conversation's completion may take: ``max_turns`` policy turns plus,
        per turn, room for the chat template's tokens around the user's reply (64), and with a
        manager its directive (:data:`~dialogue_gym.integrations.trl.manager.DIRECTIVE_TOKENS`)."""
        extra = 0 if self.manager is None else DIRECTIVE_TOKENS
        return self.max_turns * (self.turn_tokens + 64 + extra)

    def grpo_config(
        self,
        output_dir: str,
        users_per_step: int,
        num_generations: int,
        steps: int,
        learning_rate: float,
        seed: int = 0,
        device: str = "cpu",
        micro_batch: int = 0,
        **overrides: Any,
    ) -> Any:
        """A ``GRPOConfig`` for training with this rollout: one step plays ``users_per_step``
        users ``num_generations`` times each, within :attr:`completion_budget`, in
        micro-batches of ``micro_batch`` sequences (0: one) with gradient accumulation over
        the step; KL off (as RLVER), no checkpoints, no reports, the dataset's order kept.
        ``overrides`` are further ``GRPOConfig`` arguments (they win). See
        :func:`~dialogue_gym.integrations.trl.config.grpo_config`."""
        return grpo_config(
            output_dir,
            users_per_step,
            num_generations,
            steps,
            learning_rate,
            seed,
            device,
            completion_budget=self.completion_budget,
            micro_batch=micro_batch,
            **overrides,
        )

    def add(self, dataset: Any) -> None:
        """Index more rows (``prompt``, ``card``, ``seed``, optionally ``split``)."""
        for row in dataset:
            key = prompt_key(row["prompt"])
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
            return self.index[prompt_key(prompt)]
        except KeyError:
            raise KeyError(
                "DialogueRollout was handed a prompt it has not indexed (build the rollout with "
                "the trainer's dataset, or add() it; the prompt must be exactly the row's): "
                f"{prompt_key(prompt)[:200]}"
            ) from None

    def _env(self, split: str, i: int) -> gym.Env | RemoteDialogueEnv:
        if self.base_url is not None:
            # One pool of sessions whatever the split: the server has one set of cards.
            pool = self._envs.setdefault("", [])
            while len(pool) <= i:
                pool.append(remote_env(self.base_url, self.client_kwargs))
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
        torch = require("torch")
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
        template = (id(tokenizer), getattr(tokenizer, "chat_template", None))
        if template != self._checked_template:  # before any episode, not mid-conversation
            check_prefix_preserving(tokenizer)
            self._checked_template = template
        eos = set(getattr(trainer, "eos_token_ids", None) or [tokenizer.eos_token_id])
        episodes: list[Episode] = []
        envs: list[gym.Env | RemoteDialogueEnv] = []
        prompt_ids: list[list[int]] = []
        slots: dict[str, int] = {}
        # Per conversation, its manager (obs -> strategy); None for the flat policy.
        choosers: list[Callable[[Mapping[str, Any]], int] | None] = []
        for prompt in prompts:
            card, seed, split = self.user_of(prompt)
            env = self._env(split, slots.get(split, 0))
            slots[split] = slots.get(split, 0) + 1
            tick = time.perf_counter()
            obs, info = env.reset(seed=seed, options={"card": card})
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
            planned: list[str] = []
            choose = None
            if self.manager is not None:
                tick = time.perf_counter()
                choose = self.manager.start(env, seed)
                act = choose(obs)
                self._clock["env_s"] += time.perf_counter() - tick
                planned.append(STRATEGIES[act])
                messages[-1]["content"] += directive(act)
            choosers.append(choose)
            episodes.append(
                Episode(
                    card_id=card,
                    seed=seed,
                    messages=messages,
                    initial_emotion=float(info["emotion"]),
                    final_emotion=float(info["emotion"]),
                    emotions=[float(info["emotion"])],
                    user_lines=[info["user_utterance"]],
                    planned=planned,
                )
            )
            prompt_ids.append(template_ids(tokenizer, messages, add_generation_prompt=True))

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
                self._advance(episodes[i], envs[i], ids, lps, tokenizer, eos, choosers[i])

        self.episodes = episodes
        out: dict[str, list[Any]] = {
            "prompt_ids": prompt_ids,
            "completion_ids": [ep.completion_ids for ep in episodes],
            "logprobs": [ep.logprobs for ep in episodes],
            "env_mask": [ep.env_mask for ep in episodes],
            "env_reward": [ep.episode_return for ep in episodes],
            "success": [ep.success for ep in episodes],
            "final_emotion": [ep.final_emotion for ep in episodes],
            "turns": [ep.turns for ep in episodes],
            "user_left": [ep.user_left for ep in episodes],
        }
        means = ["env_reward", "success", "final_emotion", "turns", "user_left"]
        if self.manager is not None:  # the flat policy's output keeps its keys
            out["delivery"] = [ep.delivery_agreement for ep in episodes]
            means.append("delivery")
        self.history.append(
            {
                "episodes": float(len(episodes)),
                **{k: float(np.mean([float(v) for v in out[k]])) for k in means},
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
        choose: Callable[[Mapping[str, Any]], int] | None = None,
    ) -> None:
        """Say one policy turn to the user; append the user's reply as template tokens (with
        the manager's next move, when there is a manager and the conversation goes on)."""
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        tick = time.perf_counter()
        step = env.step(to_action(text))
        suffix = ""
        if choose is not None and not (step[2] or step[3]):
            act = choose(step[0])
            ep.planned.append(STRATEGIES[act])
            suffix = directive(act)
        self._clock["env_s"] += time.perf_counter() - tick
        ep.add_turn(ids, logprobs, text, step, tokenizer, eos, suffix)

    # ------------------------------------------------------------------ the reward

    @property
    def reward_func(self) -> Callable[..., list[float]]:
        """The reward function to pass as ``reward_funcs``: each completion's ``env_reward``.

        TRL logs it as ``rewards/env_reward/...``; it also logs the episodes' means as
        ``env/success``, ``env/final_emotion``, ``env/turns`` and ``env/user_left`` (and, with
        a manager, ``env/delivery``).
        """

        def env_reward(
            completions: list[Any],
            env_reward: list[float],
            log_metric: Callable[[str, float], None] | None = None,
            **kwargs: Any,
        ) -> list[float]:
            if log_metric is not None:
                for key in ("success", "final_emotion", "turns", "user_left", "delivery"):
                    if key in kwargs:
                        log_metric(f"env/{key}", float(np.mean([float(v) for v in kwargs[key]])))
            return [float(r) for r in env_reward]

        return env_reward
