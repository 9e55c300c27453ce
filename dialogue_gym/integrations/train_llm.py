"""Train a language-model policy on the text env (v1, the hearing user, by default) with TRL's
GRPO, and audit it.

CleanRL style: one :class:`Args` dataclass (tyro), one :func:`main`. What ``dialogue-gym
train-llm`` and ``benchmarks/train_llm.py`` run (in the package so the command works from an
install). One run = one named reward wrapper:

1. load the policy (the embedded SmolLM2-135M-Instruct de-quantised from its GGUF by
   transformers, any Hugging Face causal LM with ``--model``, or a random-weights ``--tiny``
   model of SmolLM2's shape for smoke runs);
2. play the test cards (one episode per card, seeded) with the untrained policy;
3. GRPO through :class:`~dialogue_gym.integrations.trl.DialogueRollout` (the multi-turn
   ``rollout_func``: token in, token out, the user's tokens masked), one group of
   ``num_generations`` conversations per simulated user; with ``--manager`` the hierarchical
   realiser (a strategy manager picks each turn's act, the language model says it:
   :mod:`~dialogue_gym.integrations.trl.manager`);
4. play the same test episodes with the trained policy;
5. write ``curves.csv`` (per GRPO step, appended as each step ends: episode reward, success,
   final emotion, turns, the step's seconds and learning rate, and the rollout's split between
   generation and the env), ``eval.json`` (the metrics before and after: success, final
   emotion, soothing index, grounding acts, strategy distribution as the recogniser read it;
   the memory estimate), ``episodes_{before,after}.jsonl`` (every test conversation),
   ``audit.md`` (what the policy learned to say: :mod:`dialogue_gym.evaluation.audit`),
   ``report.md`` and ``args.json`` under ``--out/--name``, and a checkpoint every
   ``--save-steps`` steps and at the end under ``trainer/`` (the last one kept), which
   ``--resume`` continues from (with the settings of the folder's ``args.json``).

Before anything loads, the settings are checked (``--use-vllm`` needs Hugging Face weights; the
micro-batch must divide the step...), and before training the GPU memory a step needs is
estimated (:mod:`dialogue_gym.integrations.trl.memory`) and, with ``--gpu``/
``--gpu-memory-gib`` or on ``--device cuda``, refused when it cannot fit.

Example (a smoke run; the real one drops ``--tiny`` and raises ``--steps``)::

    python benchmarks/train_llm.py --tiny --steps 2 --eval-cards 4 --reward final_emotion
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.envs.text import HEARING_ENV_ID, TEXT_ENV_IDS
from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.evaluation.machine import describe
from dialogue_gym.evaluation.metrics import (
    grounding_rate,
    mean_final_emotion,
    soothing_index,
    strategy_distribution,
    strategy_entropy,
    success_rate,
    user_left_rate,
)
from dialogue_gym.integrations.trl.config import split_step
from dialogue_gym.integrations.trl.manager import (
    DIRECTIVE_TOKENS,
    NO_MANAGER,
    check_manager,
    delivery_agreement,
)
from dialogue_gym.integrations.trl.memory import GPUS
from dialogue_gym.rewards import REWARDS
from dialogue_gym.study.llm_level import paired_difference

__all__ = [
    "RESUME_MAY_DIFFER",
    "VLLM_SHARE",
    "Args",
    "episode_json",
    "evaluate",
    "main",
    "parse_args",
    "resume_checkpoint",
    "to_results",
    "wilson_interval",
]

#: The seed of the test episodes (the same users before and after training, and across runs).
EVAL_SEED = 12345
#: The share of the GPU vLLM colocated takes (``GRPOConfig.vllm_gpu_memory_utilization``; the
#: memory check counts it out before the trainer's estimate).
VLLM_SHARE = 0.3
#: Settings ``--resume`` may change from the folder's ``args.json`` (they do not change what
#: is computed).
RESUME_MAY_DIFFER = ("resume", "threads")


@dataclasses.dataclass
class Args:
    """GRPO on the text env (template user voice): the hearing user by default."""

    env: str = HEARING_ENV_ID
    """the text env id: EmpathyDialogueText-v1 (the hearing user) or -v0 (hears the strategy alone)"""

    reward: str = "sparse"
    """the reward wrapper (a name in dialogue_gym.rewards.REWARDS)"""
    reward_kwargs: str = "{}"
    """the wrapper's arguments as JSON, e.g. '{"mode": "value"}' for multi_turn"""
    manager: str = NO_MANAGER
    """the hierarchical realiser's strategy manager: 'none' (the flat policy), a reference
    policy ('stage-heuristic'...), or the path of an SB3 model trained on EmpathyDialogue-v0
    (*.zip); it picks each turn's act, put in the user's message (never trained on), and GRPO
    trains the model to say it. Short turns are its job: --max-turns 8 --turn-tokens 24"""
    model: str | None = None
    """a Hugging Face causal LM (path or id); default: the embedded SmolLM2-135M-Instruct"""
    tiny: bool = False
    """a random-weights model of SmolLM2's tokenizer, for smoke runs"""
    steps: int = 20
    """GRPO steps"""
    prompts_per_step: int = 2
    """simulated users per GRPO step (each played num_generations times)"""
    num_generations: int = 4
    """conversations per simulated user (the GRPO group)"""
    max_turns: int = 4
    """policy turns per conversation (RLVER trains with 8)"""
    turn_tokens: int = 40
    """the most new tokens of one policy turn"""
    learning_rate: float = 2e-6
    """AdamW learning rate"""
    beta: float = 0.0
    """KL coefficient (RLVER uses 0)"""
    temperature: float = 1.0
    """sampling temperature while training and evaluating"""
    eval_cards: int = 72
    """test cards to evaluate on before and after (72 = all of them)"""
    seed: int = 0
    """seeds the data order, the episode seeds and torch"""
    use_vllm: bool = False
    """generate with vLLM colocated (GPU; needs --model with Hugging Face weights)"""
    device: str = "cpu"
    """'cpu' or 'cuda'"""
    micro_batch: int = 0
    """sequences a forward/backward pass holds (0: the whole step); must divide
    prompts_per_step x num_generations, which one optimiser step still covers (gradient
    accumulation)"""
    bf16: bool = False
    """bf16 mixed precision (activations and logits in bf16; weights and AdamW stay fp32)"""
    gradient_checkpointing: bool = False
    """recompute activations in the backward pass (less memory, about a third more time)"""
    lora: int = 0
    """LoRA rank on every linear layer (through peft; 0: train every weight)"""
    gpu: str = ""
    """the GPU to check the memory estimate against, by name (h100, h200, a100, a100-40,
    l40s, a10g, l4, rtx4090, t4)"""
    gpu_memory_gib: float = 0.0
    """the GPU's memory in GiB to check the estimate against (0: --gpu's, or the CUDA
    device's with --device cuda, or no check)"""
    save_steps: int = 1
    """a checkpoint every this many steps, and one at the end (0: only at the end); the
    last is kept"""
    resume: bool = False
    """continue from the last checkpoint in --out/--name, with the settings of its args.json"""
    threads: int = 0
    """torch threads (0: torch's default)"""
    out: str = "benchmarks/results/llm"
    """results folder"""
    name: str = ""
    """run name (default: the reward, plus '-tiny')"""

    @property
    def run_name(self) -> str:
        """``--name``, or the reward (plus ``-tiny``)."""
        return self.name or (self.reward + ("-tiny" if self.tiny else ""))

    @property
    def folder(self) -> Path:
        """The run's results folder, ``--out/--name``."""
        return Path(self.out) / self.run_name


