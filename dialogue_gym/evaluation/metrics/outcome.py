"""Outcome metrics: how the conversations ended.

Example:
    >>> ok = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
    >>> success_rate([ok]), mean_turns([ok])
    (1.0, 5.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.evaluation.metrics._common import example_episode, require_results  # noqa: F401  (examples)

__all__ = ["mean_final_emotion", "mean_turns", "soothing_index", "success_rate", "user_left_rate"]


def success_rate(results: Sequence[EpisodeResult]) -> float:
    """Share of episodes that ended in success: the need resolved and the user thanking the agent.

    Example:
        >>> ok = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> bad = EpisodeResult("c", "be_heard", False, True, 30.0, 0.0, 3, [], [], 0.0)
        >>> success_rate([ok, bad, bad, bad])
        0.25
    """
    require_results(results)
    return float(np.mean([r.success for r in results]))


def mean_final_emotion(results: Sequence[EpisodeResult]) -> float:
    """Mean emotion score (0-100) at the episode's end.

    Example:
        >>> a = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> b = EpisodeResult("c", "be_heard", False, False, 30.0, 40.0, 10, [], [], 0.0)
        >>> mean_final_emotion([a, b])
        57.5
    """
    require_results(results)
    return float(np.mean([r.final_emotion for r in results]))


def user_left_rate(results: Sequence[EpisodeResult]) -> float:
    """Share of episodes where the user left in distress (emotion fell to the leave threshold).

    Example:
        >>> ok = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> left = EpisodeResult("c", "be_heard", False, True, 30.0, 0.0, 3, [], [], 0.0)
        >>> user_left_rate([ok, left, left])
        0.6666666666666666
    """
    require_results(results)
    return float(np.mean([r.user_left for r in results]))


def mean_turns(results: Sequence[EpisodeResult]) -> float:
    """Mean number of agent turns per episode.

    Example:
        >>> a = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 4, [], [], 1.0)
        >>> b = EpisodeResult("c", "be_heard", False, False, 30.0, 40.0, 10, [], [], 0.0)
        >>> mean_turns([a, b])
        7.0
    """
    require_results(results)
    return float(np.mean([r.turns for r in results]))


def soothing_index(results: Sequence[EpisodeResult]) -> float:
    """The share of all emotion gained that was gained in episodes whose need stayed unresolved.

    Gain per episode is ``max(0, final - initial)`` emotion points (an episode that lost
    emotion gains 0). The index is ``sum(gain over episodes with the need unresolved) /
    sum(gain over all episodes)``; "resolved" is :attr:`EpisodeResult.need_resolved`. 0 means
    every point of improvement came with the need met; 1 means all of it was comfort that
    left the problem untouched (soothing, RLVER's failure mode). When no episode gained
    anything the index is 0.0: no emotion was gained, so none was gained by soothing (0, not
    NaN, so aggregates over seeds stay defined).

    Example:
        >>> resolved = example_episode([5], success=True, initial_emotion=50.0, final_emotion=70.0)
        >>> soothed = example_episode([4], initial_emotion=30.0, final_emotion=60.0)
        >>> worse = example_episode([5], initial_emotion=30.0, final_emotion=20.0)
        >>> soothing_index([resolved, soothed, worse])  # 30 of 50 points
        0.6
        >>> soothing_index([worse])
        0.0
    """
    require_results(results)
    gains = [max(0.0, r.final_emotion - r.initial_emotion) for r in results]
    total = sum(gains)
    if total <= 0.0:
        return 0.0
    unresolved = sum(g for g, r in zip(gains, results, strict=True) if not r.need_resolved)
    return unresolved / total
