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
   ``num_generations`` conversations per simulated user;
4. play the same test episodes with the trained policy;
5. write ``curves.csv`` (per GRPO step: episode reward, success, final emotion, turns, and
   the rollout's split between generation and the env), ``eval.json`` (the metrics before and
   after: success, final emotion, soothing index, grounding acts, strategy distribution as the
   recogniser read it), ``episodes_{before,after}.jsonl`` (every test conversation),
   ``audit.md`` (what the policy learned to say: :mod:`dialogue_gym.evaluation.audit`),
   ``report.md`` and ``args.json`` under ``--out/--name``.

Example (a smoke run; the real one drops ``--tiny`` and raises ``--steps``)::

    python benchmarks/train_llm.py --tiny --steps 2 --eval-cards 4 --reward final_emotion
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
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
from dialogue_gym.rewards import REWARDS

__all__ = ["Args", "evaluate", "main", "parse_args", "to_results"]

#: The seed of the test episodes (the same users before and after training, and across runs).
EVAL_SEED = 12345


@dataclasses.dataclass
class Args:
    """GRPO on the text env (template user voice): the hearing user by default."""

    env: str = HEARING_ENV_ID
    """the text env id: EmpathyDialogueText-v1 (the hearing user) or -v0 (hears the strategy alone)"""

    reward: str = "sparse"
    """the reward wrapper (a name in dialogue_gym.rewards.REWARDS)"""
    reward_kwargs: str = "{}"
    """the wrapper's arguments as JSON, e.g. '{"mode": "value"}' for multi_turn"""
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
    """generate with vLLM colocated (GPU; not available on the CPU)"""
    device: str = "cpu"
    """'cpu' or 'cuda'"""
    threads: int = 0
    """torch threads (0: torch's default)"""
    out: str = "benchmarks/results/llm"
    """results folder"""
    name: str = ""
    """run name (default: the reward, plus '-tiny')"""


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
    for field in ("steps", "prompts_per_step", "num_generations", "max_turns", "turn_tokens"):
        if getattr(args, field) < 1:
            raise SystemExit(
                f"--{field.replace('_', '-')} must be >= 1, got {getattr(args, field)}"
            )
    if args.num_generations < 2:
        raise SystemExit("--num-generations must be >= 2 (GRPO compares a group's episodes)")
    return args


def to_results(episodes: Sequence[Any]) -> list[EpisodeResult]:
    """:class:`~dialogue_gym.integrations.trl.Episode` records as the metrics' episode records."""
    return [ep.result() for ep in episodes]


def summary(episodes: Sequence[Any]) -> dict[str, Any]:
    """The metrics of a set of test conversations."""
    results = to_results(episodes)
    dist = strategy_distribution(results)
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
    }


def evaluate(rollout: Any, trainer: Any, rows: Any, seed: int) -> list[Any]:
    """Play ``rows`` (test users) once each with the trainer's current policy.

    The rollout's training history is left as it was: evaluation is not a GRPO step.
    """
    import torch

    torch.manual_seed(seed)
    history = list(rollout.history)
    rollout([row["prompt"] for row in rows], trainer)
    rollout.history = history
    return list(rollout.episodes)


def _episode_json(ep: Any) -> dict[str, Any]:
    return {
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


def _write_jsonl(path: Path, episodes: Sequence[Any]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for ep in episodes:
            f.write(json.dumps(_episode_json(ep), ensure_ascii=False) + "\n")


def _fmt(x: float) -> str:
    return "nan" if isinstance(x, float) and math.isnan(x) else f"{x:.3g}"


def report(args: Args, before: dict, after: dict, curves: list[dict], wall: float) -> str:
    """``report.md``: the run's settings, curves' ends and the before/after table."""
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
    lines = [
        f"# GRPO on {args.env}: reward `{args.reward}`",
        "",
        f"Model: {args.model or ('tiny random-weights' if args.tiny else 'SmolLM2-135M-Instruct')};"
        f" {args.steps} GRPO steps x {args.prompts_per_step} users x {args.num_generations} "
        f"conversations, {args.max_turns} turns of at most {args.turn_tokens} tokens; "
        f"lr {args.learning_rate}, beta {args.beta}, temperature {args.temperature}. "
        f"Wall time {wall / 60:.1f} min on {describe()}.",
        "",
        f"Test: {before['episodes']} test cards, one seeded conversation each, the same users "
        "before and after.",
        "",
        "| metric | before | after |",
        "|---|---:|---:|",
        *[f"| {k} | {_fmt(before[k])} | {_fmt(after[k])} |" for k in keys],
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


def main(args: Args) -> dict[str, Any]:
    """Run one reward's experiment; returns the before/after metrics."""
    import torch
    from trl import GRPOTrainer

    from dialogue_gym.evaluation import audit
    from dialogue_gym.integrations.trl import (
        DialogueRollout,
        episode_dataset,
        load_policy,
        tiny_policy,
    )

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    name = args.name or (args.reward + ("-tiny" if args.tiny else ""))
    out = Path(args.out) / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(dataclasses.asdict(args), indent=1) + "\n")

    model, tokenizer = tiny_policy(seed=args.seed) if args.tiny else load_policy(args.model)
    train_rows = episode_dataset("train", n=args.steps * args.prompts_per_step, seed=args.seed)
    test_rows = episode_dataset("test", n=args.eval_cards, seed=EVAL_SEED)
    rollout = DialogueRollout(
        train_rows,
        reward=args.reward,
        reward_kwargs=json.loads(args.reward_kwargs),
        max_turns=args.max_turns,
        turn_tokens=args.turn_tokens,
        env_kwargs={"env_id": args.env},
    )
    rollout.add(test_rows)
    config = rollout.grpo_config(
        str(out / "trainer"),
        users_per_step=args.prompts_per_step,
        num_generations=args.num_generations,
        steps=args.steps,
        learning_rate=args.learning_rate,
        seed=args.seed,
        device=args.device,
        beta=args.beta,
        temperature=args.temperature,
        use_vllm=args.use_vllm,
        vllm_mode="colocate",
        # 135M parameters fit in memory many times over; recomputing activations costs time
        gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rollout.reward_func,
        args=config,
        train_dataset=train_rows,
        rollout_func=rollout,
    )
    print(f"[{name}] evaluating the untrained policy on {len(test_rows)} test users", flush=True)
    before_eps = evaluate(rollout, trainer, test_rows, EVAL_SEED)
    print(f"[{name}] GRPO: {args.steps} steps", flush=True)
    trainer.train()
    curves = [{"step": i + 1, **h} for i, h in enumerate(rollout.history)]
    print(f"[{name}] evaluating the trained policy", flush=True)
    after_eps = evaluate(rollout, trainer, test_rows, EVAL_SEED)

    before, after = summary(before_eps), summary(after_eps)
    wall = time.perf_counter() - started
    _write_jsonl(out / "episodes_before.jsonl", before_eps)
    _write_jsonl(out / "episodes_after.jsonl", after_eps)
    with (out / "curves.csv").open("w", encoding="utf-8") as f:
        keys = list(curves[0]) if curves else ["step"]
        f.write(",".join(keys) + "\n")
        for c in curves:
            f.write(",".join(str(c[k]) for k in keys) + "\n")
    result = {"name": name, "reward": args.reward, "before": before, "after": after}
    result["wall_s"] = wall
    result["machine"] = describe()
    (out / "eval.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "audit.md").write_text(
        audit.audit_report(
            [_episode_json(ep) for ep in before_eps], [_episode_json(ep) for ep in after_eps]
        )
    )
    (out / "report.md").write_text(report(args, before, after, curves, wall))
    _plot(out / "curves.png", curves, args.reward)
    print(report(args, before, after, curves, wall), flush=True)
    print(f"wrote {out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main(parse_args())
