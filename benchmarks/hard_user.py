"""The calibration of EmpathyDialogueHard-v0: is the coarse bonus hard to learn on its user?

CleanRL style: one script, a dataclass of arguments. For the default user
(``EmpathyDialogue-v0``) and the hard one (``EmpathyDialogueHard-v0``, or any ``--sim``
overrides of the default env) it measures, exactly as the reward study does (the 72 ``test``
cards, one episode each, seeds ``EVAL_SEED + k``, template voice, 10 turns):

- the study's reference policies (random, always-reassure, stage heuristic, oracle), and
- PPO with the study's hyperparameters (``dialogue_gym.study.learners.make_learner("ppo", ...)``)
  trained on the ``train`` cards with one reward (``sparse``: the coarse bonus) for ``--steps``
  decisions, evaluated at each of ``--checkpoints`` (the learning curve) and at the end.

The hard user's targets (``docs/simulator.md``): oracle >= 90%, the stage heuristic far above
random, PPO on ``sparse`` below about 50% at the full budget (mean over seeds).

    python benchmarks/hard_user.py                        # hard user, 5 seeds, 100k decisions
    python benchmarks/hard_user.py --envs EmpathyDialogue-v0 EmpathyDialogueHard-v0
    python benchmarks/hard_user.py --sim explore_gain=0.2  # other settings, over each env's own
    python benchmarks/hard_user.py --baseline-reps 20     # reference policies on 20 x 72 episodes
    python benchmarks/hard_user.py --quick                # a smoke run (< 60 s)

It writes ``benchmarks/results/hard_user.json`` (every figure, the settings, the machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents.reference import baselines, make_policy
from dialogue_gym.evaluation.episodes import ModelPolicy, run_episode
from dialogue_gym.study.settings import parse_overrides  # the study's, checked by SimConfig

#: The reward study's evaluation seeds (``dialogue_gym.study.settings.EVAL_SEED``): card k is played
#: with seed ``EVAL_SEED + k``. Repeated baseline passes add ``1000 * rep``.
EVAL_SEED = 10_000


@dataclass
class Args:
    envs: tuple[str, ...] = ("EmpathyDialogueHard-v0",)
    """registered env ids to measure"""
    sim: tuple[str, ...] = ()
    """SimConfig overrides (name=value), laid over each env's own settings, e.g. explore_gain=0.2"""
    reward: str = "sparse"
    """the reward PPO trains with"""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """PPO training seeds per env (the study's are 0, 1, ...)"""
    steps: int = 100_000
    """PPO decisions per run (the largest budget)"""
    checkpoints: tuple[int, ...] = (12_000, 24_000, 40_000, 60_000)
    """evaluations along the way (besides the end)"""
    baseline_reps: int = 3
    """passes over the 72 test cards for the reference policies (pass r: seeds + 1000 r)"""
    max_turns: int = 10
    """turn limit of an episode (the study's)"""
    workers: int = 2
    """PPO runs in parallel (processes)"""
    out: str = "benchmarks/results/hard_user.json"
    """where to write the JSON results"""
    quick: bool = False
    """a smoke run: one seed, 1,024 decisions, 12 test cards, one baseline pass"""
    cards: int = 0
    """evaluate on the first N test cards (0: all 72)"""


def make_env(
    env_id: str, sim: dict[str, float], split: str, max_turns: int, reward: Any
) -> gym.Env:
    kwargs: dict[str, Any] = {"voice": "template", "scenarios": split, "max_turns": max_turns}
    if sim:
        kwargs["sim"] = sim  # the hard env puts these over its own settings
    return gym.make(env_id, reward=reward, **kwargs)


def play(env: gym.Env, policy: Any, cards: int, rep: int = 0) -> dict[str, float]:
    """One episode per test card, the study's seeds: success, user left, turns (means)."""
    n = cards or len(env.unwrapped.cards)
    results = [run_episode(env, policy, seed=EVAL_SEED + k + 1000 * rep, card=k) for k in range(n)]
    return {
        "success": float(np.mean([r.success for r in results])),
        "left": float(np.mean([r.user_left for r in results])),
        "turns": float(np.mean([r.turns for r in results])),
        "episodes": len(results),
    }


