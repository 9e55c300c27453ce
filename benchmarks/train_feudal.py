"""Feudal hierarchy, both levels learned with SB3: a goal-conditioned worker, then a manager.

CleanRL style: one script, a dataclass of arguments.

1. The worker (PPO) learns on ``GoalConditioned(env)``: each goal is a class of support act
   (explore, comfort, help, connect); its reward is intrinsic (playing the goal's class
   without the user resisting).
2. The manager (PPO) learns on ``Options(env, goal_options(worker, goals))``: each of its
   actions hands the worker a goal for ``horizon`` turns; its reward is the env's own
   (the sparse success bonus, or any reward wrapper).
3. Both are evaluated on the ``test`` cards against a random manager over the same worker.

    python benchmarks/train_feudal.py            # writes benchmarks/results/feudal.json
    python benchmarks/train_feudal.py --quick    # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents.goals import ACT_GOALS, GoalConditioned, goal_options
from dialogue_gym.agents.options import Options


@dataclass
class Args:
    worker_steps: int = 20_000
    """PPO timesteps for the worker"""
    manager_steps: int = 30_000
    """PPO timesteps (high-level decisions) for the manager"""
    horizon: int = 1
    """turns the worker pursues each goal"""
    seed: int = 0
    """seed of training and evaluation"""
    out: str = "benchmarks/results/feudal.json"
    """where to write the JSON results"""
    quick: bool = False
    """a tiny smoke run"""


def make(split: str) -> gym.Env:
    return gym.make("EmpathyDialogue-v0", voice="template", scenarios=split)


def success_rate(env: gym.Env, choose, seed: int) -> float:
    rng = np.random.default_rng(seed)
    n = len(env.unwrapped.cards)
    wins = 0
    for k in range(n):
        obs, info = env.reset(seed=seed + k, options={"card": k})
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(choose(obs, rng))
            done = term or trunc
        wins += bool(info["success"])
    return wins / n


def main(args: Args) -> dict:
    import torch
    from stable_baselines3 import PPO

    if args.quick:
        args = dataclasses.replace(args, worker_steps=256, manager_steps=256)
    torch.manual_seed(args.seed)
    goals = list(ACT_GOALS)
    worker = PPO(
        "MultiInputPolicy", GoalConditioned(make("train"), goals=goals), seed=args.seed, verbose=0
    )
    worker.learn(args.worker_steps)
    options = goal_options(worker, goals, horizon=args.horizon)
    manager = PPO(
        "MultiInputPolicy", Options(make("train"), options), gamma=0.95, seed=args.seed, verbose=0
    )
    manager.learn(args.manager_steps)

    test = Options(make("test"), options)
    worker_test = GoalConditioned(make("test"), goals=goals, horizon=1)
    results = {
        "args": dataclasses.asdict(args),
        "worker_goal_rate": success_rate_of_goals(worker, worker_test, args.seed),
        "manager_success": success_rate(
            test, lambda o, rng: int(manager.predict(o, deterministic=True)[0]), args.seed
        ),
        "random_manager_success": success_rate(
            test, lambda o, rng: int(rng.integers(len(options))), args.seed
        ),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(
        f"worker reaches its goal on {results['worker_goal_rate']:.0%} of turns; "
        f"manager success {results['manager_success']:.0%} "
        f"vs random manager {results['random_manager_success']:.0%} (test cards)"
    )
    return results


def success_rate_of_goals(worker, env: GoalConditioned, seed: int, episodes: int = 20) -> float:
    """Share of turns on which the worker reached its (randomly drawn) goal."""
    reached = turns = 0
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            obs, reward, term, trunc, _ = env.step(int(worker.predict(obs, deterministic=True)[0]))
            reached += reward > 0
            turns += 1
            done = term or trunc
    return reached / turns


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL)."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse_args())
