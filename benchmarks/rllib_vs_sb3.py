"""RLlib's PPO (new API stack) next to SB3's PPO on EmpathyDialogue-v0, measured as the study measures.

CleanRL style: one script, a dataclass of arguments. Both engines train on the ``train`` cards
(template voice) under one reward (the sparse bonus by default) with the reward study's PPO
settings (``dialogue_gym.study.run``: 512 decisions per update, minibatches of 64, 10 epochs, lr
3e-4, GAE lambda 0.95, clip 0.2, entropy 0.01, separate 64-64 tanh networks;
``dialogue_gym.integrations.rllib.SB3_PPO`` maps them to RLlib's names), and every ``eval_every``
decisions each is played greedily on the 72 ``test`` cards, card ``k`` with seed
``EVAL_SEED + k`` (SB3 through the study's own ``play_test_cards``, RLlib through
``evaluate_rllib``, which plays the same episodes). The random and stage-heuristic reference
policies are measured the same way, for scale.

- SB3: the study's learner (``make_learner("ppo", ...)``), one process, one torch thread (as
  the study's workers run).
- RLlib: ``ppo_config(num_env_runners=...)`` on a local Ray instance: the learner in the driver
  (one torch thread), each env runner an actor process with its own env.

Writes ``benchmarks/results/rllib_vs_sb3.csv`` (one row per engine, seed and checkpoint), a
JSON summary beside it, and the figure ``docs/results/rllib_vs_sb3.png``.

    python benchmarks/rllib_vs_sb3.py                 # 12,288 decisions, 5 seeds each
    python benchmarks/rllib_vs_sb3.py --quick         # a smoke run (2 updates, 1 seed)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.evaluation.episodes import evaluate, summarize
from dialogue_gym.evaluation.machine import cpu_model
from dialogue_gym.study import run as study


@dataclass
class Args:
    steps: int = 12_288
    """agent decisions per run (a multiple of eval_every)"""
    eval_every: int = 2_048
    """decisions between evaluations on the test cards (a multiple of 512, one PPO update)"""
    seeds: int = 5
    """training seeds per engine"""
    reward: str = "sparse"
    """the reward both engines train on"""
    max_turns: int = 10
    """turn limit of an episode"""
    num_env_runners: int = 1
    """RLlib's remote env runners"""
    ray_cpus: int = 2
    """CPUs the local Ray instance may use"""
    csv: str = "benchmarks/results/rllib_vs_sb3.csv"
    """the per-checkpoint rows"""
    summary: str = "benchmarks/results/rllib_vs_sb3.json"
    """the summary (final success per engine, wall times, the machine)"""
    figure: str = "docs/results/rllib_vs_sb3.png"
    """the figure (empty: none)"""
    quick: bool = False
    """a smoke run: 1,024 decisions, one seed, evaluated after each update"""


def checkpoints(args: Args) -> list[int]:
    if args.steps % args.eval_every or args.eval_every % 512:
        raise ValueError("steps must be a multiple of eval_every, and eval_every of 512")
    return list(range(args.eval_every, args.steps + 1, args.eval_every))


def run_sb3(args: Args, seed: int) -> list[dict[str, Any]]:
    """The study's PPO learner, evaluated with the study's own functions."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    started = time.perf_counter()
    spec = study.RunSpec("default", {}, args.reward, "ppo", seed)
    model = study.make_learner("ppo", study.train_env(spec, args.max_turns), seed, args.steps)
    setup = time.perf_counter() - started
    test_env = study.eval_env({}, args.max_turns, probe_rewards=False)
    rows, trained, done = [], 0.0, 0
    for target in checkpoints(args):
        started = time.perf_counter()
        model.learn(target - done, reset_num_timesteps=False)
        trained += time.perf_counter() - started
        done = int(model.num_timesteps)
        s = summarize(study.play_test_cards(test_env, study.as_policy(model, "ppo")))
        rows.append(row("sb3", seed, done, s, trained, setup))
        print(f"sb3    seed {seed} {done:>6} decisions: success {s['success_rate']:.1%}")
    test_env.close()
    return rows


def run_rllib(args: Args, seed: int) -> list[dict[str, Any]]:
    """RLlib's own PPO through its public API, evaluated on the same test episodes."""
    import torch

    from dialogue_gym.integrations.rllib import evaluate_rllib, ppo_config

    torch.set_num_threads(1)
    started = time.perf_counter()
    config = ppo_config(
        reward=args.reward,
        num_env_runners=args.num_env_runners,
        seed=seed,
        voice="template",
        scenarios="train",
        max_turns=args.max_turns,
    )
    algo = config.build_algo()  # starts the runner actors, each building its env
    setup = time.perf_counter() - started
    rows, trained, done = [], 0.0, 0
    try:
        for target in checkpoints(args):
            started = time.perf_counter()
            while done < target:
                done = int(algo.train()["num_env_steps_sampled_lifetime"])
            trained += time.perf_counter() - started
            s = evaluate_rllib(algo)
            rows.append(row("rllib", seed, done, s, trained, setup))
            print(f"rllib  seed {seed} {done:>6} decisions: success {s['success_rate']:.1%}")
    finally:
        algo.stop()
    return rows