def measure_baselines(env_id: str, args: Args) -> dict[str, dict[str, float]]:
    env = make_env(env_id, parse_overrides(args.sim), "test", args.max_turns, None)
    out = {}
    for name in baselines():
        runs = [
            play(env, make_policy(name, env), args.cards, rep) for rep in range(args.baseline_reps)
        ]
        out[name] = {
            "success": round(float(np.mean([r["success"] for r in runs])), 4),
            "left": round(float(np.mean([r["left"] for r in runs])), 4),
            "turns": round(float(np.mean([r["turns"] for r in runs])), 2),
            "episodes": sum(r["episodes"] for r in runs),
        }
    env.close()
    return out


def train_ppo(env_id: str, seed: int, args: Args) -> dict[str, Any]:
    """One PPO run as the study trains it: train cards, the study's hyperparameters."""
    import torch

    from dialogue_gym.study.learners import make_learner

    torch.set_num_threads(1)  # runs are parallel processes, as in the study
    torch.manual_seed(seed)
    sim = parse_overrides(args.sim)
    started = time.perf_counter()
    model = make_learner(
        "ppo", make_env(env_id, sim, "train", args.max_turns, args.reward), seed, args.steps
    )
    test = make_env(env_id, sim, "test", args.max_turns, None)
    points = sorted({*(c for c in args.checkpoints if 0 < c < args.steps), args.steps})
    curve, done = [], 0
    for target in points:
        model.learn(target - done, reset_num_timesteps=False)
        done = target
        row = play(test, ModelPolicy(model), args.cards)
        curve.append({"steps": done, **{k: round(v, 4) for k, v in row.items()}})
    test.close()
    return {
        "env": env_id,
        "seed": seed,
        "final": curve[-1],
        "curve": curve,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _run(job: tuple[str, int, Args]) -> dict[str, Any]:
    return train_ppo(*job)


def main(args: Args) -> dict[str, Any]:
    if args.quick:
        args = dataclasses.replace(
            args, seeds=(0,), steps=1024, checkpoints=(512,), baseline_reps=1, cards=12, workers=1
        )
    started = time.perf_counter()
    result: dict[str, Any] = {
        "args": dataclasses.asdict(args),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "envs": {},
    }
    for env_id in args.envs:
        env = make_env(env_id, parse_overrides(args.sim), "test", args.max_turns, None)
        sim = dataclasses.asdict(env.unwrapped.sim_config)
        env.close()
        result["envs"][env_id] = {"sim": sim, "baselines": measure_baselines(env_id, args)}
        print(f"{env_id} baselines: {_baseline_line(result['envs'][env_id]['baselines'])}")
    jobs = [(env_id, seed, args) for env_id in args.envs for seed in args.seeds]
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(args.workers, mp_context=get_context("fork")) as pool:
            runs = list(pool.map(_run, jobs))
    else:
        runs = [_run(job) for job in jobs]
    for env_id in args.envs:
        mine = [r for r in runs if r["env"] == env_id]
        entry = result["envs"][env_id]
        entry["ppo"] = {"reward": args.reward, "runs": mine}
        if mine:
            by_step: dict[int, list[float]] = {}
            for run in mine:
                for point in run["curve"]:
                    by_step.setdefault(point["steps"], []).append(point["success"])
            entry["ppo"]["mean_success"] = {
                str(k): round(float(np.mean(v)), 4) for k, v in sorted(by_step.items())
            }
    result["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(report(result))
    print(f"wrote {out}")
    return result


def _baseline_line(rows: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{name} {row['success']:.1%}" for name, row in rows.items())


def report(result: dict[str, Any]) -> str:
    lines = []
    for env_id, entry in result["envs"].items():
        lines.append(f"{env_id}: {_baseline_line(entry['baselines'])}")
        ppo = entry.get("ppo", {})
        for run in ppo.get("runs", []):
            curve = ", ".join(f"{p['steps'] / 1000:g}k {p['success']:.1%}" for p in run["curve"])
            lines.append(f"  PPO {ppo['reward']} seed {run['seed']}: {curve} ({run['seconds']} s)")
        if ppo.get("mean_success"):
            mean = ", ".join(f"{int(k) / 1000:g}k {v:.1%}" for k, v in ppo["mean_success"].items())
            lines.append(f"  PPO {ppo['reward']} mean over seeds: {mean}")
    lines.append(f"{result['seconds']} s in all")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL)."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse_args(sys.argv[1:]))
