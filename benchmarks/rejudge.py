"""Re-judge a study kept only as CSVs (``runs.csv`` + ``aggregate.csv``) under today's verdicts.

The full study of 2026-11-30 kept its aggregates and each run's success, not the per-card
records the study's stratified bootstrap needs (``runs.jsonl``), so its report cannot be
rebuilt with ``--report-only``. This script judges each of its rows by the rules of
:mod:`dialogue_gym.study.verdicts` on a coarser estimator: each run is one score (its success
over the test cards, not six per-need scores), the IQM difference against the coarse bonus and
its 95% bootstrap interval resampled over runs only. The old row's other fields (success
interval, soothing index, learning area, flattening, the random policy's success) are read as
they were. It prints, and writes beside the CSVs as ``rejudged.md``, every row's old and new
verdict::

    python benchmarks/rejudge.py docs/results/full --margin 10
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from dialogue_gym.study import tables
from dialogue_gym.study.intervals import difference_interval, identity_seed, improvement_interval
from dialogue_gym.study.verdicts import LEARNED_AT, verdicts


def _number(text: str) -> float | bool | None | str:
    if text in ("True", "False"):
        return text == "True"
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def rejudge(folder: Path, margin: float, reps: int) -> list[dict]:
    """The rows of ``folder/aggregate.csv`` with their old and new verdicts."""
    with (folder / "runs.csv").open(encoding="utf-8") as f:
        runs = list(csv.DictReader(f))
    with (folder / "aggregate.csv").open(encoding="utf-8") as f:
        rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
    cells: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
    for run in runs:
        key = (run["env"], run["setting"], run["learner"], run["reward"])
        cells[key].append((int(run["seed"]), float(run["success_rate"])))
    scores = {k: np.array([[s] for _, s in sorted(v)]) for k, v in cells.items()}
    main = rows[0]["setting"]
    for row in rows:
        key = (row["env"], row["setting"], row["learner"], row["reward"])
        row["old_verdict"], row["old_speed"] = row["verdict"], row["speed"] or ""
        row["seed_success"] = [s for _, s in sorted(cells[key])]
        row["seeds_learned"] = sum(s >= LEARNED_AT for s in row["seed_success"])
        ref = (*key[:3], "sparse")
        if row["reward"] != "sparse":
            seed = identity_seed("rejudge", key, ref)
            diff = difference_interval(scores[key], scores[ref], reps, seed)
            poi = improvement_interval(scores[key], scores[ref], reps, seed)
            row |= dict(zip(("diff_iqm", "diff_lo", "diff_hi"), diff, strict=True))
            row |= dict(zip(("poi", "poi_lo", "poi_hi"), poi, strict=True))
    verdicts(rows, main, margin)
    return rows


def table(rows: list[dict], only: list[dict] | None = None) -> str:
    """The judged rows (or ``only`` these) as Markdown: success, seeds, difference, verdicts."""
    lines = [
        "| user | setting | learner | reward | success IQM (old) | per seed, % | difference, "
        "points [95% CI] | old verdict | new verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["reward"] == "sparse" or r.get("dropped") or (only is not None and r not in only):
            continue
        diff = tables.difference_words(r) if "diff_iqm" in r else ""
        old = r["old_verdict"] + (f", {r['old_speed']}" if r["old_speed"] else "")
        lines.append(
            f"| {r['env']} | {r['setting']} | {r['learner']} | {r['reward']} "
            f"| {r['success_iqm']:.0%} | {tables.seeds_cell(r)} | {diff} | {old} "
            f"| {tables.verdict_cell(r)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--margin", type=float, default=10.0, help="δ in success points")
    parser.add_argument("--reps", type=int, default=2000)
    args = parser.parse_args()
    rows = rejudge(args.folder, args.margin / 100, args.reps)
    judged = [r for r in rows if r["reward"] != "sparse" and not r.get("dropped")]
    # "reaches" was the old name of a replacement: unchanged where it is now "matches".
    changed = [
        r
        for r in judged
        if {"reaches": "matches"}.get(r["old_verdict"], r["old_verdict"]) != r["verdict"]
    ]
    text = "\n".join(
        [
            f"# {args.folder.name}: re-judged from runs.csv (margin {args.margin:g} points)",
            "",
            "Each run scored once (its success over the test cards); the difference's interval "
            f"is a bootstrap over runs ({args.reps} resamples). {len(changed)} of "
            f"{len(judged)} judged rows "
            "changed verdict ('reaches' is now 'matches' only where the difference clears -δ).",
            "",
            "## The rows whose verdict changed",
            "",
            table(rows, changed),
            "",
            "## Every judged row",
            "",
            table(rows),
        ]
    )
    (args.folder / "rejudged.md").write_text(text + "\n", encoding="utf-8")
    (args.folder / "rejudged.json").write_text(
        json.dumps(
            [
                {k: r.get(k) for k in ("env", "setting", "learner", "reward", "old_verdict")}
                | {"verdict": r["verdict"], "diff": [r.get("diff_lo"), r.get("diff_hi")]}
                for r in rows
                if r["reward"] != "sparse"
            ],
            indent=1,
        )
    )
    print(text)


if __name__ == "__main__":
    main()
