"""The reward study's report: aggregates with intervals, verdicts in words, tables and plots.

Aggregates follow Agarwal et al. (2021, the ``rliable`` library): a run's score on a *task* is
its success rate on the test cards of one hidden need (six tasks); the interquartile mean
(IQM) pools runs x tasks, and its 95% interval is a stratified bootstrap over runs within each
task (:mod:`~dialogue_gym.study.intervals`, each row on a generator of its own). Every reward
is judged against the coarse bonus (``sparse``) of the same learner, setting and user by the
interval of their IQM difference and a declared margin (:mod:`~dialogue_gym.study.verdicts`);
the rules are stated in the report itself.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.evaluation.machine import describe
from dialogue_gym.study import llm_level
from dialogue_gym.study.intervals import (
    difference_interval,
    identity_seed,
    improvement_interval,
    iqm_interval,
    task_scores,
)
from dialogue_gym.study.settings import DEFAULT_ENV
from dialogue_gym.study.verdicts import (
    DEFAULT_MARGIN,
    FLAT_DELTA,
    LEARNS_MARGIN,
    REPLACES,
    SOLVES_AT,
    SOOTHING_AT,
    flattened,
    learned_seeds,
    need_verdict,
    plateau,
    rules,
    verdicts,
)


def aggregate(records: Sequence[dict[str, Any]], reps: int) -> list[dict[str, Any]]:
    """One row per (env, setting, learner, reward): IQMs with intervals, metric means over
    seeds, each seed's final success, and, beside every row with a coarse bonus to compare
    with, the IQM difference and the probability of improvement with their intervals.

    Each interval is drawn from a generator seeded by its row's identity (env, setting,
    learner, reward and seed set; the bonus's too for a difference): adding rows or runs of
    other rows never moves it.
    """
    cells: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        key = (rec.get("env", DEFAULT_ENV), rec["setting"], rec["learner"], rec["reward"])
        cells[key].append(rec)
    for group in cells.values():  # resampled by position: the records' order must not matter
        group.sort(key=lambda r: int(r["seed"]))
    scores = {key: task_scores(group) for key, group in cells.items()}

    def identity(key: tuple[str, ...]) -> list[Any]:
        return [*key, sorted(int(r["seed"]) for r in cells[key])]

    rows = []
    for key, group in cells.items():
        success = iqm_interval(scores[key], reps, identity_seed("success", identity(key)))
        emotion = iqm_interval(
            task_scores(group, "card_final_emotion") / 100.0,
            reps,
            identity_seed("emotion", identity(key)),
        )
        compared: dict[str, Any] = {}
        ref_key = (*key[:3], "sparse")
        if key[3] != "sparse" and ref_key in cells:
            pair = identity_seed("difference", identity(key), identity(ref_key))
            diff = difference_interval(scores[key], scores[ref_key], reps, pair)
            poi = improvement_interval(scores[key], scores[ref_key], reps, pair)
            compared = {
                "diff_iqm": diff[0],
                "diff_lo": diff[1],
                "diff_hi": diff[2],
                "poi": poi[0],
                "poi_lo": poi[1],
                "poi_hi": poi[2],
            }
        metric_names = group[0]["metrics"].keys()
        curve = np.array([[p["success"] for p in rec["curve"]] for rec in group])
        lo, hi = seed_band(curve)
        seed_success = [float(r["metrics"]["success_rate"]) for r in group]
        rows.append(
            {
                "env": key[0],
                "setting": key[1],
                "learner": key[2],
                "reward": key[3],
                "seeds": len(group),
                "success_iqm": success[0],
                "success_lo": success[1],
                "success_hi": success[2],
                "emotion_iqm": 100 * emotion[0],
                "emotion_lo": 100 * emotion[1],
                "emotion_hi": 100 * emotion[2],
                **compared,
                "seed_success": seed_success,
                "seeds_learned": learned_seeds(seed_success),
                "curve_auc": float(curve.mean()),
                "curve": curve.mean(axis=0).tolist(),
                "curve_lo": lo,
                "curve_hi": hi,
                "curve_steps": [p["steps"] for p in group[0]["curve"]],
                "steps": group[0].get("steps", group[0]["curve"][-1]["steps"]),
                "budget": group[0].get("budget", group[0].get("steps")),
                "flattened": flattened(curve.mean(axis=0).tolist()),
                "plateau_steps": plateau(
                    [p["steps"] for p in group[0]["curve"]], curve.mean(axis=0).tolist()
                ),
                "trajectory": np.mean([r["emotion_trajectory"] for r in group], axis=0).tolist(),
                "train_seconds": float(np.mean([r["train_seconds"] for r in group])),
                **{m: float(np.mean([r["metrics"][m] for r in group])) for m in metric_names},
                **breakdown(group),
            }
        )
    return rows


def seed_band(curve: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[list, list]:
    """The 95% percentile-bootstrap interval of the mean over seeds, at each evaluation.

    ``curve`` is seeds x evaluations; the seeds are resampled (seeded, so the band is the
    same every time). One seed gives a band of zero width.

    Example:
        >>> lo, hi = seed_band(np.array([[0.0, 0.5], [0.0, 1.0], [0.0, 0.9]]))
        >>> lo[0] == hi[0] == 0.0 and lo[1] < 0.8 < hi[1]
        True
    """
    n = len(curve)
    picks = np.random.default_rng(seed).integers(n, size=(reps, n))
    means = curve[picks].mean(axis=1)  # reps x evaluations
    lo, hi = np.percentile(means, [2.5, 97.5], axis=0)
    return lo.tolist(), hi.tolist()


def breakdown(group: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per hidden need and per problem type, pooled over the runs of one cell.

    ``need_success`` / ``problem_success``: the share of successful episodes;
    ``need_soothing``: the soothing index of that need's episodes (the share of the emotion
    gained that was gained with the need unresolved; 0 when nothing was gained). Records
    of a version without the per-card outcome (``card_resolved``) give success only.
    """
    out: dict[str, Any] = {}
    for key, field in (("need", "card_need"), ("problem", "card_problem")):
        if not all(field in rec for rec in group):
            continue
        success: dict[str, list[float]] = defaultdict(list)
        gains: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        for rec in group:
            for k, name in enumerate(rec[field]):
                success[name].append(rec["card_success"][k])
                if "card_resolved" in rec and "card_initial_emotion" in rec:
                    gain = max(0.0, rec["card_final_emotion"][k] - rec["card_initial_emotion"][k])
                    gains[name].append((gain, bool(rec["card_resolved"][k])))
        out[f"{key}_success"] = {n: float(np.mean(v)) for n, v in sorted(success.items())}
        if key == "need" and gains:
            soothing = {}
            for name, pairs in sorted(gains.items()):
                total = sum(g for g, _ in pairs)
                unresolved = sum(g for g, resolved in pairs if not resolved)
                soothing[name] = unresolved / total if total > 0 else 0.0
            out["need_soothing"] = soothing
    return out