def _vllm_model_problem(args: Args) -> str | None:
    """Why vLLM cannot load ``--model`` (``None``: it can, as far as can be told here)."""
    if args.tiny:
        return "--tiny builds a random-weights model in memory, which vLLM cannot load"
    if args.model is None:
        return "the default model is the embedded SmolLM2 GGUF, which vLLM cannot load here"
    path = Path(args.model)
    if args.model.lower().endswith(".gguf"):
        return f"--model {args.model!r} is a GGUF file"
    if path.is_dir() and not (path / "config.json").is_file():
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        what = f"holds GGUF files ({', '.join(ggufs[:3])})" if ggufs else "has no config.json"
        return f"--model {args.model!r} is a folder that {what}, not Hugging Face weights"
    return None


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """The command line as :class:`Args` (``--help`` lists the rewards)."""
    import tyro

    args = tyro.cli(Args, args=None if argv is None else list(argv))
    if args.env not in TEXT_ENV_IDS:
        raise SystemExit(f"--env: {args.env!r} is not a text env; valid: {', '.join(TEXT_ENV_IDS)}")
    if args.reward not in REWARDS:
        valid = ", ".join(map(repr, REWARDS))
        raise SystemExit(f"--reward: unknown reward {args.reward!r}; valid: {valid}")
    try:
        kwargs = json.loads(args.reward_kwargs)
    except json.JSONDecodeError as err:
        raise SystemExit(f"--reward-kwargs: not JSON ({err}): {args.reward_kwargs!r}") from None
    if not isinstance(kwargs, dict):
        raise SystemExit(f"--reward-kwargs must be a JSON object, got {args.reward_kwargs!r}")
    try:
        check_manager(args.manager)
    except ValueError as err:
        raise SystemExit(f"--manager: {err}") from None
    for field in ("steps", "prompts_per_step", "num_generations", "max_turns", "turn_tokens"):
        if getattr(args, field) < 1:
            raise SystemExit(
                f"--{field.replace('_', '-')} must be >= 1, got {getattr(args, field)}"
            )
    if args.num_generations < 2:
        raise SystemExit("--num-generations must be >= 2 (GRPO compares a group's episodes)")
    if args.eval_cards < 1:
        raise SystemExit(
            f"--eval-cards must be >= 1, got {args.eval_cards}: the before/after evaluation "
            "needs test users (72 = all of them)"
        )
    if args.device not in ("cpu", "cuda"):
        raise SystemExit(f"--device: {args.device!r} is not allowed; allowed: 'cpu', 'cuda'")
    try:
        split_step(args.prompts_per_step * args.num_generations, args.micro_batch)
    except ValueError as err:
        raise SystemExit(
            f"--micro-batch {args.micro_batch}: {err} (--prompts-per-step "
            f"{args.prompts_per_step} x --num-generations {args.num_generations})"
        ) from None
    if args.lora < 0:
        raise SystemExit(f"--lora must be >= 0 (a LoRA rank; 0: no LoRA), got {args.lora}")
    if args.lora and importlib.util.find_spec("peft") is None:
        raise SystemExit(f"--lora {args.lora} needs peft, which is not installed: pip install peft")
    if args.gpu and args.gpu.lower() not in GPUS:
        raise SystemExit(f"--gpu: unknown GPU {args.gpu!r}; known: {', '.join(GPUS)}")
    if args.gpu_memory_gib < 0:
        raise SystemExit(f"--gpu-memory-gib must be > 0 (or 0: none), got {args.gpu_memory_gib}")
    if args.save_steps < 0:
        raise SystemExit(f"--save-steps must be >= 0 (0: only at the end), got {args.save_steps}")
    if args.use_vllm:
        problem = _vllm_model_problem(args)
        if problem is not None:
            raise SystemExit(
                f"--use-vllm: vLLM loads Hugging Face weights (a folder with config.json and "
                f"*.safetensors, or a hub id), and {problem}. Give one with --model, e.g. "
                "--model HuggingFaceTB/SmolLM2-135M-Instruct or --model Qwen/Qwen2.5-1.5B-Instruct"
            )
        if args.device != "cuda":
            raise SystemExit(
                f"--use-vllm needs --device cuda (vLLM runs on a GPU), got --device {args.device}"
            )
    return args


