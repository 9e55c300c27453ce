"""How the study turns intervals into words: each reward's verdict against the coarse bonus.

A reward is judged against the coarse bonus (``sparse``) of the same learner, setting and
user by the 95% interval of the **difference** of their success IQMs
(:func:`~dialogue_gym.study.intervals.difference_interval`) and a non-inferiority margin δ
declared before the study ran (``--margin``, recorded in ``args.json``, in every run's
fingerprint when it is not the default, and in the report):

- **beats**: the interval lies wholly above 0;
- **matches**: it lies wholly above -δ: the reward replaces the bonus to within δ;
- **falls short**: it lies wholly below -δ (**soothes** when its soothing index says the
  emotion it gains comes from users whose need stayed unmet);
- **inconclusive**: it straddles -δ; the report gives a power estimate of the seeds needed.

Only *beats* and *matches* let the report say a reward "can replace" the bonus. Overlapping
intervals are absence of evidence of a difference, not evidence of equivalence: a reward at
21% [0, 52] beside a bonus at 53% [24, 78] is inconclusive, not a replacement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dialogue_gym.study.intervals import seeds_needed

#: The non-inferiority margin δ (success points, as a fraction) unless ``--margin`` declares one.
DEFAULT_MARGIN = 0.10
SOOTHING_AT = 0.5
#: A run (one seed) *learned* when its final success reaches this; a row whose interval top
#: stays below it on both sides is "both fail".
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
#: Where a row's seeds split (some learned, some did not), fewer seeds than this mark its
#: verdict "(seeds split)": an IQM over few seeds trims away the minority outcome.
SPLIT_SEEDS = 10


def rules(margin: float = DEFAULT_MARGIN) -> dict[str, str]:
    """How the report turns numbers into words, with the declared margin (quoted in it).

    Example:
        >>> "(δ = 5 points)" in rules(0.05)["matches"]
        True
    """
    points = f"{100 * margin:g}"
    return {
        "beats": "the 95% interval of its success IQM minus the coarse bonus's (stratified "
        "bootstrap over runs x hidden needs, each side resampled on its own) lies wholly "
        "above 0",
        "matches": "the 95% interval of its success IQM minus the coarse bonus's lies wholly "
        f"above -δ, the margin declared before the study ran (δ = {points} points): it "
        "replaces the bonus to within δ",
        "falls short": f"that interval lies wholly below -δ ({points} points), without soothing",
        "soothes": "it falls short (or neither it nor the bonus learned) and its soothing index "
        f"is at least {SOOTHING_AT} (most of the emotion it gains comes from users whose need "
        "stayed unresolved)",
        "inconclusive": f"that interval straddles -δ ({points} points): more seeds or budget "
        "would tell; the seeds a power estimate suggests are given (assuming the difference "
        "stays and the interval narrows as 1/sqrt(seeds))",
        "both fail": "neither the coarse bonus nor it learned (each success interval's top is "
        f"below {LEARNED_AT:.0%})",
        "faster": "its area under the learning curve (mean success over the evaluations) is at "
        "least 10% and at least 0.05 above the coarse bonus's (slower: below); when neither "
        "area reaches 0.05 (neither learned on the way) no speed is given",
        "unsettled": "its learning curve or the coarse bonus's has not flattened: the last "
        f"evaluation is at least {FLAT_DELTA:.0%} of success above the one before (mean over "
        "seeds), so more decisions may change the verdict",
        "seeds split": f"its seeds or the coarse bonus's split (some reach {LEARNED_AT:.0%} "
        f"success, some do not) with fewer than {SPLIT_SEEDS} seeds: an IQM over few seeds "
        "trims the minority away, so the verdict rests on which seeds were drawn",
        "dropped": "in a main setting, a learner whose area under the coarse bonus's learning "
        "curve is less than 5 points above the random policy's success on the same test "
        "episodes never learned the bonus in this budget: its rows are shown without verdicts",
    }


#: The rules at the default margin (:func:`rules` gives them at another).
RULES = rules()
#: The verdicts under which the report says a reward can replace the coarse bonus.
REPLACES = ("beats", "matches")


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


def seeds_split(row: dict[str, Any]) -> bool:
    """Whether some of a row's seeds learned (final success at least ``LEARNED_AT``) and some
    did not (``seed_success``: each seed's final success; absent: not known, not split).

    Example:
        >>> seeds_split({"seed_success": [0.0, 0.82, 0.0]}), seeds_split({"seed_success": [0.9]})
        (True, False)
    """
    each = row.get("seed_success", ())
    return 0 < learned_seeds(each) < len(each)


def learned_seeds(seed_success: Sequence[float]) -> int:
    """How many seeds learned: final success at least ``LEARNED_AT``.

    Example:
        >>> learned_seeds([0.0, 0.82, 0.25])
        2
    """
    return sum(s >= LEARNED_AT for s in seed_success)


def judge(row: dict[str, Any], ref: dict[str, Any], margin: float) -> str:
    """One row's verdict against its coarse bonus ``ref`` (the rules of :func:`rules`).

    ``row`` holds its success interval (``success_hi``), its ``soothing_index`` and the
    difference interval (``diff_lo``, ``diff_hi``); ``ref`` its success interval.

    Example:
        >>> ref = {"success_hi": 0.6}
        >>> row = {"success_hi": 0.6, "soothing_index": 0.0, "diff_lo": -0.08, "diff_hi": -0.03}
        >>> judge(row, ref, 0.10), judge(row, ref, 0.02)
        ('matches', 'falls short')
        >>> judge(row | {"diff_lo": -0.3, "diff_hi": 0.2}, ref, 0.10)
        'inconclusive'
    """
    soothes = row["soothing_index"] >= SOOTHING_AT
    if ref["success_hi"] < LEARNED_AT and row["success_hi"] < LEARNED_AT:
        # Both at the floor: a difference near 0 would read "matches" a bonus nobody learned.
        return "soothes" if soothes else "both fail"
    if row["diff_lo"] > 0:
        return "beats"
    if row["diff_lo"] > -margin:
        return "matches"
    if row["diff_hi"] < -margin:
        return "soothes" if soothes else "falls short"
    return "inconclusive"


def verdicts(
    rows: list[dict[str, Any]], main: str | None = None, margin: float = DEFAULT_MARGIN
) -> None:
    """Add ``verdict``, ``speed``, ``settled``, ``split`` (and, where inconclusive,
    ``seeds_needed``) to each row by comparing it with the sparse row beside it.

    Args:
        rows: The aggregated rows (one per env, setting, learner and reward), each non-sparse
            row with its difference interval against the sparse row (``diff_lo``/``diff_hi``).
        main: The main setting: there a learner that never learned the coarse bonus
            (:func:`learns_bonus`) is dropped (``verdict`` ``"dropped"``, ``dropped`` true on
            each of its rows, the sparse one included) instead of getting "both fail" rows.
            In the sweep's settings, where one learner that can learn meets a harder
            simulator, "both fail" stays. None: nothing is dropped.
        margin: The non-inferiority margin δ (a fraction of success).
    """
    sparse = {
        (r.get("env", ""), r["setting"], r["learner"]): r for r in rows if r["reward"] == "sparse"
    }
    for row in rows:
        ref = sparse.get((row.get("env", ""), row["setting"], row["learner"]))
        dropped = ref is not None and row["setting"] == main and not learns_bonus(ref)
        row["dropped"] = dropped
        row["split"] = False
        if dropped:
            row["verdict"] = "reference" if row is ref else "dropped"
            row["speed"], row["settled"] = "", None
            continue
        if ref is None or row is ref:
            row["verdict"], row["speed"] = ("reference", "") if row is ref else ("", "")
            row["split"] = row is ref and seeds_split(row) and row.get("seeds", 0) < SPLIT_SEEDS
            continue
        row["verdict"] = judge(row, ref, margin)
        if row["verdict"] == "inconclusive":
            row["seeds_needed"] = seeds_needed(
                min(row.get("seeds", 1), ref.get("seeds", 1)),
                row["diff_iqm"],
                row["diff_lo"],
                row["diff_hi"],
                margin,
            )
        few = min(row.get("seeds", 0), ref.get("seeds", 0)) < SPLIT_SEEDS
        row["split"] = few and (seeds_split(row) or seeds_split(ref))
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