def add_relative_grounding(rows: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> None:
    """Each row's grounding-act rate as a ratio of the stage heuristic's in the same setting."""
    reference = {
        (b.get("env", DEFAULT_ENV), b["setting"]): b["metrics"]["grounding_rate"]
        for b in baselines
        if b["policy"] == "stage-heuristic"
    }
    for row in rows:
        ref = reference.get((row.get("env", DEFAULT_ENV), row["setting"]), 0.0)
        row["grounding_vs_heuristic"] = row["grounding_rate"] / ref if ref > 0 else float("nan")


def add_chance(rows: list[dict[str, Any]], baselines: list[dict[str, Any]]) -> None:
    """Each row's ``chance_success``: the random policy's success in the same env and setting
    (0 where the study measured no random policy)."""
    chance = {
        (b.get("env", DEFAULT_ENV), b["setting"]): b["metrics"]["success_rate"]
        for b in baselines
        if b["policy"] == "random"
    }
    for row in rows:
        row["chance_success"] = chance.get((row.get("env", DEFAULT_ENV), row["setting"]), 0.0)


# --- words ------------------------------------------------------------------------------------


def _fmt_ci(row: dict[str, Any], key: str, pct: bool) -> str:
    lo, mid, hi = row[f"{key}_lo"], row[f"{key}_iqm"], row[f"{key}_hi"]
    if pct:
        return f"{mid:.0%} [{lo:.0%}, {hi:.0%}]"
    return f"{mid:.1f} [{lo:.1f}, {hi:.1f}]"


def seeds_cell(row: dict[str, Any]) -> str:
    """Each seed's final success (percent, in seed order) and how many of them learned.

    Example:
        >>> seeds_cell({"seed_success": [0.0, 0.82, 0.0, 0.03, 0.01], "seeds_learned": 1})
        '0 82 0 3 1 (1/5 learned)'
    """
    each = row.get("seed_success")
    if not each:
        return ""
    shown = " ".join(f"{100 * s:.0f}" for s in each)
    return f"{shown} ({row['seeds_learned']}/{len(each)} learned)"


def difference_cell(row: dict[str, Any]) -> str:
    """The IQM difference against the coarse bonus with its interval, in success points, and
    the probability of improvement with its interval; empty on the bonus's own row.

    Example:
        >>> difference_cell({"diff_iqm": -0.05, "diff_lo": -0.08, "diff_hi": -0.01,
        ...                  "poi": 0.31, "poi_lo": 0.2, "poi_hi": 0.45})
        '-5 [-8, -1] | 0.31 [0.20, 0.45]'
    """
    if "diff_iqm" not in row:
        return " | "
    return (
        f"{points(row['diff_iqm'])} [{points(row['diff_lo'])}, {points(row['diff_hi'])}]"
        f" | {row['poi']:.2f} [{row['poi_lo']:.2f}, {row['poi_hi']:.2f}]"
    )


def points(fraction: float) -> str:
    """A difference of success in signed whole points; ``0`` for anything that rounds to 0.

    Example:
        >>> points(0.253), points(-0.004), points(-0.1)
        ('+25', '0', '-10')
    """
    value = round(100 * fraction)
    return f"{value:+d}" if value else "0"


def results_table(rows: list[dict[str, Any]], setting: str) -> str:
    """The Markdown table of one setting's runs."""
    head = (
        "| learner | reward | success IQM [95% CI] | success per seed, % | difference vs sparse, "
        "points [95% CI] | P(better than sparse) [95% CI] | final emotion IQM [95% CI] | left "
        "| turns | grounding vs heuristic | soothing index | strategy entropy (bits) "
        "| learning AUC | verdict vs sparse |\n|" + "---|" * 14
    )
    lines = [head]
    for r in rows:
        if r["setting"] != setting:
            continue
        verdict = verdict_cell(r)
        lines.append(
            f"| {r['learner']} | {r['reward']} | {_fmt_ci(r, 'success', True)} "
            f"| {seeds_cell(r)} | {difference_cell(r)} "
            f"| {_fmt_ci(r, 'emotion', False)} | {r['user_left_rate']:.0%} | {r['mean_turns']:.1f} "
            f"| {r['grounding_vs_heuristic']:.2f} | {r['soothing_index']:.2f} "
            f"| {r['strategy_entropy']:.2f} | {r['curve_auc']:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_cell(row: dict[str, Any]) -> str:
    """``matches, faster``; ``(seeds split)``, ``(unsettled)`` and an inconclusive row's
    suggested seeds added where they apply.

    Example:
        >>> verdict_cell({"verdict": "soothes", "speed": "", "settled": False})
        'soothes (unsettled)'
        >>> verdict_cell({"verdict": "inconclusive", "speed": "slower", "seeds_needed": 24,
        ...               "split": True})
        'inconclusive, slower (~24 seeds) (seeds split)'
    """
    if row.get("dropped"):
        return "dropped (bonus unlearned)"
    text = ", ".join(part for part in (row["verdict"], row.get("speed", "")) if part)
    if row["verdict"] == "inconclusive":
        needed = row.get("seeds_needed")
        text += f" (~{needed} seeds)" if needed else " (more than 100 seeds)"
    if row.get("split"):
        text += " (seeds split)"
    if row.get("settled") is False:
        text += " (unsettled)"
    return text


def section(title: str, intro: str, *body: str) -> list[str]:
    """A report section's lines: a blank line, the heading, its introduction, its body."""
    return ["", f"## {title}", "", intro, "", *body]


def breakdown_table(
    rows: list[dict[str, Any]], setting: str, key: str, cell: Callable[[dict[str, Any], str], str]
) -> str:
    """A learner x reward table of one setting with a column per entry of each row's ``key``
    (a need, a problem type), ``cell(row, column)`` in each; empty when no row has ``key``."""
    cells = [r for r in rows if r["setting"] == setting and key in r]
    if not cells:
        return ""
    columns = list(cells[0][key])
    lines = [
        "| learner | reward | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in cells:
        entries = [cell(r, column) for column in columns]
        lines.append(f"| {r['learner']} | {r['reward']} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def need_table(rows: list[dict[str, Any]], setting: str) -> str:
    """Per hidden need: each reward's success there, and whether it solves or soothes it."""

    def cell(r: dict[str, Any], need: str) -> str:
        soothing = r.get("need_soothing", {})
        success = r["need_success"].get(need, float("nan"))
        tag = need_verdict(success, soothing.get(need))
        extra = f" ({soothing[need]:.2f})" if tag == "soothes" else ""
        return f"{success:.0%} {tag}{extra}"

    return breakdown_table(rows, setting, "need_success", cell)


def need_summary(rows: list[dict[str, Any]], setting: str) -> list[str]:
    """One line per learner and reward: the needs it solves and those it only soothes."""
    out = []
    for r in rows:
        if r["setting"] != setting or "need_success" not in r:
            continue
        soothing = r.get("need_soothing", {})
        tags = {n: need_verdict(v, soothing.get(n)) for n, v in r["need_success"].items()}
        solves = [n for n, t in tags.items() if t == "solves"]
        soothes = [n for n, t in tags.items() if t == "soothes"]
        out.append(
            f"- {r['learner']} / `{r['reward']}`: solves "
            + (", ".join(solves) or "none")
            + "; only soothes "
            + (", ".join(soothes) or "none")
            + "."
        )
    return out


def problem_table(rows: list[dict[str, Any]], setting: str) -> str:
    """Per problem type (ESConv's): each reward's success rate on the test cards of that type."""
    return breakdown_table(
        rows,
        setting,
        "problem_success",
        lambda r, problem: f"{r['problem_success'].get(problem, float('nan')):.0%}",
    )


def unsettled(rows: list[dict[str, Any]], setting: str) -> list[str]:
    """The verdicts of one setting that more decisions may change, per learner."""
    out = []
    for learner in dict.fromkeys(r["learner"] for r in rows if r["setting"] == setting):
        cell = [r for r in rows if r["setting"] == setting and r["learner"] == learner]
        ref = next((r for r in cell if r["reward"] == "sparse"), None)
        if ref is None or ref.get("dropped"):
            continue
        open_ = [r["reward"] for r in cell if r is not ref and r.get("settled") is False]
        if not open_:
            continue
        climbing = [r["reward"] for r in cell if r.get("flattened") is False]
        out.append(
            f"- **{learner}**: " + ", ".join(open_) + " (still climbing at the last "
            "evaluation: " + ", ".join(climbing) + ")"
        )
    return out


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
        if ref.get("dropped"):
            out.append(dropped_line(cell, ref))
            continue
        parts = []
        for verdict in ("beats", "matches", "inconclusive", "falls short", "soothes", "both fail"):
            names = [
                f"{r['reward']} ("
                + ", ".join(
                    part
                    for part in (
                        f"{r['success_iqm']:.0%}",
                        difference_words(r),
                        r.get("speed", ""),
                        "seeds split" if r.get("split") else "",
                        "unsettled" if r.get("settled") is False else "",
                    )
                    if part
                )
                + ")"
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
        line = (
            f"- **{learner}** — the coarse bonus scores {ref['success_iqm']:.0%} "
            f"[{ref['success_lo']:.0%}, {ref['success_hi']:.0%}]"
            + (f" (per seed: {seeds_cell(ref)})" if ref.get("seed_success") else "")
            + "."
        )
        if parts:
            line += " " + "; ".join(parts) + "."
        if costs:
            line += " Costs: " + "; ".join(costs) + "."
        out.append(line)  # (a study of the coarse bonus alone: its line, nothing compared)
    return out


def difference_words(row: dict[str, Any]) -> str:
    """``-5 points [-8, -1]`` (and an inconclusive row's suggested seeds), for the answer.

    Example:
        >>> difference_words({"diff_iqm": -0.32, "diff_lo": -0.6, "diff_hi": 0.05,
        ...                    "verdict": "inconclusive", "seeds_needed": 40})
        '-32 points [-60, +5], ~40 seeds would settle it'
    """
    if "diff_iqm" not in row:
        return ""
    text = f"{points(row['diff_iqm'])} points [{points(row['diff_lo'])}, {points(row['diff_hi'])}]"
    if row.get("verdict") == "inconclusive":
        needed = row.get("seeds_needed")
        text += f", ~{needed} seeds would settle it" if needed else ", beyond 100 seeds"
    return text


def dropped_line(cell: list[dict[str, Any]], ref: dict[str, Any]) -> str:
    """The answer's line for a learner dropped from the verdicts (it never learned the bonus).

    Example:
        >>> ref = {"learner": "a2c", "reward": "sparse", "success_iqm": 0.0, "success_lo": 0.0,
        ...        "success_hi": 0.02, "curve_auc": 0.03, "chance_success": 0.06,
        ...        "curve_steps": [6000, 12000]}
        >>> other = {"learner": "a2c", "reward": "multi_turn", "success_iqm": 0.15}
        >>> print(dropped_line([ref, other], ref))
        - **a2c** — the coarse bonus scores 0% [0%, 2%]: dropped from the verdicts, it never learned the coarse bonus in 12000 decisions (learning area 0.03, below the random policy's success 0.06 + 0.05). Without verdicts: multi_turn 15%.
    """
    steps = ref.get("curve_steps") or ["?"]
    others = ", ".join(f"{r['reward']} {r['success_iqm']:.0%}" for r in cell if r is not ref)
    return (
        f"- **{ref['learner']}** — the coarse bonus scores {ref['success_iqm']:.0%} "
        f"[{ref['success_lo']:.0%}, {ref['success_hi']:.0%}]: dropped from the verdicts, it "
        f"never learned the coarse bonus in {steps[-1]} decisions (learning area "
        f"{ref['curve_auc']:.2f}, below the random policy's success "
        f"{ref.get('chance_success', 0.0):.2f} + {LEARNS_MARGIN:.2f})."
        + (f" Without verdicts: {others}." if others else "")
    )


def conditions(rows: list[dict[str, Any]], learner: str) -> tuple[list[str], list[str]]:
    """Per emotion-grounded reward: the settings where it replaces the bonus, and where not."""
    can, cannot = [], []
    settings = list(dict.fromkeys(r["setting"] for r in rows if r["learner"] == learner))
    rewards = list(dict.fromkeys(r["reward"] for r in rows if r["reward"] != "sparse"))
    for reward in rewards:
        cells = {r["setting"]: r for r in rows if r["learner"] == learner and r["reward"] == reward}
        yes = [s for s in settings if s in cells and cells[s]["verdict"] in REPLACES]
        no = [
            f"{s} ({cells[s]['verdict']})"
            for s in settings
            if s in cells and cells[s]["verdict"] not in (*REPLACES, "dropped")
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
            tag = "" if r["verdict"] in ("reference", "matches") else f" **{r['verdict']}**"
            entries.append(f"{r['success_iqm']:.0%} (soothe {r['soothing_index']:.2f}){tag}")
        lines.append(f"| {s} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


# --- plots ------------------------------------------------------------------------------------


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


#: Row fields that are lists or tables: kept out of ``aggregate.csv``.
_NOT_FLAT = (
    "curve",
    "curve_lo",
    "curve_hi",
    "trajectory",
    "curve_steps",
    "need_success",
    "need_soothing",
    "problem_success",
)


def load_note(load: Sequence[float] | None) -> str:
    """The machine's load while the study ran, in words (other jobs slow it down).

    Example:
        >>> load_note((0.1, 2.9))
        '1-minute load average 0.1 at the start, 2.9 at the end'
    """
    if not load:
        return "load not recorded"
    return f"1-minute load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end"


def _slug(env: str) -> str:
    """An env id as a file-name part: ``EmpathyDialogueHard-v0`` as is, odd characters as ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in env)


def write(
    out: Path,
    records: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    args: Any,
    elapsed: float,
    command: str,
    load: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Write the CSVs, plots, ``summary.json`` and ``report.md``; return the summary.

    ``load``: the machine's 1-minute load average at the start and at the end of the study
    (:func:`os.getloadavg`), quoted beside the wall time.
    """
    from dialogue_gym.evaluation.metrics import METRIC_DOCS

    rows = aggregate(records, args.bootstrap_reps)
    add_relative_grounding(rows, baselines)
    add_chance(rows, baselines)
    main = records[0]["setting"]
    margin = getattr(args, "margin", DEFAULT_MARGIN * 100) / 100
    verdicts(rows, main, margin)
    envs = list(dict.fromkeys(r["env"] for r in rows))
    llm_runs = llm_level.load(args.llm_results) if getattr(args, "llm_results", "") else None

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
        [{k: v for k, v in r.items() if k not in _NOT_FLAT} for r in rows],
    )
    _write_csv(
        out / "needs.csv",
        [
            {
                "setting": r["setting"],
                "learner": r["learner"],
                "reward": r["reward"],
                "need": need,
                "success": success,
                "soothing_index": r.get("need_soothing", {}).get(need, ""),
                "verdict": need_verdict(success, r.get("need_soothing", {}).get(need)),
            }
            for r in rows
            for need, success in r.get("need_success", {}).items()
        ]
        or [{"setting": "", "learner": "", "reward": "", "need": "", "success": ""}],
    )
    by_env = {env: [r for r in rows if r["env"] == env] for env in envs}
    env_baselines = {
        env: [b for b in baselines if b.get("env", DEFAULT_ENV) == env] for env in envs
    }
    plots: list[str] = []
    if args.plots:
        for k, env in enumerate(envs):
            suffix = "" if k == 0 else "_" + _slug(env)
            plots += plot(out, by_env[env], env_baselines[env], main, suffix)

    several = envs != [DEFAULT_ENV]
    first = envs[0]
    tables = {env: results_table(by_env[env], main) for env in envs}

    def where(env: str) -> str:
        return f"with `{env}` in the `{main}` setting" if several else f"in the `{main}` setting"

    main_rows = {env: [r for r in by_env[env] if r["setting"] == main] for env in envs}
    both = llm_level.combined_answer(llm_runs, {where(env): main_rows[env] for env in envs})
    answers: list[str] = []
    still: list[str] = []
    for env in envs:
        found = unsettled(by_env[env], main)
        if several:  # blank lines: a heading line is not the list's lazy continuation
            answers += [f"**{env}**:", "", *answer(by_env[env], main), ""]
            still += [f"**{env}**:", "", *found, ""] if found else []
        else:
            answers += answer(by_env[env], main)
            still += found
    while still and not still[-1]:
        still.pop()
    if answers and answers[-1]:
        answers.append("")  # a paragraph of its own, not the last list item's continuation
    answers.append(both)
    sweep_learner = next((r["learner"] for r in by_env[first] if r["setting"] != main), None)
    lines = [
        "# Reward study",
        "",
        f"Command: `{command}` — {len(records)} runs, {budgets_line(records)}, "
        f"{elapsed / 60:.1f} min on {describe(python=False)} ({args.workers} worker processes; "
        f"{load_note(load)}).",
        "",
        f"Settings: `{json.dumps({k: v for k, v in vars(args).items() if k != 'progress'}, default=str)}`",
    ]
    for env in envs:
        user = f", user `{env}`" if several else ""
        lines += [
            "",
            f"## Main setting: `{main}`{user} (test cards, template voice, IQM over "
            f"{args.seeds} seeds x 6 needs)",
            "",
            tables[env],
            "",
            "Reference policies (same episodes):",
            "",
            baselines_table(env_baselines[env], main),
        ]
    lines += [
        "",
        "## The answer",
        "",
        *answers,
        "",
        f"Margin: δ = {100 * margin:g} success points, declared before the study ran "
        "(`--margin`; in `args.json` and, when not the default, in every run's fingerprint). "
        "Only *beats* and *matches* say a reward can replace the coarse bonus.",
        "",
        "Rules: " + "; ".join(f"*{k}*: {v}" for k, v in rules(margin).items()) + ".",
    ]
    if still:
        lines += [
            "",
            "Verdicts this budget cannot settle (a learning curve, the reward's or the coarse "
            f"bonus's, still gained {FLAT_DELTA:.0%} or more at its last evaluation):",
            "",
            *still,
        ]
    for env in envs:
        heading = f" ({env})" if several else ""
        needs = need_table(by_env[env], main)
        if needs:
            lines += section(
                f"Per hidden need{heading}",
                f"Success on the test cards of each hidden need (all seeds pooled); *solves*: at "
                f"least {SOLVES_AT:.0%}; *soothes*: below that with a soothing index of at least "
                f"{SOOTHING_AT} on that need (in brackets); *fails*: neither.",
                needs,
                "",
                *need_summary(by_env[env], main),
            )
        problems = problem_table(by_env[env], main)
        if problems:
            lines += section(
                f"Per problem type{heading}",
                "Success on the test cards of each problem type (ESConv's; 6 cards each, 12 for "
                "ongoing depression, all seeds pooled):",
                problems,
            )
    if sweep_learner is not None:
        can, cannot = conditions(by_env[first], sweep_learner)
        of = f" of {first}" if several else ""
        lines += [
            "",
            f"## Sensitivity to the simulator{of} ({sweep_learner}, {args.sweep_seeds} seeds "
            "per cell)",
            "",
            "Success IQM per setting and reward (soothing index; a verdict where the reward does "
            "not match the coarse bonus):",
            "",
            sensitivity_table(by_env[first], sweep_learner),
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
    lines += [""] + llm_level.section(llm_runs, main_rows[first], where(first))
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "## Metrics", ""] + [f"- `{k}`: {v}" for k, v in METRIC_DOCS.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {
        "rows": rows,
        "baselines": baselines,
        "envs": envs,
        "table": tables[first],
        "tables": tables,
        "elapsed_s": elapsed,
        "load": list(load) if load else None,
        "answer": answers,
        "unsettled": still,
        "plots": plots,
        "llm": llm_runs,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def budgets_line(records: Sequence[dict[str, Any]]) -> str:
    """The runs' budgets as the report's first line gives them: one number, or per learner,
    with the decisions trained beside the budget where they differ (on-policy learners train
    whole rollouts: PPO asked for 36,000 decisions in five chunks trains 38,400).

    Example:
        >>> budgets_line([{"learner": "ppo", "steps": 8000}, {"learner": "hppo", "steps": 8000}])
        '8000 agent decisions each'
        >>> budgets_line([{"learner": "ppo", "steps": 40000}, {"learner": "hppo", "steps": 12000}])
        'agent decisions per learner: ppo 40000, hppo 12000'
        >>> budgets_line([{"learner": "ppo", "budget": 36000, "steps": 38400},
        ...               {"learner": "a2c", "budget": 36000, "steps": 36000}])
        '36000 agent decisions each (trained in whole rollouts: ppo 38400)'
    """
    asked = {r["learner"]: r.get("budget", r.get("steps")) for r in records}
    trained = {r["learner"]: r.get("steps") for r in records}
    more = {k: v for k, v in trained.items() if v != asked[k]}
    if len(set(asked.values())) <= 1:
        text = f"{next(iter(asked.values()), '?')} agent decisions each"
        if more:
            text += " (trained in whole rollouts: "
            text += ", ".join(f"{k} {v}" for k, v in more.items()) + ")"
        return text
    return "agent decisions per learner: " + ", ".join(
        f"{k} {v}" + (f" ({more[k]} trained)" if k in more else "") for k, v in asked.items()
    )


def terminal_summary(summary: dict[str, Any], out: Path, runs: int, elapsed: float) -> str:
    """What the study prints at the end: a narrow table, the answer in words, the files.

    Example:
        >>> row = {"setting": "default", "learner": "ppo", "reward": "sparse", "success_iqm": 0.5,
        ...        "success_lo": 0.3, "success_hi": 0.7, "mean_turns": 8.0, "soothing_index": 0.0,
        ...        "verdict": "reference", "speed": ""}
        >>> text = terminal_summary({"rows": [row], "answer": ["- **ppo** — ..."],
        ...     "unsettled": [], "plots": ["needs.png"]}, Path("out"), 1, 60.0)
        >>> "ppo — ..." in text and "out/needs.png" in text
        True
    """
    rows = summary["rows"]
    main = rows[0]["setting"] if rows else ""
    envs = list(dict.fromkeys(r.get("env", DEFAULT_ENV) for r in rows))
    head = f"{'learner':<13} {'reward':<17} {'success [95% CI]':<17} "
    head += f"{'vs sparse, pts':<15} {'soothe':>6}  verdict vs sparse"
    lines: list[str] = []
    for env in envs:
        user = f", {env}" if envs != [DEFAULT_ENV] else ""
        if lines:
            lines.append("")
        lines += [f"Main setting: {main}{user} (test cards)", head, "-" * len(head)]
        for r in rows:
            if r["setting"] != main or r.get("env", DEFAULT_ENV) != env:
                continue
            ci = f"{r['success_iqm']:.0%} [{r['success_lo']:.0%}, {r['success_hi']:.0%}]"
            vs = difference_cell(r).split(" | ")[0]
            lines.append(
                f"{r['learner']:<13} {r['reward']:<17} {ci:<17} {vs:<15} "
                f"{r['soothing_index']:>6.2f}  {verdict_cell(r)}"
            )
    lines += ["", "The answer:"]
    lines += [line.replace("**", "") for line in summary["answer"]]
    if summary.get("unsettled"):
        lines += ["", "Not settled at this budget (a learning curve still climbing):"]
        lines += [line.replace("**", "") for line in summary["unsettled"]]
    lines += [
        "",
        f"{runs} runs in {elapsed / 60:.1f} min. The verdict rules, the per-need breakdown and "
        "every metric are in the report:",
        f"  report: {out / 'report.md'}",
    ]
    if summary.get("plots"):
        lines.append("  plots:  " + ", ".join(str(out / p) for p in summary["plots"]))
    lines.append(f"  data:   {out / 'runs.jsonl'} (and the CSVs beside it)")
    return "\n".join(lines)