def resume_checkpoint(args: Args) -> str | None:
    """With ``--resume``: the last checkpoint in the run's folder, once its ``args.json`` is
    checked to hold these settings (:data:`RESUME_MAY_DIFFER` aside); ``None`` without.

    Raises:
        SystemExit: No ``args.json`` or no checkpoint there, or a setting differs.
    """
    if not args.resume:
        return None
    saved_path = args.folder / "args.json"
    if not saved_path.is_file():
        raise SystemExit(f"--resume: no run to resume in {args.folder} (no args.json)")
    saved = json.loads(saved_path.read_text())
    now = dataclasses.asdict(args)
    differ = [
        f"--{k.replace('_', '-')} {now[k]!r} (the run's: {saved.get(k)!r})"
        for k in now
        if k not in RESUME_MAY_DIFFER and saved.get(k) != now[k]
    ]
    if differ:
        raise SystemExit(
            f"--resume: the settings differ from {saved_path}: {'; '.join(differ)}. Resume "
            "with the run's own settings, or start a new run under another --name"
        )
    from transformers.trainer_utils import get_last_checkpoint

    trainer_dir = args.folder / "trainer"
    last = get_last_checkpoint(str(trainer_dir)) if trainer_dir.is_dir() else None
    if last is None:
        raise SystemExit(
            f"--resume: no checkpoint in {trainer_dir} (the run ended before its first "
            "--save-steps step); start it again without --resume"
        )
    return last


