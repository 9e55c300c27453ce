"""The study's verdicts: difference intervals against the coarse bonus and a declared margin.

Constructed records with known answers (no training): the rules of
:mod:`dialogue_gym.study.verdicts` on the intervals of :mod:`dialogue_gym.study.intervals`.
"""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest

from dialogue_gym.study import aggregate, intervals, report, resume, tables, verdicts
from dialogue_gym.study import run as study

NEEDS = ("a", "b", "c", "d", "e", "f")
CARDS_PER_NEED = 20


def _record(reward: str, seed: int, wins: list[int], learner: str = "ppo") -> dict:
    """A run whose success on each need's 20 test cards is ``wins[k] / 20``."""
    success, need = [], []
    for name, won in zip(NEEDS, wins, strict=True):
        success += [1.0] * won + [0.0] * (CARDS_PER_NEED - won)
        need += [name] * CARDS_PER_NEED
    rate = float(np.mean(success))
    return {
        "run": f"default__{reward}__{learner}__s{seed}",
        "env": "EmpathyDialogue-v0",
        "setting": "default",
        "reward": reward,
        "learner": learner,
        "seed": seed,
        "steps": 1000,
        "train_seconds": 1.0,
        "curve": [{"steps": 500, "success": rate}, {"steps": 1000, "success": rate}],
        "metrics": {"success_rate": rate, "soothing_index": 0.0},
        "card_success": success,
        "card_need": need,
        "card_final_emotion": [70.0 * s + 40.0 * (1 - s) for s in success],
        "emotion_trajectory": [40.0, 70.0],
        "sim": {},
    }


def _cell(reward: str, per_seed: list[int], learner: str = "ppo") -> list[dict]:
    """One record per seed; seed k wins ``per_seed[k]`` of the 20 cards of every need."""
    return [_record(reward, k, [w] * len(NEEDS), learner) for k, w in enumerate(per_seed)]


def _rows(records: list[dict], margin: float = 0.10, reps: int = 500) -> dict[str, dict]:
    rows = aggregate.aggregate(records, reps)
    for row in rows:
        row["grounding_vs_heuristic"] = 1.0
    verdicts.verdicts(rows, margin=margin)
    return {f"{r['learner']}/{r['reward']}": r for r in rows}


def test_five_points_below_with_tight_intervals_matches_at_10_and_falls_short_at_2():
    bonus = _cell("sparse", [16, 17] * 5)  # 80-85% on every seed
    close = _cell("next_turn", [15, 16] * 5)  # 5 points below it
    wide = _rows(bonus + close, margin=0.10)["ppo/next_turn"]
    assert -0.10 < wide["diff_lo"] <= wide["diff_iqm"] <= wide["diff_hi"] < -0.02
    assert wide["verdict"] == "matches"
    assert _rows(bonus + close, margin=0.02)["ppo/next_turn"]["verdict"] == "falls short"
    # And 30 points below falls short at 10, soothing where its soothing index says so.
    far = _cell("final_emotion", [10, 11] * 5)
    for rec in far:
        rec["metrics"]["soothing_index"] = 0.8
    assert _rows(bonus + far)["ppo/final_emotion"]["verdict"] == "soothes"


def test_overlapping_wide_intervals_are_inconclusive_with_a_power_estimate():
    # Three seeds each, split: the success intervals overlap widely.
    bonus = _cell("sparse", [18, 2, 16])
    reward = _cell("next_turn", [4, 14, 1])
    rows = _rows(bonus + reward)
    row, ref = rows["ppo/next_turn"], rows["ppo/sparse"]
    assert row["success_lo"] < ref["success_hi"] and ref["success_lo"] < row["success_hi"]
    assert row["diff_lo"] < -0.10 < row["diff_hi"]
    assert row["verdict"] == "inconclusive"
    assert row["seeds_needed"] is None or row["seeds_needed"] > 3
    assert row["split"] and ref["split"]  # fewer than 10 seeds, some learned and some not
    cell = tables.verdict_cell(row)
    assert cell.startswith("inconclusive") and "seeds" in cell and "(seeds split)" in cell
    # Not a replacement: the words say so.
    can, cannot = tables.conditions(list(rows.values()), "ppo")
    assert can == [] and cannot == ["`next_turn`: default (inconclusive)"]


def test_the_quick_studys_case_is_not_called_a_replacement():
    # The example: a reward at about 21% [0, 52] against a bonus at 53% [24, 78].
    bonus = _cell("sparse", [11, 16, 5])
    reward = _cell("potential_emotion", [0, 4, 9])
    rows = _rows(bonus + reward)
    assert rows["ppo/potential_emotion"]["verdict"] not in verdicts.REPLACES
    answer = " ".join(tables.answer(list(rows.values()), "default"))
    assert "**matches**" not in answer and "**beats**" not in answer


