"""Throughput of LLM training: where a GRPO step's time goes (env, generation, update).

CleanRL style: one :class:`Args` dataclass (tyro), one :func:`main`. Runs a few real GRPO steps
through TRL's ``GRPOTrainer`` with :class:`~dialogue_gym.integrations.trl.DialogueRollout` (the
multi-turn ``rollout_func``; template user voice, lexical recogniser) and splits each step's
wall time four ways:

- **env**: the simulated user: reset, the recogniser reading the policy's words, the reward
  wrapper, the template voice (the rollout's ``history[i]["env_s"]``);
- **generation**: the policy's turns (``generate_s``);
- **rest of rollout**: the rest of the rollout call (``rollout_s - generate_s - env_s``):
  chat-templating the user's replies into token ids, decoding the policy's turns, and on the
  first step building the rollout's envs;
- **update**: the step's wall time minus the rollout's: TRL's scoring (the reward function,
  advantages, log-probabilities), the forward and backward passes and the optimizer step.

A step is timed by a ``TrainerCallback`` from ``on_step_begin`` to ``on_step_end``; the rollout
runs inside it (in ``training_step``), so the four parts sum to the step. Target (issue 11):
the env's share of the **rollout** time under 10% with the template user voice.

    python benchmarks/llm_train_throughput.py                      # SmolLM2-135M-Instruct, 3 steps
    python benchmarks/llm_train_throughput.py --reward multi_turn  # the look-ahead reward
    python benchmarks/llm_train_throughput.py --tiny --steps 1     # smoke run, random weights

Writes a JSON of the figures (``--out``; by default
``benchmarks/results/llm_train_throughput_<reward>[_tiny].json``, rewritten after every step)
and prints a markdown table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro
from transformers import TrainerCallback

from dialogue_gym.evaluation.machine import describe
from dialogue_gym.rewards import REWARDS

__all__ = ["Args", "StepClock", "main", "parse_args", "report", "split_step"]

#: The env's share of the rollout time must stay under this (template user voice).
TARGET_ENV_SHARE_OF_ROLLOUT = 0.10
#: The four parts of a step, as the JSON's ``share`` keys name them.
PARTS = ("env", "generation", "rollout_rest", "update")


@dataclass
class Args:
    """GRPO steps on EmpathyDialogueText-v0, timed: the env's share of a step."""

    tiny: bool = False
    """a random-weights two-layer model (SmolLM2's tokenizer) instead of SmolLM2-135M-Instruct"""
    model: str | None = None
    """a Hugging Face causal LM (path or id); default: the embedded SmolLM2-135M-Instruct"""
    steps: int = 3
    """GRPO steps to time"""
    prompts_per_step: int = 2
    """simulated users per GRPO step (each played num_generations times)"""
    num_generations: int = 4
    """conversations per simulated user (the GRPO group)"""
    max_turns: int = 4
    """policy turns per conversation"""
    turn_tokens: int = 40
    """the most new tokens of one policy turn"""
    reward: str = "sparse"
    """the reward wrapper (a name in dialogue_gym.rewards.REWARDS; multi_turn looks ahead)"""
    reward_kwargs: str = "{}"
    """the wrapper's arguments as JSON"""
    learning_rate: float = 2e-6
    """AdamW learning rate"""
    seed: int = 0
    """seeds the users and torch"""
    device: str = "cpu"
    """'cpu' or 'cuda' (generation with the trainer's model; vLLM: benchmarks/gpu_train_llm.py)"""
    threads: int = 0
    """torch threads (0: torch's default)"""
    out: str = ""
    """the JSON to write (default: benchmarks/results/llm_train_throughput_<reward>[_tiny].json)"""


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """The command line as :class:`Args`, checked.

    Example:
        >>> parse_args(["--tiny", "--steps", "1"]).steps
        1
    """
    args = tyro.cli(Args, args=None if argv is None else list(argv), description=__doc__)
    if args.reward not in REWARDS:
        raise SystemExit(f"--reward: unknown {args.reward!r}; valid: {', '.join(REWARDS)}")
    if not isinstance(json.loads(args.reward_kwargs), dict):
        raise SystemExit(f"--reward-kwargs must be a JSON object, got {args.reward_kwargs!r}")
    for name in ("steps", "prompts_per_step", "max_turns", "turn_tokens"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    if args.num_generations < 2:
        raise SystemExit("--num-generations must be >= 2 (GRPO compares a group's episodes)")
    return args


# ----------------------------------------------------------------------------- timing


def split_step(step_s: float, rollout_s: float, generate_s: float, env_s: float) -> dict[str, Any]:
    """A step's seconds split into env, generation, the rest of the rollout and the update.

    Args:
        step_s: The step's wall time (``on_step_begin`` to ``on_step_end``).
        rollout_s: The rollout calls' wall time within the step.
        generate_s: Their time in the policy's turns.
        env_s: Their time in the simulated user.

    Returns:
        The seconds of each part (``*_s``), ``share`` (each part over their sum, which is the
        step's time: they sum to 1) and ``env_share_of_rollout`` (the target's figure).

    Example:
        >>> row = split_step(10.0, 6.0, 5.0, 0.5)
        >>> row["share"], round(row["env_share_of_rollout"], 4)
        ({'env': 0.05, 'generation': 0.5, 'rollout_rest': 0.05, 'update': 0.4}, 0.0833)
    """
    seconds = {
        "env": env_s,
        "generation": generate_s,
        "rollout_rest": max(0.0, rollout_s - generate_s - env_s),
        "update": max(0.0, step_s - rollout_s),
    }
    total = sum(seconds.values())
    return {
        "step_s": step_s,
        "rollout_s": rollout_s,
        **{f"{k}_s": v for k, v in seconds.items()},
        "share": {k: v / total if total > 0 else 0.0 for k, v in seconds.items()},
        "env_share_of_rollout": env_s / rollout_s if rollout_s > 0 else 0.0,
    }


class StepClock(TrainerCallback):
    """Times each optimizer step and pairs it with the rollout calls made inside it.

    Args:
        rollout: The :class:`~dialogue_gym.integrations.trl.DialogueRollout` the trainer calls
            (its ``history`` gets one entry a call, with ``rollout_s``, ``generate_s`` and
            ``env_s``; its ``episodes`` are the last call's).
        on_row: Called with each step's row as the step ends (progress, saving).

    Attributes:
        rows: One a step: :func:`split_step`'s figures plus ``step``, ``episodes``,
            ``policy_tokens`` (the tokens the policy generated in the step's last rollout
            call), ``policy_tokens_per_generate_s`` and ``env_reward`` (the episodes' mean).
    """

    def __init__(self, rollout: Any, on_row: Callable[[dict[str, Any]], None] | None = None):
        self.rollout = rollout
        self.on_row = on_row
        self.rows: list[dict[str, Any]] = []
        self._begin = 0.0
        self._calls = 0

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._calls = len(self.rollout.history)
        self._begin = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step_s = time.perf_counter() - self._begin
        calls = self.rollout.history[self._calls :]
        row = {
            "step": int(state.global_step),
            **split_step(
                step_s,
                sum(c["rollout_s"] for c in calls),
                sum(c["generate_s"] for c in calls),
                sum(c["env_s"] for c in calls),
            ),
            "episodes": int(sum(c["episodes"] for c in calls)),
            "env_reward": float(calls[-1]["env_reward"]) if calls else float("nan"),
        }
        tokens = sum(sum(ep.env_mask) for ep in self.rollout.episodes) if calls else 0
        row["policy_tokens"] = int(tokens)
        row["policy_tokens_per_generate_s"] = (
            tokens / row["generation_s"] if row["generation_s"] > 0 else 0.0
        )
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)