def to_results(episodes: Sequence[Any]) -> list[EpisodeResult]:
    """:class:`~dialogue_gym.integrations.trl.Episode` records as the metrics' episode records."""
    return [ep.result() for ep in episodes]


def summary(episodes: Sequence[Any]) -> dict[str, Any]:
    """The metrics of a set of test conversations (with a manager, ``delivery_agreement``:
    the share of turns the recogniser read as the planned strategy)."""
    results = to_results(episodes)
    dist = strategy_distribution(results)
    planned: dict[str, float] = {}
    if any(ep.planned for ep in episodes):  # the hierarchical realiser: words read as planned?
        planned["delivery_agreement"] = delivery_agreement(
            [ep.planned for ep in episodes], [ep.strategies for ep in episodes]
        )
    return {
        "episodes": len(results),
        "env_reward": float(np.mean([ep.episode_return for ep in episodes])),
        "success": success_rate(results),
        "final_emotion": mean_final_emotion(results),
        "user_left": user_left_rate(results),
        "turns": float(np.mean([r.turns for r in results])),
        "soothing_index": soothing_index(results),
        "grounding_rate": grounding_rate(results),
        "strategy_entropy": strategy_entropy(results),
        "strategy_distribution": {s: float(p) for s, p in zip(STRATEGIES, dist, strict=True)},
        **planned,
    }


def evaluate(rollout: Any, trainer: Any, rows: Any, seed: int) -> list[Any]:
    """Play ``rows`` (test users) once each with the trainer's current policy.

    With vLLM (``trainer.use_vllm``) the trainer's weights are synced to vLLM first: TRL syncs
    them only when a training step generates, so an evaluation after the last step would
    otherwise play the weights from before its update. The rollout's training history is left
    as it was: evaluation is not a GRPO step.
    """
    import torch

    if getattr(trainer, "use_vllm", False):
        trainer.vllm_generation.sync_weights()
    torch.manual_seed(seed)
    history = list(rollout.history)
    rollout([row["prompt"] for row in rows], trainer)
    rollout.history = history
    return list(rollout.episodes)


def episode_json(ep: Any) -> dict[str, Any]:
    """A test conversation as a line of ``episodes_{before,after}.jsonl`` (what the audit and
    :func:`~dialogue_gym.evaluation.audit.format_transcript` read); with a manager, its
    ``planned`` strategies too."""
    line = {
        "card": ep.card_id,
        "seed": ep.seed,
        "need": ep.need,
        "return": ep.episode_return,
        "success": ep.success,
        "user_left": ep.user_left,
        "initial_emotion": ep.initial_emotion,
        "final_emotion": ep.final_emotion,
        "emotions": list(ep.emotions),
        "turns": ep.turns,
        "strategies": list(ep.strategies),
        "utterances": [m["content"] for m in ep.messages if m["role"] == "assistant"],
        "user": list(ep.user_lines),  # the opening line and every reply, the last included
    }
    if ep.planned:
        line["planned"] = list(ep.planned)
    return line