def row(
    engine: str, seed: int, steps: int, s: dict[str, float], seconds: float, setup: float
) -> dict:
    """One checkpoint; ``train_seconds`` counts sampling and updates only (no evaluation, no
    setup), ``setup_seconds`` building the learner (RLlib: ``build_algo``, runners included)."""
    return {
        "engine": engine,
        "seed": seed,
        "steps": steps,
        "success_rate": round(s["success_rate"], 4),
        "final_emotion": round(s["final_emotion"], 2),
        "mean_turns": round(s["mean_turns"], 2),
        "train_seconds": round(seconds, 1),
        "setup_seconds": round(setup, 1),
    }


def references(args: Args) -> dict[str, float]:
    """Success of the random and stage-heuristic policies on the same test episodes."""
    kwargs = {"voice": "template", "scenarios": "test", "max_turns": args.max_turns}
    return {
        name: summarize(evaluate(name, env_kwargs=kwargs, seed=study.EVAL_SEED))["success_rate"]
        for name in ("random", "stage-heuristic")
    }


def machine() -> str:
    """The cores and the CPU's name (``/proc/cpuinfo`` where there is one), for the figure."""
    name = cpu_model()
    return f"{os.cpu_count()} CPU cores ({name}), no GPU"


def plot(rows: list[dict], refs: dict[str, float], summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display here
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {"sb3": "tab:blue", "rllib": "tab:orange"}
    labels = {"sb3": "SB3 PPO", "rllib": "RLlib PPO (new API stack)"}
    for engine, colour in colours.items():
        mine = [r for r in rows if r["engine"] == engine]
        if not mine:
            continue
        seeds = sorted({r["seed"] for r in mine})
        for seed in seeds:
            curve = [r for r in mine if r["seed"] == seed]
            ax.plot(
                [r["steps"] for r in curve],
                [r["success_rate"] for r in curve],
                color=colour,
                alpha=0.3,
                lw=1,
            )
        steps = sorted({r["steps"] for r in mine})
        mean = [np.mean([r["success_rate"] for r in mine if r["steps"] == s]) for s in steps]
        seconds = summary["engines"][engine]["train_seconds_per_run"]
        ax.plot(
            steps,
            mean,
            color=colour,
            lw=2.2,
            marker="o",
            label=f"{labels[engine]}: mean of {len(seeds)} seeds, {seconds:.0f} s per run",
        )
    for (name, value), style in zip(refs.items(), (":", "--"), strict=False):
        ax.axhline(value, color="grey", ls=style, lw=1, label=f"{name} policy")
    ax.set_xlabel("agent decisions (training, train cards)")
    ax.set_ylabel("success on the 72 test cards (greedy)")
    ax.set_ylim(0, 1)
    ax.set_title(
        f"PPO on EmpathyDialogue-v0, {summary['args']['reward']} reward; {summary['machine']}",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: Args) -> dict[str, Any]:
    import ray

    if args.quick:
        args = dataclasses.replace(args, steps=1_024, eval_every=512, seeds=1)
    checkpoints(args)  # refuse bad settings before anything trains
    started = time.perf_counter()
    rows: list[dict] = []
    for seed in range(args.seeds):
        rows += run_sb3(args, seed)
    # A fresh local instance (address="local"), loopback only, even if a cluster runs here.
    ray.init(address="local", num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    try:
        for seed in range(args.seeds):
            rows += run_rllib(args, seed)
    finally:
        ray.shutdown()
    refs = references(args)
    summary: dict[str, Any] = {
        "args": dataclasses.asdict(args),
        "machine": machine(),
        "references": refs,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "engines": {},
    }
    for engine in ("sb3", "rllib"):
        final = [r for r in rows if r["engine"] == engine and r["steps"] >= args.steps]
        summary["engines"][engine] = {
            "final_success": [r["success_rate"] for r in final],
            "final_success_mean": round(float(np.mean([r["success_rate"] for r in final])), 4),
            "train_seconds_per_run": round(float(np.mean([r["train_seconds"] for r in final])), 1),
            "setup_seconds_per_run": round(float(np.mean([r["setup_seconds"] for r in final])), 1),
            "curve": {
                str(s): round(
                    float(
                        np.mean(
                            [
                                r["success_rate"]
                                for r in rows
                                if r["engine"] == engine and r["steps"] == s
                            ]
                        )
                    ),
                    4,
                )
                for s in sorted({r["steps"] for r in rows if r["engine"] == engine})
            },
        }
    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if args.figure:
        plot(rows, refs, summary, Path(args.figure))
    print(json.dumps({k: summary[k] for k in ("engines", "references", "wall_seconds")}, indent=2))
    return summary


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL)."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse_args())
