"""Measuring agents: playing episodes, the metrics, episode logs.

- :mod:`~dialogue_gym.evaluation.episodes`: run episodes of any policy, SB3 models included;
- :mod:`~dialogue_gym.evaluation.metrics`: outcome, strategy, reward-probe and consistency metrics;
- :mod:`~dialogue_gym.evaluation.episode_log`: JSONL episode logs.

The episode runners are re-exported here (``from dialogue_gym.evaluation import evaluate``).
"""

from dialogue_gym.evaluation.episodes import (
    ALL_REWARDS,
    AnyPolicy,
    EpisodeResult,
    ModelPolicy,
    TurnRecorder,
    evaluate,
    evaluate_model,
    format_table,
    make_eval_env,
    run_episode,
    summarize,
)

__all__ = [
    "ALL_REWARDS",
    "AnyPolicy",
    "EpisodeResult",
    "ModelPolicy",
    "TurnRecorder",
    "evaluate",
    "evaluate_model",
    "format_table",
    "make_eval_env",
    "run_episode",
    "summarize",
]