def _write_jsonl(path: Path, episodes: Sequence[Any]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for ep in episodes:
            f.write(json.dumps(episode_json(ep), ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _fmt(x: float) -> str:
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.3g}"


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's 95% score interval for a success rate (sensible at 0 and n, unlike the
    normal approximation).

    Example:
        >>> [round(x, 3) for x in wilson_interval(0, 72)]
        [0.0, 0.051]
        >>> [round(x, 3) for x in wilson_interval(36, 72)]
        [0.387, 0.613]
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class _CurveLog:
    """``curves.csv``, one row appended as each GRPO step ends (a killed run keeps every
    finished step): the rollout's summary of the step, its wall-clock seconds and the learning
    rate it ran at. A resumed run keeps the rows up to its checkpoint (it redoes the rest)."""

    def __init__(self, path: Path, keep_until: int = 0) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if keep_until and path.is_file():
            with path.open(encoding="utf-8") as f:
                lines = [line.rstrip("\n").split(",") for line in f if line.strip()]
            for values in lines[1:]:
                row: dict[str, Any] = {k: float(v) for k, v in zip(lines[0], values, strict=True)}
                if row["step"] <= keep_until:
                    row["step"] = int(row["step"])
                    self.rows.append(row)
        self._rewrite()

    def _rewrite(self) -> None:
        with self.path.open("w", encoding="utf-8") as f:
            if self.rows:
                f.write(",".join(self.rows[0]) + "\n")
                for row in self.rows:
                    f.write(",".join(str(v) for v in row.values()) + "\n")

    def append(self, row: dict[str, Any]) -> None:
        """Add one step's row to the file."""
        same_keys = bool(self.rows) and list(self.rows[0]) == list(row)
        self.rows.append(row)
        if not same_keys:
            self._rewrite()
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(",".join(str(v) for v in row.values()) + "\n")


def _curve_callback(rollout: Any, log: _CurveLog) -> Any:
    """A ``TrainerCallback`` that times each step and appends its row to ``log``."""
    from transformers import TrainerCallback

    class CurveCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.lr = float("nan")

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            scheduler = kwargs.get("lr_scheduler")
            self.lr = float(scheduler.get_last_lr()[0]) if scheduler is not None else math.nan

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            log.append(
                {
                    "step": int(state.global_step),
                    "step_s": time.perf_counter() - self.started,
                    "learning_rate": self.lr,
                    **rollout.history[-1],
                }
            )

    return CurveCallback()


def _paired_lines(before_eps: Sequence[dict], after_eps: Sequence[dict]) -> list[str]:
    """The paired differences (after minus before, same card and seed) with 95% intervals."""
    rows = []
    for key, label in (
        ("success", "success"),
        ("final_emotion", "final emotion"),
        ("return", "episode return"),
    ):
        diff = paired_difference(before_eps, after_eps, key)
        if diff is not None:
            rows.append(f"| {label} | {diff[0]:+.3g} | [{diff[1]:+.3g}, {diff[2]:+.3g}] |")
    if not rows:
        return []
    return [
        "",
        "Paired differences, after − before over the same test users (card and seed), with "
        "95% percentile-bootstrap intervals over users:",
        "",
        "| metric | after − before | 95% interval |",
        "|---|---:|---:|",
        *rows,
    ]


def report(
    args: Args,
    before: dict,
    after: dict,
    curves: list[dict],
    wall: float,
    run: Mapping[str, Any] | None = None,
    before_eps: Sequence[dict] = (),
    after_eps: Sequence[dict] = (),
) -> str:
    """``report.md``: the run's settings, curves' ends and the before/after table.

    Args:
        args: The run's settings.
        before: :func:`summary` of the test conversations before training.
        after: The same after training.
        curves: ``curves.csv``'s rows.
        wall: The run's wall-clock seconds.
        run: What the run measured of itself: ``threads``, ``load_start``/``load_end``
            (``os.getloadavg()``), ``lr_schedule`` (in words), ``memory`` (the estimate in
            words), ``micro_batch`` and ``accumulation``.
        before_eps: The test conversations before (:func:`episode_json`), for the paired
            differences.
        after_eps: The same after.
    """
    run = dict(run or {})
    keys = [
        "env_reward",
        "success",
        "final_emotion",
        "user_left",
        "turns",
        "soothing_index",
        "grounding_rate",
        "strategy_entropy",
    ]
    n_before, n_after = before["episodes"], after["episodes"]
    lines = [
        f"# GRPO on {args.env}: reward `{args.reward}`",
        "",
        f"Model: {args.model or ('tiny random-weights' if args.tiny else 'SmolLM2-135M-Instruct')};"
        f" {args.steps} GRPO steps x {args.prompts_per_step} users x {args.num_generations} "
        f"conversations, {args.max_turns} turns of at most {args.turn_tokens} tokens; "
        f"lr {args.learning_rate}, beta {args.beta}, temperature {args.temperature}. "
        f"Wall time {wall / 60:.1f} min on {describe()}.",
    ]
    if args.manager != NO_MANAGER:
        lines += [
            "",
            f"Manager: `{args.manager}` (the hierarchical realiser: it picks each turn's "
            "strategy, told to the model at the end of the user's message; the model is "
            "trained to say it).",
        ]
    if run:
        load = "; ".join(
            f"load average {when} {' / '.join(f'{x:.2f}' for x in run[key])} (1/5/15 min)"
            for when, key in (("at the start", "load_start"), ("at the end", "load_end"))
            if run.get(key)
        )
        lines += [
            "",
            f"Learning rate: {run.get('lr_schedule', '?')}. Optimiser steps of "
            f"{args.prompts_per_step * args.num_generations} conversations in "
            f"{run.get('accumulation', 1)} micro-batch(es) of {run.get('micro_batch', '?')}"
            f"{', bf16 mixed precision' if args.bf16 else ', fp32'}"
            f"{', gradient checkpointing' if args.gradient_checkpointing else ''}"
            f"{f', LoRA rank {args.lora}' if args.lora else ''}. "
            f"Torch threads: {run.get('threads', '?')}; {load or 'load average unknown'}.",
        ]
        if run.get("memory"):
            lines += ["", f"Memory estimate (GPU, one micro-batch's step): {run['memory']}."]
    s_b, s_a = (round(x["success"] * x["episodes"]) for x in (before, after))
    wb, wa = wilson_interval(s_b, n_before), wilson_interval(s_a, n_after)
    lines += [
        "",
        f"Test: n = {n_before} conversations before and {n_after} after (one seeded "
        "conversation per test card, the same users before and after).",
        "",
        f"Success: {s_b}/{n_before} before [95% Wilson {wb[0]:.2f}, {wb[1]:.2f}], "
        f"{s_a}/{n_after} after [{wa[0]:.2f}, {wa[1]:.2f}].",
        "",
        "| metric | before | after |",
        "|---|---:|---:|",
        *[f"| {k} | {_fmt(before[k])} | {_fmt(after[k])} |" for k in keys],
        *(
            [
                f"| delivery agreement (read as planned) | {_fmt(before['delivery_agreement'])}"
                f" | {_fmt(after['delivery_agreement'])} |"
            ]
            if "delivery_agreement" in before and "delivery_agreement" in after
            else []
        ),
        *_paired_lines(before_eps, after_eps),
        "",
        "Strategy distribution (as the lexical recogniser reads the policy's turns):",
        "",
        "| strategy | before | after |",
        "|---|---:|---:|",
        *[
            f"| {s} | {before['strategy_distribution'][s]:.2f} | "
            f"{after['strategy_distribution'][s]:.2f} |"
            for s in STRATEGIES
        ],
    ]
    if curves:
        first, last = curves[: max(1, len(curves) // 4)], curves[-max(1, len(curves) // 4) :]
        lines += [
            "",
            "Training curve (mean over the first and the last quarter of the steps):",
            "",
            "| | env reward | success | final emotion | env share of rollout |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, part in (("first", first), ("last", last)):
            env_share = sum(c["env_s"] for c in part) / max(1e-9, sum(c["rollout_s"] for c in part))
            lines.append(
                f"| {label} quarter | {np.mean([c['env_reward'] for c in part]):.3f} | "
                f"{np.mean([c['success'] for c in part]):.2f} | "
                f"{np.mean([c['final_emotion'] for c in part]):.1f} | {env_share:.1%} |"
            )
        timed = [c for c in curves if "step_s" in c]
        if timed:
            step = sum(c["step_s"] for c in timed)
            gen = sum(c["generate_s"] for c in timed)
            env = sum(c["env_s"] for c in timed)
            rollout = sum(c["rollout_s"] for c in timed)
            lines += [
                "",
                f"Step time: {step / len(timed):.2f} s a step (mean of {len(timed)} steps); "
                f"shares: generation {gen / step:.1%}, env {env / step:.1%}, rest of the "
                f"rollout {(rollout - gen - env) / step:.1%}, optimisation (scoring, forward, "
                f"backward, optimiser step) {max(0.0, step - rollout) / step:.1%}.",
            ]
    return "\n".join(lines) + "\n"


def _plot(path: Path, curves: list[dict], reward: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot is optional; the CSV has the numbers
        return
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    steps = [c["step"] for c in curves]
    for ax, key, title in zip(
        axes,
        ("env_reward", "success", "final_emotion"),
        (f"episode reward ({reward})", "success", "final emotion"),
        strict=True,
    ):
        ax.plot(steps, [c[key] for c in curves], marker=".")
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _lr_schedule(config: Any) -> str:
    """The trainer's learning-rate schedule in words."""
    kind = str(getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type))
    warmup = config.warmup_steps or 0
    warm = f"{warmup:g} warm-up steps" if warmup else "no warm-up"
    if kind == "linear":
        shape = f"linear decay from {config.learning_rate:g} to 0 over {config.max_steps} steps"
    elif kind == "constant":
        shape = f"constant {config.learning_rate:g}"
    else:
        shape = f"{kind} from {config.learning_rate:g} over {config.max_steps} steps"
    return f"{shape}, {warm} (transformers' {kind} schedule), AdamW"


def _memory_check(args: Args, shape: Any) -> tuple[Any, float | None]:
    """Estimate the step's GPU memory, print it, and refuse a setting that cannot fit."""
    from dialogue_gym.integrations.trl.memory import (
        check_fits,
        estimate_memory,
        gpu_memory_gib,
        sequence_length,
    )

    micro, _ = split_step(args.prompts_per_step * args.num_generations, args.micro_batch)
    estimate = estimate_memory(
        shape,
        micro_batch=micro,
        # A manager's directive rides in each user turn: as many more tokens a turn.
        sequence=sequence_length(
            args.max_turns,
            args.turn_tokens + (0 if args.manager == NO_MANAGER else DIRECTIVE_TOKENS),
        ),
        dtype="bfloat16" if args.bf16 else "float32",
        gradient_checkpointing=args.gradient_checkpointing,
        lora_rank=args.lora,
        reference_model=args.beta > 0,
    )
    capacity = gpu_memory_gib(args.gpu or None, args.gpu_memory_gib or None)
    if capacity is None and args.device == "cuda":
        import torch

        capacity = torch.cuda.get_device_properties(0).total_memory / 2**30
    print(
        f"[{args.run_name}] memory estimate for a GRPO step: {estimate.describe()} "
        f"({shape.params / 1e6:.0f}M parameters, micro-batch {micro} x "
        f"{estimate.setting['sequence']} tokens)"
        + (f"; checked against {capacity:.0f} GiB" if capacity else ""),
        flush=True,
    )
    if capacity:
        try:
            check_fits(estimate, capacity, VLLM_SHARE if args.use_vllm else 0.0)
        except ValueError as err:
            raise SystemExit(f"[{args.run_name}] {err}") from None
    return estimate, capacity


def _load(args: Args) -> tuple[Any, Any, Any]:
    """The policy, its tokenizer and the memory estimate (for a Hugging Face ``--model``, the
    estimate is checked from its config before any weights are read)."""
    import torch

    from dialogue_gym.integrations.trl import load_policy, tiny_policy
    from dialogue_gym.integrations.trl.memory import ModelShape

    estimate = None
    if args.model is not None and not args.model.lower().endswith(".gguf"):
        from transformers import AutoConfig

        estimate, _ = _memory_check(
            args, ModelShape.from_config(AutoConfig.from_pretrained(args.model))
        )
    # Frozen LoRA base weights can be bf16; trained ones stay fp32 (bf16 is autocast).
    dtype = "bfloat16" if args.bf16 and args.lora else "float32"
    if args.tiny:
        model, tokenizer = tiny_policy(seed=args.seed)
        model = model.to(getattr(torch, dtype))
    else:
        model, tokenizer = load_policy(args.model, dtype=dtype)
    if estimate is None:
        estimate, _ = _memory_check(args, ModelShape.of(model))
    return model, tokenizer, estimate


def _checkpointing(on: bool) -> dict[str, bool]:
    """The ``GRPOConfig`` argument that turns gradient checkpointing on or off: transformers 5
    renamed it ``activation_checkpointing`` (the old name warns), earlier ones know the old."""
    import trl

    names = {f.name for f in dataclasses.fields(trl.GRPOConfig)}
    return {
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing": on
    }


def _peft_config(args: Args) -> Any:
    if not args.lora:
        return None
    import peft

    return peft.LoraConfig(
        r=args.lora,
        lora_alpha=2 * args.lora,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def main(args: Args) -> dict[str, Any]:
    """Run one reward's experiment; returns the before/after metrics."""
    checkpoint = resume_checkpoint(args)  # before anything loads: a refusal costs nothing
    import torch
    from trl import GRPOTrainer

    from dialogue_gym.evaluation import audit
    from dialogue_gym.integrations.trl import DialogueRollout, episode_dataset
    from dialogue_gym.integrations.trl.episode import check_prefix_preserving

    started = time.perf_counter()
    load_start = list(os.getloadavg()) if hasattr(os, "getloadavg") else []
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.bf16 and args.device == "cuda" and not torch.cuda.is_bf16_supported():
        raise SystemExit("--bf16: this GPU does not support bfloat16; leave --bf16 out")
    torch.manual_seed(args.seed)
    name = args.run_name
    out = args.folder
    out.mkdir(parents=True, exist_ok=True)
    if checkpoint is None:
        # A fresh run: an older run's checkpoints under this name would be resumed from later.
        for old in (out / "trainer").glob("checkpoint-*"):
            shutil.rmtree(old)
        (out / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=1) + "\n")

    model, tokenizer, estimate = _load(args)
    try:
        check_prefix_preserving(tokenizer)
    except ValueError as err:
        model_name = f"--model {args.model}" if args.model else "the default model"
        raise SystemExit(f"[{name}] {model_name}: {err}") from None
    train_rows = episode_dataset("train", n=args.steps * args.prompts_per_step, seed=args.seed)
    test_rows = episode_dataset("test", n=args.eval_cards, seed=EVAL_SEED)
    rollout = DialogueRollout(
        train_rows,
        reward=args.reward,
        reward_kwargs=json.loads(args.reward_kwargs),
        max_turns=args.max_turns,
        turn_tokens=args.turn_tokens,
        env_kwargs={"env_id": args.env},
        manager=None if args.manager == NO_MANAGER else args.manager,
    )
    rollout.add(test_rows)
    micro, accumulation = split_step(args.prompts_per_step * args.num_generations, args.micro_batch)
    config = rollout.grpo_config(
        str(out / "trainer"),
        users_per_step=args.prompts_per_step,
        num_generations=args.num_generations,
        steps=args.steps,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        micro_batch=args.micro_batch,
        beta=args.beta,
        temperature=args.temperature,
        use_vllm=args.use_vllm,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=VLLM_SHARE,
        bf16=args.bf16,
        **_checkpointing(args.gradient_checkpointing),
        # the trainer's own checkpoints: model, optimiser, scheduler, RNG and step, as
        # resume_from_checkpoint reads them; the last one is enough to continue
        save_strategy="steps",
        save_steps=args.save_steps or args.steps,
        save_total_limit=1,
    )
    log = _CurveLog(out / "curves.csv", keep_until=_checkpoint_step(checkpoint))
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rollout.reward_func,
        args=config,
        train_dataset=train_rows,
        rollout_func=rollout,
        peft_config=_peft_config(args),
        callbacks=[_curve_callback(rollout, log)],
    )
    saved_before = out / "eval_before.json"
    if checkpoint is not None and saved_before.is_file():
        print(f"[{name}] the untrained policy's evaluation: read from {saved_before}", flush=True)
        before = json.loads(saved_before.read_text())
        before_json = _read_jsonl(out / "episodes_before.jsonl")
    else:
        print(
            f"[{name}] evaluating the untrained policy on {len(test_rows)} test users", flush=True
        )
        before_eps = evaluate(rollout, trainer, test_rows, EVAL_SEED)
        before, before_json = summary(before_eps), [episode_json(ep) for ep in before_eps]
        _write_jsonl(out / "episodes_before.jsonl", before_eps)
        saved_before.write_text(json.dumps(before, indent=1) + "\n")
    print(
        f"[{name}] GRPO: {args.steps} steps"
        + (f", resumed from {checkpoint}" if checkpoint else ""),
        flush=True,
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    curves = list(log.rows)
    print(f"[{name}] evaluating the trained policy", flush=True)
    after_eps = evaluate(rollout, trainer, test_rows, EVAL_SEED)

    after = summary(after_eps)
    after_json = [episode_json(ep) for ep in after_eps]
    wall = time.perf_counter() - started
    _write_jsonl(out / "episodes_after.jsonl", after_eps)
    run = {
        "threads": torch.get_num_threads(),
        "load_start": load_start,
        "load_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
        "lr_schedule": _lr_schedule(config),
        "memory": estimate.describe(),
        "micro_batch": micro,
        "accumulation": accumulation,
    }
    result = {"name": name, "reward": args.reward, "before": before, "after": after}
    result["wall_s"] = wall
    result["machine"] = describe()
    result["run"] = run
    result["memory_gib"] = {k: v / 2**30 for k, v in estimate.parts.items()}
    (out / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "audit.md").write_text(audit.audit_report(before_json, after_json))
    text = report(args, before, after, curves, wall, run, before_json, after_json)
    (out / "report.md").write_text(text)
    _plot(out / "curves.png", curves, args.reward)
    print(text, flush=True)
    print(f"wrote {out}", file=sys.stderr)
    return result


def _checkpoint_step(checkpoint: str | None) -> int:
    """The step a ``checkpoint-N`` folder was saved at (0: none)."""
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else 0


if __name__ == "__main__":
    main(parse_args())
