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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.study import llm_level
from dialogue_gym.study.run import DEFAULT_ENV

#: How the report turns numbers into words (quoted in the report).
RULES = {
    "beats": "its success IQM interval lies wholly above the coarse bonus's",
    "reaches": "its interval overlaps the coarse bonus's (or lies above it), and both it and the "
    "coarse bonus learned (each interval's top is at least 25%)",
    "soothes": "it does not reach the coarse bonus and its soothing index is at least 0.5 (most "
    "of the emotion it gains comes from users whose need stayed unresolved)",
    "both fail": "the coarse bonus did not learn in this budget and neither did it",
    "inconclusive": "the coarse bonus did not learn in this budget; this reward did (its "
    "interval's top is at least 25%) but its interval still overlaps the bonus's: more seeds "
    "or budget would tell whether it beats it",
    "falls short": "its interval lies wholly below the coarse bonus's, without soothing",
    "faster": "its area under the learning curve (mean success over the evaluations) is at "
    "least 10% and at least 0.05 above the coarse bonus's (slower: below); when neither area "
    "reaches 0.05 (neither learned on the way) no speed is given",
    "unsettled": "its learning curve or the coarse bonus's has not flattened: the last "
    "evaluation is at least 5 points of success above the one before (mean over seeds), so "
    "more decisions may change the verdict",
    "dropped": "in a main setting, a learner whose area under the coarse bonus's learning curve "
    "is less than 5 points above the random policy's success on the same test episodes never "
    "learned the bonus in this budget: its rows are shown without verdicts",
}
SOOTHING_AT = 0.5
LEARNED_AT = 0.25
#: Learning areas closer than this (and every area below it) are "as fast" / not compared.
SPEED_FLOOR = 0.05
#: A learning curve has flattened when its last evaluation gained less than this over the one
#: before it (mean success over seeds, on the test cards).
FLAT_DELTA = 0.05
#: Per hidden need: success at or above this "solves"; below it, a soothing index at or above
#: SOOTHING_AT "soothes".
SOLVES_AT = 0.5
#: A learner learns the coarse bonus when the area under its sparse learning curve (mean
#: success over the evaluations and seeds) exceeds the random policy's success by at least this.
#: From the full study (12k decisions, 5 seeds; random 6%): A2C's area 0.03 and recurrent PPO's
#: 0.07 never left chance (final IQMs 0% and 1%), DQN's 0.25, PPO's 0.29 and hierarchical PPO's
#: 0.73 did; the quick study's PPO (0.23) and hierarchical PPO (0.71) pass with room.
LEARNS_MARGIN = 0.05


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
    cells: dict[tuple[str, str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        key = (rec.get("env", DEFAULT_ENV), rec["setting"], rec["learner"], rec["reward"])
        cells[key].append(rec)
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
        lo, hi = seed_band(curve)
        rows.append(
            {
                "env": key[0],
                "setting": key[1],
                "learner": key[2],
                "reward": key[3],
                "seeds": len(group),
                "success_iqm": success[name][0],
                "success_lo": success[name][1],
                "success_hi": success[name][2],
                "emotion_iqm": 100 * emotion[name][0],
                "emotion_lo": 100 * emotion[name][1],
                "emotion_hi": 100 * emotion[name][2],
                "curve_auc": float(curve.mean()),
                "curve": curve.mean(axis=0).tolist(),
                "curve_lo": lo,
                "curve_hi": hi,
                "curve_steps": [p["steps"] for p in group[0]["curve"]],
                "steps": group[0].get("steps", group[0]["curve"][-1]["steps"]),
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


def flattened(curve: Sequence[float]) -> bool | None:
    """Whether a learning curve (mean success per evaluation) has flattened (``FLAT_DELTA``).

    ``None`` with one evaluation only (nothing to compare).

    Example:
        >>> flattened([0.1, 0.5, 0.52]), flattened([0.1, 0.3, 0.5]), flattened([0.9])
        (True, False, None)
    """
    if len(curve) < 2:
        return None
    return bool(curve[-1] - curve[-2] < FLAT_DELTA)


def plateau(steps: Sequence[int], curve: Sequence[float]) -> int | None:
    """Where a learning curve (mean success per evaluation) reaches its plateau.

    The first evaluation that moved less than ``FLAT_DELTA`` from the one before (the
    :func:`flattened` rule, read both ways: a drop is no more flat than a climb) and from which
    every later evaluation stays within ``FLAT_DELTA`` of it; ``None`` if no evaluation does
    (still climbing, or swinging). docs/study.md#budgets-to-the-plateau measures each learner's.

    Example:
        >>> steps = [6000, 12000, 18000, 24000, 30000]
        >>> plateau(steps, [0.1, 0.6, 0.9, 0.91, 0.93]), plateau(steps, [0.1, 0.6, 0.9, 0.91, 0.99])
        (24000, None)
        >>> plateau(steps, [0.0, 0.4, 0.8, 0.5, 0.8]), plateau(steps, [0.0, 0.4, 0.8, 0.8, 0.5])
        (None, None)
    """
    for k in range(1, len(curve)):
        if abs(curve[k] - curve[k - 1]) < FLAT_DELTA and all(
            abs(later - curve[k]) < FLAT_DELTA for later in curve[k + 1 :]
        ):
            return int(steps[k])
    return None


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


def need_verdict(success: float, soothing: float | None) -> str:
    """``solves``, ``soothes`` or ``fails`` for one reward on one hidden need.

    Example:
        >>> need_verdict(0.9, 0.0), need_verdict(0.1, 0.8), need_verdict(0.1, 0.2)
        ('solves', 'soothes', 'fails')
    """
    if success >= SOLVES_AT:
        return "solves"
    if soothing is not None and soothing >= SOOTHING_AT:
        return "soothes"
    return "fails"


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


def learns_bonus(ref: dict[str, Any]) -> bool:
    """Whether a learner learned the coarse bonus: its sparse row's learning area is at least
    :data:`LEARNS_MARGIN` above the random policy's success (``chance_success``, 0 if absent).

    Example:
        >>> learns_bonus({"curve_auc": 0.03, "chance_success": 0.06})
        False
        >>> learns_bonus({"curve_auc": 0.25, "chance_success": 0.06})
        True
    """
    return ref["curve_auc"] >= ref.get("chance_success", 0.0) + LEARNS_MARGIN


def verdicts(rows: list[dict[str, Any]], main: str | None = None) -> None:
    """Add ``verdict`` and ``speed`` to each row by comparing it with the sparse row beside it.

    Args:
        rows: The aggregated rows (one per env, setting, learner and reward).
        main: The main setting: there a learner that never learned the coarse bonus
            (:func:`learns_bonus`) is dropped (``verdict`` ``"dropped"``, ``dropped`` true on
            each of its rows, the sparse one included) instead of getting "both fail" rows.
            In the sweep's settings, where one learner that can learn meets a harder
            simulator, "both fail" stays. None: nothing is dropped.
    """
    sparse = {
        (r.get("env", DEFAULT_ENV), r["setting"], r["learner"]): r
        for r in rows
        if r["reward"] == "sparse"
    }
    for row in rows:
        ref = sparse.get((row.get("env", DEFAULT_ENV), row["setting"], row["learner"]))
        dropped = ref is not None and row["setting"] == main and not learns_bonus(ref)
        row["dropped"] = dropped
        if dropped:
            row["verdict"] = "reference" if row is ref else "dropped"
            row["speed"], row["settled"] = "", None
            continue
        if ref is None or row is ref:
            row["verdict"], row["speed"] = ("reference", "") if row is ref else ("", "")
            continue
        learned = ref["success_hi"] >= LEARNED_AT
        if row["success_lo"] > ref["success_hi"]:
            row["verdict"] = "beats"
        elif learned and row["success_hi"] >= max(ref["success_lo"], LEARNED_AT):
            # A reward that learned nothing does not reach a bonus whose wide interval
            # touches zero: 0% [0, 0] against 17% [0, 37] is not a replacement.
            row["verdict"] = "reaches"
        elif row["soothing_index"] >= SOOTHING_AT:
            row["verdict"] = "soothes"
        elif not learned:
            row["verdict"] = "inconclusive" if row["success_hi"] >= LEARNED_AT else "both fail"
        else:
            row["verdict"] = "falls short"
        row["speed"] = speed(row["curve_auc"], ref["curve_auc"])
        # None: a curve of one evaluation cannot tell whether it flattened.
        known = row.get("flattened") is not None and ref.get("flattened") is not None
        row["settled"] = bool(row["flattened"] and ref["flattened"]) if known else None


def speed(auc: float, reference: float) -> str:
    """``faster``, ``slower``, ``as fast``, or ``""`` when neither learning area reaches
    ``SPEED_FLOOR`` (neither learned on the way: there is no speed to compare).

    Faster needs the area at least 10% *and* ``SPEED_FLOOR`` above the coarse bonus's.

    Example:
        >>> speed(0.0, 0.0), speed(0.04, 0.0), speed(0.5, 0.3), speed(0.30, 0.32), speed(0.1, 0.3)
        ('', '', 'faster', 'as fast', 'slower')
    """
    if max(auc, reference) < SPEED_FLOOR:
        return ""
    difference = auc - reference
    if difference >= SPEED_FLOOR and auc >= 1.1 * reference:
        return "faster"
    if -difference >= SPEED_FLOOR and auc <= 0.9 * reference:
        return "slower"
    return "as fast"


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
        verdict = verdict_cell(r)
        lines.append(
            f"| {r['learner']} | {r['reward']} | {_fmt_ci(r, 'success', True)} "
            f"| {_fmt_ci(r, 'emotion', False)} | {r['user_left_rate']:.0%} | {r['mean_turns']:.1f} "
            f"| {r['grounding_vs_heuristic']:.2f} | {r['soothing_index']:.2f} "
            f"| {r['strategy_entropy']:.2f} | {r['curve_auc']:.2f} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_cell(row: dict[str, Any]) -> str:
    """``reaches, faster``; ``(unsettled)`` added where a curve had not flattened.

    Example:
        >>> verdict_cell({"verdict": "soothes", "speed": "", "settled": False})
        'soothes (unsettled)'
    """
    if row.get("dropped"):
        return "dropped (bonus unlearned)"
    text = ", ".join(part for part in (row["verdict"], row.get("speed", "")) if part)
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
        for verdict in ("beats", "reaches", "inconclusive", "falls short", "soothes", "both fail"):
            names = [
                f"{r['reward']} ("
                + ", ".join(
                    part
                    for part in (
                        f"{r['success_iqm']:.0%}",
                        r.get("speed", ""),
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
            f"- **{learner}** — the coarse bonus reaches {ref['success_iqm']:.0%} "
            f"[{ref['success_lo']:.0%}, {ref['success_hi']:.0%}]."
        )
        if parts:
            line += " " + "; ".join(parts) + "."
        if costs:
            line += " Costs: " + "; ".join(costs) + "."
        out.append(line)  # (a study of the coarse bonus alone: its line, nothing compared)
    return out


def dropped_line(cell: list[dict[str, Any]], ref: dict[str, Any]) -> str:
    """The answer's line for a learner dropped from the verdicts (it never learned the bonus).

    Example:
        >>> ref = {"learner": "a2c", "reward": "sparse", "success_iqm": 0.0, "success_lo": 0.0,
        ...        "success_hi": 0.02, "curve_auc": 0.03, "chance_success": 0.06,
        ...        "curve_steps": [6000, 12000]}
        >>> other = {"learner": "a2c", "reward": "multi_turn", "success_iqm": 0.15}
        >>> print(dropped_line([ref, other], ref))
        - **a2c** — the coarse bonus reaches 0% [0%, 2%]: dropped from the verdicts, it never learned the coarse bonus in 12000 decisions (learning area 0.03, below the random policy's success 0.06 + 0.05). Without verdicts: multi_turn 15%.
    """
    steps = ref.get("curve_steps") or ["?"]
    others = ", ".join(f"{r['reward']} {r['success_iqm']:.0%}" for r in cell if r is not ref)
    return (
        f"- **{ref['learner']}** — the coarse bonus reaches {ref['success_iqm']:.0%} "
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
        yes = [s for s in settings if s in cells and cells[s]["verdict"] in ("reaches", "beats")]
        no = [
            f"{s} ({cells[s]['verdict']})"
            for s in settings
            if s in cells and cells[s]["verdict"] not in ("reaches", "beats", "dropped")
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
    verdicts(rows, main)
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
        f"{elapsed / 60:.1f} min on {machine()} ({args.workers} worker processes; "
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
        "Rules: " + "; ".join(f"*{k}*: {v}" for k, v in RULES.items()) + ".",
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
            "not reach the coarse bonus):",
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
    """The runs' budgets as the report's first line gives them: one number, or per learner.

    Example:
        >>> budgets_line([{"learner": "ppo", "steps": 8000}, {"learner": "hppo", "steps": 8000}])
        '8000 agent decisions each'
        >>> budgets_line([{"learner": "ppo", "steps": 40000}, {"learner": "hppo", "steps": 12000}])
        'agent decisions per learner: ppo 40000, hppo 12000'
    """
    budgets = {r["learner"]: r.get("steps") for r in records}
    if len(set(budgets.values())) <= 1:
        return f"{next(iter(budgets.values()), '?')} agent decisions each"
    return "agent decisions per learner: " + ", ".join(f"{k} {v}" for k, v in budgets.items())


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
    head = f"{'learner':<14} {'reward':<18} {'success IQM [95% CI]':<22} {'turns':>5} "
    head += f"{'soothe':>6}  verdict vs sparse"
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
            lines.append(
                f"{r['learner']:<14} {r['reward']:<18} {ci:<22} {r['mean_turns']:>5.1f} "
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
