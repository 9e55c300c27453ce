"""The reward study's report: aggregates with intervals, verdicts in words, tables and plots.

Aggregates follow Agarwal et al. (2021, the ``rliable`` library): a run's score on a *task* is
its success rate on the test cards of one hidden need (six tasks); the interquartile mean
(IQM) pools runs x tasks, and its 95% interval is a stratified bootstrap over runs within each
task. The verdicts compare every reward with the coarse bonus (``sparse``) for the same
learner and simulator setting; their rules are stated in the report itself and in
:data:`RULES`.
"""

from __future__ import annotations

import csv
import json
import platform
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: How the report turns numbers into words (quoted in the report).
RULES = {
    "beats": "its success IQM interval lies wholly above the coarse bonus's",
    "reaches": "its interval overlaps the coarse bonus's (or lies above it), and the coarse "
    "bonus itself learned (its interval's top is at least 25%)",
    "soothes": "it does not reach the coarse bonus and its soothing index is at least 0.5 (most "
    "of the emotion it gains comes from users whose need stayed unresolved)",
    "both fail": "the coarse bonus did not learn in this budget and neither did it",
    "falls short": "its interval lies wholly below the coarse bonus's, without soothing",
    "faster": "its area under the learning curve (mean success over the evaluations) is at "
    "least 10% above the coarse bonus's (slower: 10% below)",
}
SOOTHING_AT = 0.5
LEARNED_AT = 0.25


def task_scores(records: Sequence[dict[str, Any]], key: str = "card_success") -> np.ndarray:
    """Runs x tasks: each run's mean of ``key`` over the test cards of each hidden need.

    Example:
        >>> rec = {"card_success": [1.0, 0.0, 1.0], "card_need": ["a", "a", "b"]}
        >>> task_scores([rec]).tolist()
        [[0.5, 1.0]]
    """
    needs = sorted(set(records[0]["card_need"]))
    rows = []
    for rec in records:
        by_need = defaultdict(list)
        for need, value in zip(rec["card_need"], rec[key], strict=True):
            by_need[need].append(value)
        rows.append([float(np.mean(by_need[n])) for n in needs])
    return np.array(rows)


