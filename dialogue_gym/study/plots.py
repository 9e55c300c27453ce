"""The reward study's plots: learning curves, final success, per-need success, emotion
trajectories (PNG files beside the report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.study.verdicts import (
    need_verdict,
)


def plot(
    out: Path,
    rows: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    main: str,
    suffix: str = "",
) -> list[str]:
    """Learning curves, final success with intervals, emotion trajectories, sensitivity.

    ``rows`` and ``baselines`` are one env's; ``suffix`` is added to each file's name (the
    second env's plots beside the first's); the sensitivity plot is drawn without one only.
    """
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
                (line,) = ax.plot(r["curve_steps"], r["curve"], marker="o", label=r["reward"])
                if "curve_lo" in r:  # 95% interval over seeds
                    ax.fill_between(
                        r["curve_steps"],
                        r["curve_lo"],
                        r["curve_hi"],
                        color=line.get_color(),
                        alpha=0.15,
                        linewidth=0,
                    )
        ax.set(
            title=f"{learner} (bands: 95% CI over seeds)",
            xlabel="agent decisions",
            ylabel="test success",
            ylim=(-0.02, 1.02),
        )
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"learning_curves{suffix}.png", dpi=110)
    files.append(f"learning_curves{suffix}.png")

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
    fig.savefig(out / f"final_success{suffix}.png", dpi=110)
    files.append(f"final_success{suffix}.png")

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
    fig.savefig(out / f"emotion_trajectories{suffix}.png", dpi=110)
    files.append(f"emotion_trajectories{suffix}.png")

    need_rows = [r for r in main_rows if "need_success" in r]
    if need_rows:
        needs = list(need_rows[0]["need_success"])
        grid = np.array([[r["need_success"].get(n, np.nan) for n in needs] for r in need_rows])
        fig, ax = plt.subplots(figsize=(1.1 * len(needs) + 3.0, 0.32 * len(need_rows) + 1.6))
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(needs)), needs, rotation=30, ha="right")
        ax.set_yticks(range(len(need_rows)), [f"{r['learner']} / {r['reward']}" for r in need_rows])
        for i, r in enumerate(need_rows):
            soothing = r.get("need_soothing", {})
            for j, n in enumerate(needs):
                tag = need_verdict(grid[i, j], soothing.get(n))
                mark = {"solves": "", "soothes": " S", "fails": ""}[tag]
                colour = "k" if grid[i, j] > 0.6 else "w"  # readable on viridis's yellow
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.0%}{mark}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
        ax.set_title("success per hidden need (S: only soothes it)", fontsize=9)
        fig.colorbar(image, label="success")
        fig.tight_layout()
        fig.savefig(out / f"needs{suffix}.png", dpi=110)
        files.append(f"needs{suffix}.png")

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    if len(settings) > 1 and not suffix:
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