def test_beats_needs_the_whole_difference_interval_above_zero():
    rows = _rows(_cell("sparse", [10, 11] * 5) + _cell("multi_turn", [18, 19] * 5))
    assert rows["ppo/multi_turn"]["diff_lo"] > 0 and rows["ppo/multi_turn"]["verdict"] == "beats"
    assert rows["ppo/multi_turn"]["poi"] == 1.0


def test_adding_a_row_or_reordering_records_moves_no_other_rows_interval():
    base = _cell("sparse", [16, 3, 12, 18, 7]) + _cell("next_turn", [14, 15, 2, 19, 11])
    alone = {
        f"{r['reward']}": json.dumps(r, sort_keys=True) for r in aggregate.aggregate(base, 400)
    }
    more = base + _cell("multi_turn", [20, 1, 5, 9, 13]) + _cell("sparse", [4, 8], "a2c")
    random.Random(0).shuffle(more)
    grown = aggregate.aggregate(more, 400)
    for row in grown:
        if row["learner"] == "ppo" and row["reward"] in alone:
            assert json.dumps(row, sort_keys=True) == alone[row["reward"]]
    # Another seed set is another row: its interval is drawn afresh.
    fewer = [r for r in base if r["seed"] != 4]
    changed = {r["reward"]: r for r in aggregate.aggregate(fewer, 400)}
    assert changed["sparse"]["seeds"] == 4


def test_intervals_are_seeded_and_leave_numpy_global_state_alone():
    rng = np.random.default_rng(1)
    scores, reference = rng.random((3, 6)), rng.random((4, 6))
    np.random.seed(5)
    expected_next = np.random.random()
    np.random.seed(5)
    first = intervals.iqm_interval(scores, 300, seed=7)
    diff = intervals.difference_interval(scores, reference, 300, seed=7)
    poi = intervals.improvement_interval(scores, reference, 300, seed=7)
    assert np.random.random() == expected_next
    assert intervals.iqm_interval(scores, 300, seed=7) == first
    assert intervals.difference_interval(scores, reference, 300, seed=7) == diff
    for mid, lo, hi in (first, diff, poi):
        assert lo <= mid <= hi
    assert 0.0 <= poi[1] <= poi[2] <= 1.0


def test_the_margin_is_declared_checked_and_part_of_the_fingerprint():
    args = study.Args(rewards=("sparse",), learners=("ppo",), seeds=1)
    spec = study.plan(args)[0]
    default = study.run_fingerprint(spec, args)
    assert study.run_fingerprint(spec, dataclasses.replace(args, margin=10)) == default
    assert study.run_fingerprint(spec, dataclasses.replace(args, margin=5)) != default
    assert "margin" not in resume.NEUTRAL_FIELDS  # --resume refuses another margin
    for bad in (-1.0, 100.0, float("nan")):
        with pytest.raises(ValueError, match="study.margin = .*: must be a number of success"):
            study.check(dataclasses.replace(args, margin=bad, plots=False))
    assert "(δ = 5 points)" in verdicts.rules(0.05)["matches"]


def test_the_report_states_the_margin_and_the_per_seed_outcomes(tmp_path):
    records = _cell("sparse", [16, 17, 4]) + _cell("next_turn", [15, 16, 17])
    args = study.Args(
        rewards=("sparse", "next_turn"), learners=("ppo",), seeds=3, plots=False, margin=5.0
    )
    args = dataclasses.replace(args, bootstrap_reps=200)
    baselines = [
        {
            "env": "EmpathyDialogue-v0",
            "setting": "default",
            "policy": name,
            "metrics": {
                "success_rate": 0.1,
                "final_emotion": 40.0,
                "user_left_rate": 0.0,
                "mean_turns": 9.0,
                "grounding_rate": 0.5,
                "soothing_index": 0.0,
            },
            "emotion_trajectory": [40.0, 40.0],
        }
        for name in ("random", "stage-heuristic")
    ]
    for rec in records:
        rec["metrics"] |= {
            "user_left_rate": 0.0,
            "mean_turns": 8.0,
            "grounding_rate": 0.5,
            "strategy_entropy": 1.0,
        }
    report.write(tmp_path, records, baselines, args, 1.0, "dialogue-gym study --margin 5")
    text = (tmp_path / "report.md").read_text()
    assert "δ = 5 success points, declared before the study ran" in text
    assert "80 85 20 (2/3 learned)" in text  # the bonus's seeds, one of them did not learn
    assert "| P(better than sparse) [95% CI] |" in text