def total_row(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The steps' seconds summed and split again (shares of the whole run)."""
    total = split_step(
        *(sum(r[k] for r in rows) for k in ("step_s", "rollout_s", "generation_s", "env_s"))
    )
    tokens = sum(r["policy_tokens"] for r in rows)
    total["steps"] = len(rows)
    total["episodes"] = int(sum(r["episodes"] for r in rows))
    total["policy_tokens"] = int(tokens)
    total["policy_tokens_per_generate_s"] = (
        tokens / total["generation_s"] if total["generation_s"] > 0 else 0.0
    )
    return total


# ----------------------------------------------------------------------------- output


def _table_row(label: str, r: Mapping[str, Any]) -> str:
    s = r["share"]
    return (
        f"| {label} | {r['step_s']:.2f} | {s['env']:.1%} | {s['generation']:.1%} | "
        f"{s['rollout_rest']:.1%} | {s['update']:.1%} | {r['env_share_of_rollout']:.1%} |"
    )


def report(results: Mapping[str, Any]) -> str:
    """The figures as markdown: one row a step, the total, and the target's verdict."""
    total = results["total"]
    target = results["target"]
    verdict = "met" if target["met"] else "NOT met"
    return "\n".join(
        [
            f"GRPO step time, reward `{results['reward']}`, {results['model']}, "
            f"{results['batch']}; {results['machine']}",
            "",
            "| step | step (s) | env | generation | rest of rollout | update | env / rollout |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(_table_row(str(r["step"]), r) for r in results["steps"]),
            _table_row("all", total),
            "",
            f"Env share of the rollout time: {total['env_share_of_rollout']:.1%} "
            f"(target < {target['env_share_of_rollout_max']:.0%} with the template user voice:"
            f" {verdict}). Policy tokens/s while generating: "
            f"{total['policy_tokens_per_generate_s']:.1f}.",
        ]
    )


# ------------------------------------------------------------------------------- main


def main(args: Args) -> dict[str, Any]:
    """Run ``args.steps`` timed GRPO steps; write and return the figures."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    import transformers
    import trl
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOTrainer

    from dialogue_gym.integrations.trl import (
        DialogueRollout,
        episode_dataset,
        load_policy,
        tiny_policy,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(
        args.out
        or f"benchmarks/results/llm_train_throughput_{args.reward}{'_tiny' if args.tiny else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)

    model, tokenizer = tiny_policy(seed=args.seed) if args.tiny else load_policy(args.model)
    label = (
        "tiny random-weights Llama (2 layers, width 64)"
        if args.tiny
        else args.model or "SmolLM2-135M-Instruct"
    )
    rows = episode_dataset("train", n=args.steps * args.prompts_per_step, seed=args.seed)
    rollout = DialogueRollout(
        rows,
        reward=args.reward,
        reward_kwargs=json.loads(args.reward_kwargs),
        max_turns=args.max_turns,
        turn_tokens=args.turn_tokens,
    )
    results: dict[str, Any] = {
        "reward": args.reward,
        "model": label,
        "batch": (
            f"{args.prompts_per_step} users x {args.num_generations} conversations a step, "
            f"{args.max_turns} turns of at most {args.turn_tokens} tokens"
        ),
        "machine": describe(),
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "args": dataclasses.asdict(args),
        "steps": [],
    }

    def save() -> None:
        results["total"] = total_row(results["steps"])
        results["target"] = {
            "env_share_of_rollout_max": TARGET_ENV_SHARE_OF_ROLLOUT,
            "met": results["total"]["env_share_of_rollout"] < TARGET_ENV_SHARE_OF_ROLLOUT,
        }
        out.write_text(json.dumps(results, indent=1) + "\n")

    def on_row(row: dict[str, Any]) -> None:
        results["steps"].append(row)
        save()
        print(
            f"step {row['step']}/{args.steps}: {row['step_s']:.1f} s, env "
            f"{row['share']['env']:.1%} of the step, {row['env_share_of_rollout']:.1%} of the "
            "rollout",
            flush=True,
        )

    clock = StepClock(rollout, on_row)
    with tempfile.TemporaryDirectory() as tmp:
        config = rollout.grpo_config(
            tmp,
            users_per_step=args.prompts_per_step,
            num_generations=args.num_generations,
            steps=args.steps,
            learning_rate=args.learning_rate,
            seed=args.seed,
            device=args.device,
        )
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=rollout.reward_func,
            args=config,
            train_dataset=rows,
            rollout_func=rollout,
            callbacks=[clock],
        )
        trainer.remove_callback(PrinterCallback)  # the per-step line above is the progress
        print(f"{label}: {args.steps} GRPO steps, {results['batch']}", flush=True)
        try:
            trainer.train()
        except KeyboardInterrupt:
            print("interrupted: the figures cover the steps that finished", flush=True)
    if not results["steps"]:
        raise SystemExit("no GRPO step finished")
    save()
    print(report(results), flush=True)
    print(f"wrote {out}", flush=True)
    return results


if __name__ == "__main__":
    main(parse_args())