def iqm_intervals(
    groups: dict[str, np.ndarray], reps: int, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """IQM and its 95% stratified-bootstrap interval per group (``rliable``), seeded."""
    from rliable import library as rly
    from rliable import metrics as rm

    def iqm(scores: np.ndarray) -> np.ndarray:
        return np.array([rm.aggregate_iqm(scores)])

    # rliable's StratifiedBootstrap draws its resamples from numpy's global generator (it
    # ignores random_state), so seed that, and give the caller's state back afterwards.
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch's RandomState deprecation
            point, interval = rly.get_interval_estimates(
                groups, iqm, reps=reps, random_state=np.random.RandomState(seed)
            )
    finally:
        np.random.set_state(saved)
    return {
        k: (float(point[k][0]), float(interval[k][0, 0]), float(interval[k][1, 0])) for k in groups
    }


def aggregate(records: Sequence[dict[str, Any]], reps: int) -> list[dict[str, Any]]:
    """One row per (setting, learner, reward): IQMs with intervals, metric means over seeds."""
    cells: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        cells[(rec["setting"], rec["learner"], rec["reward"])].append(rec)
    keys = list(cells)
    success = iqm_intervals({"|".join(k): task_scores(cells[k]) for k in keys}, reps)
    emotion = iqm_intervals(
        {"|".join(k): task_scores(cells[k], "card_final_emotion") / 100.0 for k in keys}, reps
    )
    rows = []
    for key in keys:
        group = cells[key]
        name = "|".join(key)
        metric_names = group[0]["metrics"].keys()
        curve = np.array([[p["success"] for p in rec["curve"]] for rec in group])
        rows.append(
            {
                "setting": key[0],
                "learner": key[1],
                "reward": key[2],
                "seeds": len(group),
                "success_iqm": success[name][0],
                "success_lo": success[name][1],
                "success_hi": success[name][2],
                "emotion_iqm": 100 * emotion[name][0],
                "emotion_lo": 100 * emotion[name][1],
                "emotion_hi": 100 * emotion[name][2],
                "curve_auc": float(curve.mean()),
                "curve": curve.mean(axis=0).tolist(),
                "curve_steps": [p["steps"] for p in group[0]["curve"]],
                "trajectory": np.mean([r["emotion_trajectory"] for r in group], axis=0).tolist(),
                "train_seconds": float(np.mean([r["train_seconds"] for r in group])),
                **{m: float(np.mean([r["metrics"][m] for r in group])) for m in metric_names},
            }
        )
    return rows


def add_relative_grounding(rows: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> None:
    """Each row's grounding-act rate as a ratio of the stage heuristic's in the same setting."""
    reference = {
        b["setting"]: b["metrics"]["grounding_rate"]
        for b in baselines
        if b["policy"] == "stage-heuristic"
    }
    for row in rows:
        ref = reference.get(row["setting"], 0.0)
        row["grounding_vs_heuristic"] = row["grounding_rate"] / ref if ref > 0 else float("nan")


def verdicts(rows: list[dict[str, Any]]) -> None:
    """Add ``verdict`` and ``speed`` to each row by comparing it with the sparse row beside it."""
    sparse = {(r["setting"], r["learner"]): r for r in rows if r["reward"] == "sparse"}
    for row in rows:
        ref = sparse.get((row["setting"], row["learner"]))
        if ref is None or row is ref:
            row["verdict"], row["speed"] = ("reference", "") if row is ref else ("", "")
            continue
        learned = ref["success_hi"] >= LEARNED_AT
        if row["success_lo"] > ref["success_hi"]:
            row["verdict"] = "beats"
        elif learned and row["success_hi"] >= ref["success_lo"]:
            row["verdict"] = "reaches"
        elif row["soothing_index"] >= SOOTHING_AT:
            row["verdict"] = "soothes"
        elif not learned:
            row["verdict"] = "both fail"
        else:
            row["verdict"] = "falls short"
        ratio = row["curve_auc"] / ref["curve_auc"] if ref["curve_auc"] > 0 else float("inf")
        row["speed"] = "faster" if ratio >= 1.1 else "slower" if ratio <= 0.9 else "as fast"


# --- words ------------------------------------------------------------------------------------


def _fmt_ci(row: dict[str, Any], key: str, pct: bool) -> str:
    lo, mid, hi = row[f"{key}_lo"], row[f"{key}_iqm"], row[f"{key}_hi"]
    if pct:
        return f"{mid:.0%} [{lo:.0%}, {hi:.0%}]"
    return f"{mid:.1f} [{lo:.1f}, {hi:.1f}]"


def results_table(rows: list[dict[str, Any]], setting: str) -> str:
    """The Markdown table of one setting's runs."""
    head = (
        "| learner | reward | success IQM [95% CI] | final emotion IQM [95% CI] | left | turns "
        "| grounding vs heuristic | soothing index | strategy entropy (bits) | learning AUC "
        "| verdict vs sparse |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        if r["setting"] != setting:
            continue
        verdict = f"{r['verdict']}, {r['speed']}" if r["speed"] else r["verdict"]
        lines.append(
            f"| {r['learner']} | {r['reward']} | {_fmt_ci(r, 'success', True)} "
            f"| {_fmt_ci(r, 'emotion', False)} | {r['user_left_rate']:.0%} | {r['mean_turns']:.1f} "
            f"| {r['grounding_vs_heuristic']:.2f} | {r['soothing_index']:.2f} "
            f"| {r['strategy_entropy']:.2f} | {r['curve_auc']:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def baselines_table(baselines: list[dict[str, Any]], setting: str) -> str:
    lines = [
        "| policy | success | final emotion | left | turns | grounding rate | soothing index |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in baselines:
        if b["setting"] != setting:
            continue
        m = b["metrics"]
        lines.append(
            f"| {b['policy']} | {m['success_rate']:.0%} | {m['final_emotion']:.1f} "
            f"| {m['user_left_rate']:.0%} | {m['mean_turns']:.1f} | {m['grounding_rate']:.2f} "
            f"| {m['soothing_index']:.2f} |"
        )
    return "\n".join(lines)


def answer(rows: list[dict[str, Any]], setting: str) -> list[str]:
    """The answer in words for one setting, one paragraph per learner, from the verdicts."""
    out = []
    for learner in dict.fromkeys(r["learner"] for r in rows if r["setting"] == setting):
        cell = [r for r in rows if r["setting"] == setting and r["learner"] == learner]
        ref = next((r for r in cell if r["reward"] == "sparse"), None)
        if ref is None:
            continue
        parts = []
        for verdict in ("beats", "reaches", "falls short", "soothes", "both fail"):
            names = [
                f"{r['reward']} ({r['success_iqm']:.0%}, {r['speed']})"
                for r in cell
                if r["verdict"] == verdict
            ]
            if names:
                parts.append(f"**{verdict}**: {', '.join(names)}")
        costs = [
            f"{r['reward']} grounding x{r['grounding_vs_heuristic']:.2f} of the heuristic's "
            f"(sparse x{ref['grounding_vs_heuristic']:.2f}), soothing {r['soothing_index']:.2f} "
            f"(sparse {ref['soothing_index']:.2f})"
            for r in cell
            if r is not ref
        ]
        out.append(
            f"- **{learner}** — the coarse bonus reaches {ref['success_iqm']:.0%} "
            f"[{ref['success_lo']:.0%}, {ref['success_hi']:.0%}]. "
            + "; ".join(parts)
            + ". Costs: "
            + "; ".join(costs)
            + "."
        )
    return out


def conditions(rows: list[dict[str, Any]], learner: str) -> tuple[list[str], list[str]]:
    """Per emotion-grounded reward: the settings where it replaces the bonus, and where not."""
    can, cannot = [], []
    settings = list(dict.fromkeys(r["setting"] for r in rows if r["learner"] == learner))
    rewards = list(dict.fromkeys(r["reward"] for r in rows if r["reward"] != "sparse"))
    for reward in rewards:
        cells = {r["setting"]: r for r in rows if r["learner"] == learner and r["reward"] == reward}
        yes = [s for s in settings if s in cells and cells[s]["verdict"] in ("reaches", "beats")]
        no = [
            f"{s} ({cells[s]['verdict']})"
            for s in settings
            if s in cells and cells[s]["verdict"] not in ("reaches", "beats")
        ]
        if yes:
            can.append(f"`{reward}`: {', '.join(yes)}")
        if no:
            cannot.append(f"`{reward}`: {', '.join(no)}")
    return can, cannot


def sensitivity_table(rows: list[dict[str, Any]], learner: str) -> str:
    settings = list(dict.fromkeys(r["setting"] for r in rows if r["learner"] == learner))
    rewards = list(dict.fromkeys(r["reward"] for r in rows if r["learner"] == learner))
    cells = {(r["setting"], r["reward"]): r for r in rows if r["learner"] == learner}
    lines = [
        "| setting | " + " | ".join(rewards) + " |",
        "|---|" + "---|" * len(rewards),
    ]
    for s in settings:
        entries = []
        for w in rewards:
            r = cells.get((s, w))
            if r is None:
                entries.append("")
                continue
            tag = "" if r["verdict"] in ("reference", "reaches") else f" **{r['verdict']}**"
            entries.append(f"{r['success_iqm']:.0%} (soothe {r['soothing_index']:.2f}){tag}")
        lines.append(f"| {s} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------------


def plot(
    out: Path, rows: list[dict[str, Any]], baselines: list[dict[str, Any]], main: str
) -> list[str]:
    """Learning curves, final success with intervals, emotion trajectories, sensitivity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    main_rows = [r for r in rows if r["setting"] == main]
    learners = list(dict.fromkeys(r["learner"] for r in main_rows))

    fig, axes = plt.subplots(1, len(learners), figsize=(4.5 * len(learners), 3.6), squeeze=False)
    for ax, learner in zip(axes[0], learners, strict=True):
        for r in main_rows:
            if r["learner"] == learner:
                ax.plot(r["curve_steps"], r["curve"], marker="o", label=r["reward"])
        ax.set(title=learner, xlabel="agent decisions", ylabel="test success", ylim=(-0.02, 1.02))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    files.append("learning_curves.png")

    fig, axes = plt.subplots(1, len(learners), figsize=(4.5 * len(learners), 3.2), squeeze=False)
    for ax, learner in zip(axes[0], learners, strict=True):
        cell = [r for r in main_rows if r["learner"] == learner]
        y = np.arange(len(cell))
        mid = np.array([r["success_iqm"] for r in cell])
        err = np.array(
            [[m - r["success_lo"], r["success_hi"] - m] for m, r in zip(mid, cell, strict=True)]
        ).T
        ax.errorbar(mid, y, xerr=err, fmt="o", capsize=3)
        ax.set_yticks(y, [r["reward"] for r in cell])
        ax.set(title=learner, xlabel="success IQM (95% CI)", xlim=(-0.02, 1.02))
    fig.tight_layout()
    fig.savefig(out / "final_success.png", dpi=110)
    files.append("final_success.png")

    fig, ax = plt.subplots(figsize=(6, 3.8))
    first = learners[0]
    for r in main_rows:
        if r["learner"] == first:
            ax.plot(r["trajectory"], label=f"{first}/{r['reward']}")
    for b in baselines:
        if b["setting"] == main:
            ax.plot(b["emotion_trajectory"], linestyle="--", label=b["policy"])
    ax.set(xlabel="turn", ylabel="mean emotion (test cards)", title="emotion trajectories")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "emotion_trajectories.png", dpi=110)
    files.append("emotion_trajectories.png")

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    if len(settings) > 1:
        learner = next(r["learner"] for r in rows if r["setting"] == settings[1])
        rewards = list(dict.fromkeys(r["reward"] for r in rows if r["learner"] == learner))
        cells = {
            (r["setting"], r["reward"]): r["success_iqm"] for r in rows if r["learner"] == learner
        }
        grid = np.array([[cells.get((s, w), np.nan) for w in rewards] for s in settings])
        fig, ax = plt.subplots(figsize=(1.2 * len(rewards) + 2.5, 0.45 * len(settings) + 1.5))
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(rewards)), rewards, rotation=30, ha="right")
        ax.set_yticks(range(len(settings)), settings)
        for i in range(len(settings)):
            for j in range(len(rewards)):
                if not np.isnan(grid[i, j]):
                    ax.text(
                        j, i, f"{grid[i, j]:.0%}", ha="center", va="center", fontsize=7, color="w"
                    )
        fig.colorbar(image, label=f"{learner} success IQM")
        fig.tight_layout()
        fig.savefig(out / "sensitivity.png", dpi=110)
        files.append("sensitivity.png")
    plt.close("all")
    return files


# --- files ------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
            )


def machine() -> str:
    """The CPU model and core count, for the report (figures depend on the machine)."""
    import os

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def write(
    out: Path,
    records: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    args: Any,
    elapsed: float,
    command: str,
) -> dict[str, Any]:
    """Write the CSVs, plots, ``summary.json`` and ``report.md``; return the summary."""
    from dialogue_gym.evaluation.metrics import METRIC_DOCS

    rows = aggregate(records, args.bootstrap_reps)
    add_relative_grounding(rows, baselines)
    verdicts(rows)
    main = records[0]["setting"]

    _write_csv(
        out / "runs.csv",
        [
            {
                k: v
                for k, v in r.items()
                if k not in ("curve", "metrics", "sim", "fingerprint") and not k.startswith("card_")
            }
            | r["metrics"]
            | {"sim": r["sim"]}
            for r in records
        ],
    )
    _write_csv(
        out / "curves.csv",
        [
            {
                "run": r["run"],
                "setting": r["setting"],
                "reward": r["reward"],
                "learner": r["learner"],
                "seed": r["seed"],
                **point,
            }
            for r in records
            for point in r["curve"]
        ],
    )
    _write_csv(
        out / "baselines.csv",
        [{"setting": b["setting"], "policy": b["policy"], **b["metrics"]} for b in baselines],
    )
    _write_csv(
        out / "aggregate.csv",
        [
            {k: v for k, v in r.items() if k not in ("curve", "trajectory", "curve_steps")}
            for r in rows
        ],
    )
    plots = plot(out, rows, baselines, main) if args.plots else []

    table = results_table(rows, main)
    sweep_learner = next((r["learner"] for r in rows if r["setting"] != main), None)
    lines = [
        "# Reward study",
        "",
        f"Command: `{command}` — {len(records)} runs, {args.steps} agent decisions each, {elapsed / 60:.1f} min on "
        f"{machine()} ({args.workers} worker processes).",
        "",
        f"Settings: `{json.dumps({k: v for k, v in vars(args).items() if k != 'progress'}, default=str)}`",
        "",
        f"## Main setting: `{main}` (test cards, template voice, IQM over {args.seeds} seeds x 6 needs)",
        "",
        table,
        "",
        "Reference policies (same episodes):",
        "",
        baselines_table(baselines, main),
        "",
        "## The answer",
        "",
        *answer(rows, main),
        "",
        "Rules: " + "; ".join(f"*{k}*: {v}" for k, v in RULES.items()) + ".",
    ]
    if sweep_learner is not None:
        can, cannot = conditions(rows, sweep_learner)
        lines += [
            "",
            f"## Sensitivity to the simulator ({sweep_learner}, {args.sweep_seeds} seeds per cell)",
            "",
            "Success IQM per setting and reward (soothing index; a verdict where the reward does "
            "not reach the coarse bonus):",
            "",
            sensitivity_table(rows, sweep_learner),
            "",
            "Emotion-grounded rewards **can** replace the coarse bonus under: "
            + ("; ".join(can) if can else "none of the settings")
            + ".",
            "",
            "They **cannot** under: "
            + ("; ".join(cannot) if cannot else "none of the settings")
            + ".",
            "",
            "An emotion signal is only as trustworthy as the simulator producing it: these "
            "verdicts hold for this rule-based user under these settings, not for people.",
        ]
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "## Metrics", ""] + [f"- `{k}`: {v}" for k, v in METRIC_DOCS.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {"rows": rows, "baselines": baselines, "table": table, "elapsed_s": elapsed}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary
