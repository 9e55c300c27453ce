"""The reward study's aggregates: a row per learner, reward, setting and user, with intervals.

Aggregates follow Agarwal et al. (2021, the ``rliable`` library): a run's score on a *task* is
its success rate on the test cards of one hidden need (six tasks); the interquartile mean
(IQM) pools runs x tasks, and its 95% interval is a stratified bootstrap over runs within each
task (:mod:`~dialogue_gym.study.intervals`, each row on a generator of its own). A row also
carries its difference from the coarse bonus, per-need and per-problem breakdowns, the seed
band of its learning curve and the reference policies' scores beside it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from dialogue_gym.study.intervals import (
    difference_interval,
    identity_seed,
    improvement_interval,
    iqm_interval,
    task_scores,
)
from dialogue_gym.study.settings import DEFAULT_ENV
from dialogue_gym.study.verdicts import (
    flattened,
    learned_seeds,
    plateau,
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
