"""Rollout generation against plain batched decoding and the memory-bandwidth bound.

CleanRL style: one :class:`Args` dataclass (tyro), one :func:`main`. For each batch size and
thread count it measures, on the same model in the same process:

- **rollout**: the policy's tokens per second of generation inside
  :class:`~dialogue_gym.integrations.trl.DialogueRollout` (``batch`` conversations of
  ``max_turns`` turns through a real ``GRPOTrainer``, template user voice): every turn re-feeds
  the whole conversation (no KV cache is kept between turns) and stops at the policy's
  end-of-turn token;
- **plain**: ``model.generate`` on ``batch`` copies of one opening prompt, exactly
  ``turn_tokens`` new tokens each (the decoding loop alone: one prefill, then one step a token);
- **bound**: what reading the weights allows: a decoding step must read every weight once for
  the whole batch, so tokens/s <= batch x bandwidth / weight bytes, with the bandwidth measured
  here (a read of a 512 MiB tensor at the same thread count). It leaves out the KV cache's
  reads and the compute, so no real decoder reaches it.

    python benchmarks/llm_rollout_speed.py                       # SmolLM2-135M, batches 1 4 8
    python benchmarks/llm_rollout_speed.py --batches 8 --threads 1 2
    python benchmarks/llm_rollout_speed.py --tiny --batches 2 --max-turns 1   # smoke run

Writes ``benchmarks/results/llm_rollout_speed[_tiny].json`` (``--out``) and prints a markdown
table; timings on a shared machine move with its load, so compare the ratios of one run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tyro

from dialogue_gym.evaluation.machine import describe

__all__ = ["Args", "bound_tokens_per_s", "main", "parse_args", "report"]


@dataclass
class Args:
    """Rollout generation speed against plain decoding and the memory-bandwidth bound."""

    tiny: bool = False
    """a random-weights two-layer model (SmolLM2's tokenizer) instead of SmolLM2-135M-Instruct"""
    batches: tuple[int, ...] = (1, 4, 8)
    """conversations generated together (the rollout's users x generations)"""
    threads: tuple[int, ...] = field(default_factory=lambda: (len(os.sched_getaffinity(0)),))
    """torch thread counts to measure (default: the cores this process may use)"""
    max_turns: int = 4
    """policy turns per rollout conversation"""
    turn_tokens: int = 32
    """the most new tokens of one policy turn (plain decoding generates exactly this many)"""
    seed: int = 0
    """seeds torch and the users"""
    out: str = ""
    """the JSON to write (default: benchmarks/results/llm_rollout_speed[_tiny].json)"""


def parse_args(argv: Sequence[str] | None = None) -> Args:
    """The command line as :class:`Args`, checked.

    Example:
        >>> parse_args(["--tiny", "--batches", "2", "--threads", "1"]).batches
        (2,)
        >>> parse_args(["--batches", "0"])
        Traceback (most recent call last):
        ...
        SystemExit: --batches: every batch must be >= 1, got (0,)
    """
    args = tyro.cli(Args, args=None if argv is None else list(argv), description=__doc__)
    for name, one in (("batches", "batch"), ("threads", "thread count")):
        values = getattr(args, name)
        if not values or any(v < 1 for v in values):
            raise SystemExit(f"--{name}: every {one} must be >= 1, got {values}")
    for name in ("max_turns", "turn_tokens"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def bound_tokens_per_s(batch: int, bandwidth_gb_s: float, weight_bytes: int) -> float:
    """Tokens/s that reading the weights allows: each decoding step reads them once for the
    whole batch.

    Example:
        >>> bound_tokens_per_s(8, 10.0, 500_000_000)
        160.0
    """
    return batch * bandwidth_gb_s * 1e9 / weight_bytes


def read_bandwidth_gb_s(torch: Any, mib: int = 512, repeats: int = 5) -> float:
    """The best of ``repeats`` timed reads (a sum) of a ``mib`` MiB float32 tensor, in GB/s."""
    x = torch.ones(mib * 2**20 // 4, dtype=torch.float32)
    x.sum()  # first touch: page faults are not bandwidth
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best / 1e9


def plain_tokens_per_s(torch: Any, model: Any, tokenizer: Any, batch: int, new: int) -> float:
    """``model.generate`` on ``batch`` copies of one opening prompt, exactly ``new`` tokens."""
    from dialogue_gym.integrations.trl import SYSTEM_PROMPT, episode_dataset

    row = episode_dataset("test", n=1, seed=0)[0]
    chat = [{"role": "system", "content": SYSTEM_PROMPT}, *row["prompt"][1:]]
    ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    input_ids = ids.repeat(batch, 1)
    kwargs = {
        "max_new_tokens": new,
        "min_new_tokens": new,
        "do_sample": True,
        "pad_token_id": tokenizer.pad_token_id,
    }
    with torch.no_grad():
        model.generate(input_ids=input_ids, **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})
        start = time.perf_counter()
        model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
    return batch * new / (time.perf_counter() - start)


def rollout_tokens_per_s(model: Any, tokenizer: Any, batch: int, args: Args) -> dict[str, float]:
    """``batch`` conversations through ``DialogueRollout`` and a real ``GRPOTrainer``."""
    from trl import GRPOTrainer

    from dialogue_gym.integrations.trl import DialogueRollout, episode_dataset

    rows = episode_dataset("train", n=batch, seed=args.seed)
    rollout = DialogueRollout(rows, max_turns=args.max_turns, turn_tokens=args.turn_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        # The trainer is built only to hand the rollout its model and tokenizer: the batch is
        # the prompts passed below, so the smallest valid GRPO group will do here.
        config = rollout.grpo_config(
            tmp, users_per_step=1, num_generations=2, steps=1, learning_rate=1e-6, seed=args.seed
        )
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=rollout.reward_func,
            args=config,
            train_dataset=rows,
            rollout_func=rollout,
        )
        out = rollout([row["prompt"] for row in rows], trainer)
    tokens = sum(sum(mask) for mask in out["env_mask"])
    clock = rollout.history[-1]
    return {
        "policy_tokens": float(tokens),
        "generate_s": clock["generate_s"],
        "rollout_s": clock["rollout_s"],
        "tokens_per_s": tokens / clock["generate_s"],
    }


def report(results: dict[str, Any]) -> str:
    """The figures as markdown, one row per thread count and batch."""
    lines = [
        f"Rollout generation, {results['model']}, {results['turns']}; {results['machine']}; "
        f"weights {results['weight_bytes'] / 1e6:.0f} MB",
        "",
        "| threads | batch | read bandwidth (GB/s) | bound (tok/s) | plain decoding (tok/s) | "
        "rollout (tok/s) | plain / bound | rollout / bound | rollout / plain |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['threads']} | {r['batch']} | {r['bandwidth_gb_s']:.1f} | {r['bound']:.0f} | "
            f"{r['plain']:.1f} | {r['rollout']['tokens_per_s']:.1f} | "
            f"{r['plain'] / r['bound']:.0%} | {r['rollout']['tokens_per_s'] / r['bound']:.0%} | "
            f"{r['rollout']['tokens_per_s'] / r['plain']:.0%} |"
        )
    lines += [
        "",
        f"1-minute load average: {results['load'][0]:.1f} at the start, "
        f"{results['load'][1]:.1f} at the end.",
    ]
    return "\n".join(lines)


def main(args: Args) -> dict[str, Any]:
    """Measure every (threads, batch) pair; write and return the figures."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch

    from dialogue_gym.integrations.trl import load_policy, tiny_policy

    torch.manual_seed(args.seed)
    model, tokenizer = tiny_policy(seed=args.seed) if args.tiny else load_policy()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    out = Path(
        args.out or f"benchmarks/results/llm_rollout_speed{'_tiny' if args.tiny else ''}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "model": "tiny random-weights Llama" if args.tiny else "SmolLM2-135M-Instruct (fp32)",
        "turns": f"{args.max_turns} turns of at most {args.turn_tokens} tokens",
        "machine": describe(),
        "weight_bytes": weight_bytes,
        "args": dataclasses.asdict(args),
        "load": [os.getloadavg()[0]],
        "rows": [],
    }
    for threads in args.threads:
        torch.set_num_threads(threads)
        bandwidth = read_bandwidth_gb_s(torch)
        for batch in args.batches:
            model.eval()
            row = {
                "threads": threads,
                "batch": batch,
                "bandwidth_gb_s": bandwidth,
                "bound": bound_tokens_per_s(batch, bandwidth, weight_bytes),
                "plain": plain_tokens_per_s(torch, model, tokenizer, batch, args.turn_tokens),
                "rollout": rollout_tokens_per_s(model, tokenizer, batch, args),
            }
            results["rows"].append(row)
            print(
                f"threads {threads}, batch {batch}: plain {row['plain']:.1f} tok/s, rollout "
                f"{row['rollout']['tokens_per_s']:.1f} tok/s, bound {row['bound']:.0f}",
                flush=True,
            )
    results["load"].append(os.getloadavg()[0])
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(report(results), flush=True)
    print(f"wrote {out}", flush=True)
    return results


if __name__ == "__main__":
    main(parse_args())
