"""The reward study's report in words: table cells, tables, the answer and its conditions.

Every function here turns aggregate rows (:mod:`~dialogue_gym.study.aggregate`, judged by
:mod:`~dialogue_gym.study.verdicts`) into Markdown; nothing here computes a statistic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dialogue_gym.study.verdicts import (
    LEARNS_MARGIN,
    REPLACES,
    need_verdict,
)


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
