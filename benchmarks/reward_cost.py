"""What the reward wrappers cost per env step, against the affective core's own step.

CleanRL style: one readable script, a dataclass of arguments. Target (issue 4):
``MultiTurnValueReward`` with its defaults (3 futures of 2 turns) costs at most 2x the time of
6 core steps per env step. Measured in one run, best of ``repeats``, both sides interleaved:

- ``core step``: ``AffectiveCore.step`` on forks of mid-episode users (the look-ahead's unit);
- ``env step``: ``gym.make("EmpathyDialogue-v0", voice="template", reward=None)``, random
  actions, resets included;
- each wrapper: the same actions and seeds through ``gym.make(..., reward=name)``; its cost is
  its step time minus the bare env's.

    python benchmarks/reward_cost.py            # full run, writes benchmarks/results/reward_cost.json
    python benchmarks/reward_cost.py --quick    # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.evaluation.machine import cpu_model

ENV_ID = "EmpathyDialogue-v0"
REWARDS = ("sparse", "final_emotion", "next_turn", "emotion_delta", "potential_emotion")


@dataclass
class Args:
    steps: int = 20_000
    """env steps per measurement"""
    core_steps: int = 50_000
    """core steps per measurement"""
    repeats: int = 5
    """measurements per side; the best is kept"""
    horizon: int = 2
    """MultiTurnValueReward's window (w)"""
    samples: int = 3
    """MultiTurnValueReward's futures (k)"""
    out: str = "benchmarks/results/reward_cost.json"
    """where to write the JSON results"""
    quick: bool = False
    """a tiny smoke run"""


def core_step_seconds(n: int, seed: int = 0) -> float:
    """Seconds per ``AffectiveCore.step``, on forks of users met along random episodes."""
    env = gym.make(ENV_ID, voice="template", reward=None)
    rng = np.random.default_rng(seed)
    forks, actions = [], []
    env.reset(seed=seed)
    while len(forks) < n:
        forks.append(env.unwrapped.fork_user())  # the look-ahead user model
        actions.append(int(rng.integers(8)))
        _, _, term, trunc, _ = env.step(int(rng.integers(8)))
        if term or trunc:
            env.reset()
    env.close()
    start = time.perf_counter()
    for core, act in zip(forks, actions, strict=True):
        core.step(act)
    return (time.perf_counter() - start) / n


def env_step_seconds(steps: int, reward: str | None, seed: int = 0, **reward_kwargs) -> float:
    """Seconds per env step (resets included) through ``gym.make(..., reward=reward)``."""
    env = gym.make(ENV_ID, voice="template", reward=reward, reward_kwargs=reward_kwargs or None)
    actions = np.random.default_rng(seed).integers(8, size=steps).tolist()
    env.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed / steps


def main(args: Args) -> dict:
    if args.quick:
        args = dataclasses.replace(args, steps=300, core_steps=2000, repeats=1)
    lookahead = args.horizon * args.samples
    names = ("bare", "multi_turn", *REWARDS)
    times: dict[str, list[float]] = {name: [] for name in ("core", *names)}
    # Interleaved: every side sees the same machine load.
    for _ in range(args.repeats):
        times["core"].append(core_step_seconds(args.core_steps))
        times["bare"].append(env_step_seconds(args.steps, None))
        times["multi_turn"].append(
            env_step_seconds(args.steps, "multi_turn", horizon=args.horizon, samples=args.samples)
        )
        for name in REWARDS:
            times[name].append(env_step_seconds(args.steps, name))
    best = {name: min(values) for name, values in times.items()}
    core_block = lookahead * best["core"]
    results = {
        "machine": f"{cpu_model()}, Python {platform.python_version()}",
        "args": dataclasses.asdict(args),
        "us_per_core_step": best["core"] * 1e6,
        "us_per_env_step": {name: best[name] * 1e6 for name in names},
        "us_overhead_per_env_step": {
            name: (best[name] - best["bare"]) * 1e6 for name in names if name != "bare"
        },
        # The target: the wrapper's cost per env step, in units of k x w core steps.
        "multi_turn_ratio": (best["multi_turn"] - best["bare"]) / core_block,
        # The whole wrapped step (env included), same unit: an upper bound on the above.
        "multi_turn_total_ratio": best["multi_turn"] / core_block,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return results


def report(r: dict) -> str:
    k, w = r["args"]["samples"], r["args"]["horizon"]
    lines = [
        f"machine: {r['machine']}",
        "",
        "| measurement | us per env step | wrapper cost, us |",
        "|---|---:|---:|",
        f"| core step (`AffectiveCore.step`) | {r['us_per_core_step']:.1f} | |",
    ]
    for name, us in r["us_per_env_step"].items():
        label = "bare env (`reward=None`)" if name == "bare" else f'`reward="{name}"`'
        cost = r["us_overhead_per_env_step"].get(name)
        lines.append(f"| {label} | {us:.1f} | {'' if cost is None else f'{cost:.1f}'} |")
    lines += [
        "",
        f"MultiTurnValueReward (k={k}, w={w}) cost / {k * w} core steps (target <= 2): "
        f"{r['multi_turn_ratio']:.2f}",
        f"MultiTurnValueReward whole step / {k * w} core steps: {r['multi_turn_total_ratio']:.2f}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from ``Args`` (tyro, as the other benchmarks)."""
    return tyro.cli(Args, args=argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main(parse_args())
