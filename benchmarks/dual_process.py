"""DPDP's claim on our simulator: a dual-process agent reaches about MCTS's success at a
fraction of its cost.

CleanRL style: one script, a dataclass of arguments. System 1 is PPO trained on the
``train`` cards; System 2 is UCT over forks of the env; the dual-process agent asks
System 2 only when System 1's top-1 minus top-2 probability is below the threshold.
Everything is evaluated on the ``test`` cards, one episode per card, fixed seeds.

    python benchmarks/dual_process.py            # writes benchmarks/results/dual_process.json
    python benchmarks/dual_process.py --quick    # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents.planning import DualProcessAgent, MCTSPlanner, sb3_action_probs
from dialogue_gym.evaluation.episodes import evaluate, summarize


@dataclass
class Args:
    system1_steps: int = 60_000
    """PPO timesteps for System 1 on the train cards"""
    simulations: int = 30
    """UCT simulations per System 2 decision"""
    threshold: float = 0.3
    """System 1 acts when top-1 minus top-2 probability >= threshold"""
    seed: int = 0
    """seed of training, planning and evaluation"""
    cards: int = 0
    """evaluate on the first N test cards (0: all)"""
    out: str = "benchmarks/results/dual_process.json"
    """where to write the JSON results"""
    quick: bool = False
    """a tiny smoke run"""


def train_system1(args: Args):
    import torch
    from stable_baselines3 import PPO

    torch.manual_seed(args.seed)
    env = gym.wrappers.FlattenObservation(
        gym.make("EmpathyDialogue-v0", voice="template", scenarios="train")
    )
    model = PPO("MlpPolicy", env, seed=args.seed, gamma=0.95, verbose=0, device="cpu")
    model.learn(args.system1_steps)
    return model, env


def run(choose, args: Args) -> dict[str, float]:
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    n = args.cards or len(env.unwrapped.cards)
    successes, turns, started = [], [], time.perf_counter()
    for k in range(n):
        obs, info = env.reset(seed=args.seed + k, options={"card": k})
        done, t = False, 0
        while not done:
            obs, _, term, trunc, info = env.step(choose(env, obs))
            done, t = term or trunc, t + 1
        successes.append(info["success"])
        turns.append(t)
    return {
        "success_rate": float(np.mean(successes)),
        "mean_turns": float(np.mean(turns)),
        "seconds": time.perf_counter() - started,
    }


def main(args: Args) -> dict:
    if args.quick:
        args = dataclasses.replace(args, system1_steps=512, simulations=4, cards=4)
    model, flat_env = train_system1(args)

    def flat(obs):
        return gym.spaces.flatten(flat_env.env.observation_space, obs)

    probs = sb3_action_probs(model)

    def system1(env, obs):
        return int(np.argmax(probs(flat(obs))))

    mcts = MCTSPlanner(simulations=args.simulations, seed=args.seed)
    dual_planner = MCTSPlanner(simulations=args.simulations, seed=args.seed)
    dual = DualProcessAgent(lambda obs: probs(flat(obs)), dual_planner, threshold=args.threshold)

    results: dict = {"args": dataclasses.asdict(args)}
    results["system1"] = run(system1, args)
    results["mcts"] = {**run(lambda env, obs: mcts.plan(env), args), "forks": mcts.forks}
    results["dual_process"] = {
        **run(dual.act, args),
        "forks": dual_planner.forks,
        "system2_share": dual.system2_share,
    }
    oracle = summarize(evaluate("oracle", env_kwargs={"scenarios": "test"}, seed=args.seed))
    results["oracle"] = {k: oracle[k] for k in ("success_rate", "mean_turns")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return results


def report(r: dict) -> str:
    lines = [
        "| agent | success | mean turns | System 2 share | forks (cost) | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("system1", "mcts", "dual_process", "oracle"):
        row = r[name]
        share = row.get("system2_share", 1.0 if name == "mcts" else 0.0)
        lines.append(
            f"| {name} | {row['success_rate']:.0%} | {row['mean_turns']:.1f} | {share:.0%} | "
            f"{row.get('forks', 0):,} | {row.get('seconds', 0.0):.1f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL)."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse_args())
