"""Put the LLM experiment's runs side by side: one table and one plot over every reward.

Reads ``<results>/<run>/{eval.json,curves.csv,episodes_before.jsonl,episodes_after.jsonl}`` as
``dialogue-gym train-llm`` writes them and prints markdown (the tables of
``docs/llm_policies.md``); ``--plot`` also draws every run's training curves in one figure.

    python benchmarks/llm_report.py --results benchmarks/results/llm --plot docs/results/llm_curves.png
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import tyro

from dialogue_gym.evaluation import audit
from dialogue_gym.study.llm_level import paired_difference


@dataclasses.dataclass
class Args:
    results: str = "benchmarks/results/llm"
    """the folder holding one sub-folder per run"""
    runs: tuple[str, ...] = ()
    """runs to show, in order (default: every run with an eval.json)"""
    plot: str = ""
    """write the curves of every run into this PNG"""


def _runs(args: Args) -> list[Path]:
    root = Path(args.results)
    if args.runs:
        return [root / r for r in args.runs]
    return sorted(p.parent for p in root.glob("*/eval.json") if not p.parent.name.endswith("-tiny"))


def _curves(run: Path) -> list[dict[str, float]]:
    with (run / "curves.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _episodes(run: Path, phase: str) -> list[dict]:
    with (run / f"episodes_{phase}.jsonl").open() as f:
        return [json.loads(line) for line in f]


def table(runs: list[Path]) -> str:
    lines = [
        "| reward (trained on) | success | final emotion | soothing index | grounding rate |"
        " user left | strategy entropy | train reward, first → last quarter |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        ev = json.loads((run / "eval.json").read_text())
        b, a = ev["before"], ev["after"]
        curves = _curves(run)
        q = max(1, len(curves) // 4)
        first = sum(c["env_reward"] for c in curves[:q]) / q
        last = sum(c["env_reward"] for c in curves[-q:]) / q

        def pair(key: str, fmt: str, b: dict = b, a: dict = a) -> str:
            return f"{format(b[key], fmt)} → {format(a[key], fmt)}"

        lines.append(
            f"| `{run.name}` | {pair('success', '.0%')} | {pair('final_emotion', '.1f')} | "
            f"{pair('soothing_index', '.2f')} | {pair('grounding_rate', '.2f')} | "
            f"{pair('user_left', '.0%')} | {pair('strategy_entropy', '.2f')} | "
            f"{first:.3f} → {last:.3f} |"
        )
    return "\n".join(lines)


def paired(runs: list[Path], reps: int = 2000, seed: int = 0) -> str:
    """After minus before, per test user (same card and seed), with a 95% bootstrap interval."""
    import numpy as np

    lines = [
        "| reward (trained on) | final emotion, after − before [95% CI] |"
        " episode return, after − before [95% CI] | cue phrases per turn, after − before |",
        "|---|---:|---:|---:|",
    ]
    rng = np.random.default_rng(seed)  # one generator over every run and field, in order
    for run in runs:
        episodes = {phase: _episodes(run, phase) for phase in ("before", "after")}
        before = {(e["card"], e["seed"]): e for e in episodes["before"]}
        after = {(e["card"], e["seed"]): e for e in episodes["after"]}
        keys = sorted(before.keys() & after.keys())
        cells = []
        for field in ("final_emotion", "return"):
            mean, lo, hi = paired_difference(
                episodes["before"], episodes["after"], field, seed=rng, reps=reps
            )
            cells.append(f"{mean:+.3g} [{lo:+.3g}, {hi:+.3g}]")
        cues = [
            audit.utterance_stats([after[k] for k in keys])["cue_phrases_mean"]
            - audit.utterance_stats([before[k] for k in keys])["cue_phrases_mean"]
        ]
        lines.append(f"| `{run.name}` | {cells[0]} | {cells[1]} | {cues[0]:+.2f} |")
    return "\n".join(lines)


def strategies(runs: list[Path]) -> str:
    names = list(json.loads((runs[0] / "eval.json").read_text())["before"]["strategy_distribution"])
    head = "| strategy (lexical reading) | before (untrained) | " + " | ".join(
        f"after `{r.name}`" for r in runs
    )
    lines = [head + " |", "|---|" + "---:|" * (len(runs) + 1)]
    first = json.loads((runs[0] / "eval.json").read_text())["before"]["strategy_distribution"]
    for s in names:
        cells = [f"{first[s]:.2f}"] + [
            f"{json.loads((r / 'eval.json').read_text())['after']['strategy_distribution'][s]:.2f}"
            for r in runs
        ]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def audits(runs: list[Path]) -> str:
    before = _episodes(runs[0], "before")
    more = {f"after {r.name}": _episodes(r, "after") for r in runs[1:]}
    return audit.audit_report(before, _episodes(runs[0], "after"), more=more, samples=1)


def plot(runs: list[Path], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for run in runs:
        curves = _curves(run)
        steps = [c["step"] for c in curves]
        for ax, key in zip(axes, ("env_reward", "success", "final_emotion"), strict=True):
            ax.plot(steps, [c[key] for c in curves], marker=".", label=run.name)
    for ax, title in zip(
        axes, ("episode reward (each run's own)", "success", "final emotion"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("GRPO step")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(args: Args) -> None:
    runs = _runs(args)
    if not runs:
        raise SystemExit(f"no runs with an eval.json under {args.results}")
    print("## Before and after, on the 72 test users\n")
    print(table(runs))
    print()
    print(paired(runs))
    print("\n## Strategies\n")
    print(strategies(runs))
    print("\n## Audit\n")
    print(audits(runs))
    if args.plot:
        plot(runs, args.plot)


if __name__ == "__main__":
    main(tyro.cli(Args))
