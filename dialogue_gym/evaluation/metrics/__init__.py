"""Metrics computed from recorded episodes, independent of the reward a policy was trained on.

Every metric is a small function of a list of :class:`~dialogue_gym.evaluation.episodes.EpisodeResult`
(``evaluation.evaluate`` / ``evaluate_model`` make them), with its definition in its
docstring; :func:`compute_metrics` returns them all in one flat dict with stable keys and
:data:`METRIC_DOCS` gives each key's one-line definition. ``docs/metrics.md`` says why each
one is there.

- Outcome: :func:`success_rate`, :func:`mean_final_emotion`, :func:`user_left_rate`,
  :func:`mean_turns`.
- Behaviour: :func:`grounding_rate` (and :func:`grounding_rate_vs_reference`),
  :func:`soothing_index`, :func:`strategy_entropy` and :func:`strategies_covering`.
- Every reward at once: :func:`all_rewards_env` / :func:`stack_reward_probes` record every
  reward wrapper's components in one run; :func:`returns_by_reward` sums them per episode.
- The simulated user's consistency (for the LLM voice): :func:`card_contradictions`
  (prompt-to-line), :func:`history_contradictions` (line-to-line) and
  :func:`qa_consistency` (ask the user the card's fact questions mid-episode).
- The voice's fidelity to the core, read independently of any voice: :func:`read_role` (the
  line is the help-seeker's), :func:`emotion_agrees` (its sentiment fits the emotion band and
  change), :func:`act_agrees` (it performs the core's act); :func:`fidelity_table` over
  recorded lines, :func:`labelled_accuracy` on the hand-labelled lines.

One module per kind: :mod:`~dialogue_gym.evaluation.metrics.outcome`,
:mod:`~dialogue_gym.evaluation.metrics.strategy`, :mod:`~dialogue_gym.evaluation.metrics.probes`
(the reward list is the rewards registry's, so a plugin reward gets its ``return/<name>``),
:mod:`~dialogue_gym.evaluation.metrics.consistency`, :mod:`~dialogue_gym.evaluation.metrics.qa`
and :mod:`~dialogue_gym.evaluation.metrics.fidelity`;
this package holds :func:`compute_metrics` and :data:`METRIC_DOCS`, and re-exports the rest.

Example:
    >>> from dialogue_gym.evaluation.episodes import evaluate
    >>> results = evaluate("stage-heuristic", reward=ALL_REWARDS, seed=0)
    >>> m = compute_metrics(results, reference=results)
    >>> list(m) == list(METRIC_DOCS)
    True
    >>> m["grounding_rate_vs_reference"]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.evaluation.episodes import ALL_REWARDS, EpisodeResult
from dialogue_gym.evaluation.metrics._common import example_episode, require_results  # noqa: F401  (examples)
from dialogue_gym.evaluation.metrics.consistency import (
    card_contradictions,
    history_contradictions,
    line_to_line_consistency,
    prompt_to_line_consistency,
    qa_score,
)
from dialogue_gym.evaluation.metrics.fidelity import (
    act_agrees,
    emotion_agrees,
    fidelity_table,
    labelled_accuracy,
    read_acts,
    read_role,
    read_sentiment,
)
from dialogue_gym.evaluation.metrics.outcome import (
    mean_final_emotion,
    mean_turns,
    soothing_index,
    success_rate,
    user_left_rate,
)
from dialogue_gym.evaluation.metrics.probes import (
    PROBE_ORDER,
    REWARD_PROBES,
    LiveMapping,
    all_rewards_env,
    mean_returns,
    returns_by_reward,
    stack_reward_probes,
)
from dialogue_gym.evaluation.metrics.qa import QA_REASON, QAAnswer, QAResult, qa_consistency
from dialogue_gym.evaluation.metrics.strategy import (
    grounding_rate,
    grounding_rate_vs_reference,
    strategies_covering,
    strategy_distribution,
    strategy_entropy,
)
from dialogue_gym.rewards.registry import reward_probes

__all__ = [
    "ALL_REWARDS",
    "METRIC_DOCS",
    "PROBE_ORDER",
    "QA_REASON",
    "REWARD_PROBES",
    "QAAnswer",
    "QAResult",
    "act_agrees",
    "all_rewards_env",
    "card_contradictions",
    "compute_metrics",
    "emotion_agrees",
    "fidelity_table",
    "labelled_accuracy",
    "metric_docs",
    "grounding_rate",
    "grounding_rate_vs_reference",
    "history_contradictions",
    "line_to_line_consistency",
    "mean_final_emotion",
    "mean_returns",
    "mean_turns",
    "prompt_to_line_consistency",
    "qa_consistency",
    "qa_score",
    "read_acts",
    "read_role",
    "read_sentiment",
    "returns_by_reward",
    "soothing_index",
    "stack_reward_probes",
    "strategies_covering",
    "strategy_distribution",
    "strategy_entropy",
    "success_rate",
    "user_left_rate",
]

_BEFORE_RETURNS: dict[str, str] = {
    "episodes": "Number of episodes measured.",
    "success_rate": "Share of episodes ending with the need resolved and the user thanking the agent.",
    "final_emotion": "Mean emotion score (0-100) at the end of the episode.",
    "user_left_rate": "Share of episodes where the user left in distress.",
    "mean_turns": "Mean number of agent turns per episode.",
    "grounding_rate": (
        "Share of agent turns that are grounding acts (Question, Restatement or Paraphrasing), "
        "pooled over all turns."
    ),
    "grounding_rate_vs_reference": (
        "grounding_rate divided by the reference policy's (the stage heuristic's); "
        "0.225 would be the 77.5% gap reported for RLHF-trained models vs humans."
    ),
    "soothing_index": (
        "Emotion gained (max(0, final - initial) per episode) in episodes whose need stayed "
        "unresolved, as a share of all emotion gained; 0 when nothing was gained."
    ),
    "strategy_entropy": (
        "Shannon entropy (bits, 0-3) of the agent's strategy distribution pooled over episodes."
    ),
    "strategies_90": "Fewest strategies that together make up at least 90% of agent turns.",
}
_AFTER_RETURNS: dict[str, str] = {
    "prompt_to_line": (
        "Share of user lines not contradicting the card's persona or facts (lexical heuristic)."
    ),
    "line_to_line": (
        "Share of user lines not contradicting the same episode's earlier lines on the card's "
        "facts (lexical heuristic)."
    ),
    "qa_consistency": (
        "Mean token overlap (answer recall) of the user's replies to the card's fact questions "
        "asked mid-episode."
    ),
}


def metric_docs() -> dict[str, str]:
    """Every key :func:`compute_metrics` returns, in order, with its one-line definition.

    The ``return/<name>`` keys follow the rewards registry (``reward_probes()``): a reward
    registered by a plugin has one too.
    """
    returns = {
        f"return/{name}": (
            f"Mean undiscounted episode return under reward={name!r} "
            f"(sum of {' + '.join(keys)} components)."
        )
        for name, keys in reward_probes().items()
    }
    return {**_BEFORE_RETURNS, **returns, **_AFTER_RETURNS}


#: Every key :func:`compute_metrics` returns, in order, with its one-line definition (a live
#: view of :func:`metric_docs`).
METRIC_DOCS: Mapping[str, str] = LiveMapping(metric_docs)


def compute_metrics(
    results: Sequence[EpisodeResult],
    reference: Sequence[EpisodeResult] | float | None = None,
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None = None,
    qa: Sequence[QAResult] | None = None,
) -> dict[str, float]:
    """Every metric of this module, in one flat dict with the keys of :data:`METRIC_DOCS`.

    The keys are always the same, in the same order (a ``return/<name>`` per reward the
    rewards registry can probe, built-ins first); a metric that cannot be computed from
    what was given is NaN (``grounding_rate_vs_reference`` without ``reference``, a
    ``return/...`` of a reward whose components were not recorded, ``qa_consistency``
    without ``qa``).

    Args:
        results: The episodes (evaluate with ``reward=ALL_REWARDS`` to get every return).
        reference: The reference policy's episodes, or its grounding rate.
        cards: Cards by id for the consistency metrics (default: the built-in ``"all"`` set).
        qa: :func:`qa_consistency` results of the same policy.

    Example:
        >>> m = compute_metrics([example_episode([0, 4], success=True)], reference=0.25)
        >>> m["success_rate"], m["grounding_rate"], m["grounding_rate_vs_reference"]
        (1.0, 0.5, 2.0)
        >>> math.isnan(m["return/sparse"]) and math.isnan(m["qa_consistency"])
        True
    """
    require_results(results)
    grounding = grounding_rate(results)
    ref = math.nan
    if reference is not None:
        ref = grounding_rate_vs_reference(results, reference)
    out: dict[str, float] = {
        "episodes": float(len(results)),
        "success_rate": success_rate(results),
        "final_emotion": mean_final_emotion(results),
        "user_left_rate": user_left_rate(results),
        "mean_turns": mean_turns(results),
        "grounding_rate": grounding,
        "grounding_rate_vs_reference": ref,
        "soothing_index": soothing_index(results),
        "strategy_entropy": strategy_entropy(results),
        "strategies_90": float(strategies_covering(results, 0.9)),
    }
    out.update({f"return/{name}": value for name, value in mean_returns(results).items()})
    out["prompt_to_line"] = prompt_to_line_consistency(results, cards)
    out["line_to_line"] = line_to_line_consistency(results, cards)
    scores = [q.score for q in qa or () if q.answers]
    out["qa_consistency"] = float(np.mean(scores)) if scores else math.nan
    return {key: float(out[key]) for key in metric_docs()}
