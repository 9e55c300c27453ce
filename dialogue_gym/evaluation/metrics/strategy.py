"""Strategy metrics: what the agent did, turn by turn (grounding, diversity, collapse).

Example:
    >>> strategy_entropy([example_episode([0, 1, 2, 3])]), grounding_rate([example_episode([0, 4])])
    (2.0, 0.5)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from dialogue_gym.core.vocabulary import GROUNDING_ACTS, STRATEGIES
from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.evaluation.metrics._common import example_episode, require_results  # noqa: F401  (examples)

__all__ = [
    "grounding_rate",
    "grounding_rate_vs_reference",
    "strategies_covering",
    "strategy_distribution",
    "strategy_entropy",
]


def grounding_rate(results: Sequence[EpisodeResult]) -> float:
    """Share of agent turns that are grounding acts, pooled over every turn of every episode.

    Grounding acts are ``core.vocabulary.GROUNDING_ACTS``: Question and Restatement or
    Paraphrasing (ESConv's strategies for clarifying questions, follow-ups and
    understanding checks; Shaikh et al., 2024). Pooled (grounding turns / all turns), so a
    long episode weighs more than a short one. NaN when there are no turns at all.

    Example:
        >>> grounding_rate([example_episode([0, 1, 4, 5]), example_episode([0, 4, 4, 4])])  # 3 of 8 turns
        0.375
    """
    require_results(results)
    turns = sum(len(r.strategies) for r in results)
    if turns == 0:
        return math.nan
    grounding = sum(1 for r in results for s in r.strategies if s in GROUNDING_ACTS)
    return grounding / turns


def grounding_rate_vs_reference(
    results: Sequence[EpisodeResult], reference: Sequence[EpisodeResult] | float
) -> float:
    """:func:`grounding_rate` divided by a reference policy's (the stage heuristic's).

    1.0 grounds as often as the reference; 0.225 would be the anchor's gap, RLHF-trained
    models producing grounding acts 77.5% less often than humans (Shaikh et al., 2024; here
    the stage heuristic stands in for the human supporter). NaN when the reference never
    grounds.

    Args:
        results: The policy's episodes.
        reference: The reference's episodes, or its rate.

    Example:
        >>> grounding_rate_vs_reference([example_episode([0, 4, 4, 4])], reference=0.5)
        0.5
    """
    ref = reference if isinstance(reference, float | int) else grounding_rate(reference)
    return grounding_rate(results) / ref if ref else math.nan


def strategy_distribution(results: Sequence[EpisodeResult]) -> np.ndarray:
    """How often each strategy was played, pooled over episodes, as shares (``STRATEGIES`` order).

    Example:
        >>> strategy_distribution([example_episode([0, 0, 4, 4])]).tolist()
        [0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]
    """
    require_results(results)
    played = np.asarray([int(s) for r in results for s in r.strategies], dtype=np.int64)
    counts = np.bincount(played, minlength=len(STRATEGIES)).astype(float)
    total = counts.sum()
    return counts / total if total else counts


def strategy_entropy(results: Sequence[EpisodeResult]) -> float:
    """Shannon entropy, in bits, of the agent's strategy distribution pooled over episodes.

    ``H = -sum_s p_s log2 p_s`` with ``p_s`` the share of all agent turns that played
    strategy ``s``. 0 for a policy that always plays one strategy, 3 (``log2 8``) for one that
    plays all eight equally. PPDPP collapses onto one or two strategies (a reported entropy of
    0.07, unit unstated). 0.0 when there are no turns.

    Example:
        >>> strategy_entropy([example_episode([0, 1, 2, 3])])
        2.0
        >>> strategy_entropy([example_episode([4, 4, 4])])
        0.0
    """
    p = strategy_distribution(results)
    p = p[p > 0]
    return float(0.0 - (p * np.log2(p)).sum()) if p.size else 0.0  # 0.0, not -0.0


def strategies_covering(results: Sequence[EpisodeResult], share: float = 0.9) -> int:
    """The fewest strategies that together account for at least ``share`` of all agent turns.

    Strategies are counted over every turn of every episode and taken most frequent first.
    1 means a single strategy makes up 90% of the turns (collapse); 0 when there are no turns.

    Example:
        >>> strategies_covering([example_episode([4] * 8 + [0, 1])])  # 80% + 10%
        2
        >>> strategies_covering([example_episode([4] * 9 + [0])])
        1
    """
    require_results(results)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    counts = sorted(Counter(int(s) for r in results for s in r.strategies).values(), reverse=True)
    total = sum(counts)
    covered = 0
    for k, count in enumerate(counts, start=1):
        covered += count
        if covered >= share * total - 1e-9 * total:  # 9 of 10 turns is exactly 90%
            return k
    return len(counts)
