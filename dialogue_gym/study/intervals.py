"""Interval estimates for the study (``rliable``'s stratified bootstrap), one generator per row.

A run's score on a *task* is its success rate on the test cards of one hidden need; a row (one
learner, reward, setting and user) pools its runs x tasks. Following Agarwal et al. (2021):

- :func:`iqm_interval`: the interquartile mean (IQM) with a 95% stratified-bootstrap interval
  (runs resampled within each task);
- :func:`difference_interval`: IQM(row) - IQM(reference), each side resampled independently
  within its tasks (rliable's ``StratifiedIndependentBootstrap``);
- :func:`improvement_interval`: rliable's probability of improvement P(row > reference), with
  its interval.

**Every interval depends only on its own runs.** rliable draws its resamples from numpy's
global generator whatever ``random_state`` it is given, so each estimate seeds that generator
from the identity of what it estimates (:func:`identity_seed`: the learner, reward, setting,
user and seed set) and gives the caller's state back afterwards: adding a row to a study, or
estimating rows in another order, leaves every other row's interval byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


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


def identity_seed(*identity: Any) -> int:
    """A bootstrap seed from what is estimated (JSON-able parts), stable across runs and
    machines (a hash, not Python's salted ``hash``).

    Example:
        >>> identity_seed("ppo", "sparse", [0, 1, 2]) == identity_seed("ppo", "sparse", [0, 1, 2])
        True
        >>> identity_seed("ppo", "sparse", [0, 1, 2]) == identity_seed("ppo", "sparse", [0, 1])
        False
    """
    text = json.dumps(identity, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _iqm(scores: np.ndarray) -> float:
    from rliable import metrics as rm

    return float(rm.aggregate_iqm(scores))


def _estimate(
    scores: np.ndarray | tuple[np.ndarray, ...],
    func: Callable[..., np.ndarray],
    reps: int,
    seed: int,
) -> tuple[float, float, float]:
    """rliable's point estimate and 95% percentile interval of ``func``, on a generator of
    its own (``seed``); numpy's global state is given back afterwards."""
    from rliable import library as rly

    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch's RandomState deprecation
            point, interval = rly.get_interval_estimates(
                {"x": scores}, func, reps=reps, random_state=np.random.RandomState(seed)
            )
    finally:
        np.random.set_state(saved)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def iqm_interval(scores: np.ndarray, reps: int, seed: int) -> tuple[float, float, float]:
    """IQM of runs x tasks ``scores`` and its 95% stratified-bootstrap interval.

    Example:
        >>> scores = np.array([[0.9, 0.8], [0.7, 1.0], [0.8, 0.9]])
        >>> mid, lo, hi = iqm_interval(scores, reps=200, seed=1)
        >>> lo <= mid <= hi and iqm_interval(scores, reps=200, seed=1) == (mid, lo, hi)
        True
    """
    return _estimate(scores, lambda x: np.array([_iqm(x)]), reps, seed)


def difference_interval(
    scores: np.ndarray, reference: np.ndarray, reps: int, seed: int
) -> tuple[float, float, float]:
    """IQM(``scores``) - IQM(``reference``) and its 95% interval; each side's runs are
    resampled independently within each task (the two sides may have different run counts).

    Example:
        >>> a = np.array([[0.9, 0.8], [0.7, 1.0], [0.8, 0.9]])
        >>> mid, lo, hi = difference_interval(a, a - 0.5, reps=200, seed=1)
        >>> round(mid, 2), lo > 0
        (0.5, True)
    """
    return _estimate((scores, reference), lambda x, y: np.array([_iqm(x) - _iqm(y)]), reps, seed)


def improvement_interval(
    scores: np.ndarray, reference: np.ndarray, reps: int, seed: int
) -> tuple[float, float, float]:
    """rliable's probability of improvement P(``scores`` > ``reference``) (Mann-Whitney U per
    task over the pairs of runs, ties counting half, averaged over tasks) and its 95%
    percentile interval.

    The point is rliable's ``probability_of_improvement``; the interval resamples each side's
    runs within each task on its own (the stratified independent bootstrap rliable uses),
    vectorised: rliable's loop calls SciPy's Mann-Whitney test once per task and resample,
    five seconds a row at 2,000 resamples.

    Example:
        >>> a = np.array([[0.9, 0.8], [0.7, 1.0], [0.8, 0.9]])
        >>> improvement_interval(a, a - 0.5, reps=100, seed=1)
        (1.0, 1.0, 1.0)
        >>> mid, lo, hi = improvement_interval(a, a, reps=500, seed=1)
        >>> mid, lo < 0.5 < hi
        (0.5, True)
    """
    from rliable import metrics as rm

    point = float(rm.probability_of_improvement(scores, reference))
    rng = np.random.default_rng(seed)
    (nx, tasks), ny = scores.shape, len(reference)
    x = np.take_along_axis(scores[None], rng.integers(nx, size=(reps, nx, tasks)), axis=1)
    y = np.take_along_axis(reference[None], rng.integers(ny, size=(reps, ny, tasks)), axis=1)
    pairs_x, pairs_y = x[:, :, None, :], y[:, None, :, :]  # reps x nx x ny x tasks
    per_task = (pairs_x > pairs_y).mean(axis=(1, 2)) + 0.5 * (pairs_x == pairs_y).mean(axis=(1, 2))
    lo, hi = np.percentile(per_task.mean(axis=1), [2.5, 97.5])
    return point, float(lo), float(hi)


#: The most seeds :func:`seeds_needed` suggests; beyond it the report says "more than".
MAX_SEEDS = 100


def seeds_needed(seeds: int, difference: float, lo: float, hi: float, margin: float) -> int | None:
    """A power estimate: the seeds per row at which the difference interval would clear the
    margin's line ``-margin``, if the point estimate stayed and the interval narrowed as
    1/sqrt(seeds). ``None`` when the point sits on the line (more than :data:`MAX_SEEDS`).

    A rough guide for an inconclusive row, stated as such in the report: split seeds
    (some learn, some do not) make the interval shrink more slowly than this.

    Example:
        >>> seeds_needed(5, -0.05, -0.20, 0.10, margin=0.10)   # half-width 0.15, gap 0.05
        45
        >>> seeds_needed(3, -0.10, -0.30, 0.10, margin=0.10) is None
        True
    """
    gap = abs(difference + margin)
    half = (hi - lo) / 2
    if gap <= 1e-9:
        return None
    needed = math.ceil(round(seeds * (half / gap) ** 2, 6))  # 45.0000001 is 45
    return needed if needed <= MAX_SEEDS else None
