"""What every metric module shares: the empty-input check and the examples' episode builder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dialogue_gym.evaluation.episodes import EpisodeResult


def require_results(results: Sequence[EpisodeResult]) -> None:
    if not results:
        raise ValueError("no episodes to measure")


def example_episode(strategies: Sequence[int], success: bool = False, **kw: Any) -> EpisodeResult:
    """A hand-built episode for the examples (only the strategies matter)."""
    base = dict(initial_emotion=30.0, final_emotion=40.0, episode_return=0.0, emotions=[])
    base.update(kw)
    return EpisodeResult(
        "c", "be_heard", success, False, turns=len(strategies), strategies=list(strategies), **base
    )
