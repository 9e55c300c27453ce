"""Run policies over scenario cards and summarise what happened."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.agents import Policy, make_policy


@dataclass
class EpisodeResult:
    """One conversation, reduced to what the metrics need.

    Attributes:
        card_id: The scenario card.
        need: The hidden need.
        success: The need was resolved and the user left satisfied.
        user_left: The user left in distress.
        initial_emotion: Emotion at the start.
        final_emotion: Emotion at the end.
        turns: Agent turns taken.
        strategies: The agent's strategy indices, in order.
        emotions: Emotion after the opening and after each turn.
        episode_return: Sum of the env's rewards.
        messages: The chat, if kept.
    """

    card_id: str
    need: str
    success: bool
    user_left: bool
    initial_emotion: float
    final_emotion: float
    turns: int
    strategies: list[int]
    emotions: list[float]
    episode_return: float
    messages: list[dict[str, Any]] = field(default_factory=list)


def run_episode(
    env: gym.Env,
    policy: Policy,
    seed: int | None = None,
    card: str | int | None = None,
    keep_messages: bool = False,
) -> EpisodeResult:
    """Play one episode of ``policy`` in ``env`` and record it."""
    options = {"card": card} if card is not None else None
    obs, info = env.reset(seed=seed, options=options)
    policy.reset(seed=seed)
    emotions = [info["emotion"]]
    strategies: list[int] = []
    total = 0.0
    done = False
    while not done:
        action = int(policy(obs))
        obs, reward, terminated, truncated, info = env.step(action)
        strategies.append(action)
        emotions.append(info["emotion"])
        total += float(reward)
        done = terminated or truncated
    return EpisodeResult(
        card_id=info["card_id"],
        need=info["need"],
        success=bool(info["success"]),
        user_left=bool(info["user_left"]),
        initial_emotion=emotions[0],
        final_emotion=emotions[-1],
        turns=len(strategies),
        strategies=strategies,
        emotions=emotions,
        episode_return=total,
        messages=info["messages"].to_list() if keep_messages else [],
    )


def evaluate(
    policy: str | Callable[[gym.Env], Policy],
    env_id: str = "EmpathyDialogue-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    repeats: int = 1,
) -> list[EpisodeResult]:
    """Play one episode per card of the env's scenarios (times ``repeats``), seeded.

    Episode ``k`` uses seed ``seed + k``, so results are reproducible.

    Args:
        policy: A reference policy name (see ``agents.REFERENCE_POLICIES``) or a factory
            ``env -> policy``.
        env_id: The registered env.
        env_kwargs: Passed to ``gym.make`` (default: template voice, test cards).
        seed: Base seed.
        repeats: Passes over the cards.
    """
    kwargs = {"voice": "template", "scenarios": "test", **(env_kwargs or {})}
    env = gym.make(env_id, **kwargs)
    agent = make_policy(policy, env) if isinstance(policy, str) else policy(env)
    n_cards = len(env.unwrapped.cards)
    results = []
    for k in range(n_cards * repeats):
        results.append(run_episode(env, agent, seed=seed + k, card=k % n_cards))
    env.close()
    return results


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Success rate, mean final emotion, user-left rate and mean turns.

    Example:
        >>> r = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> summarize([r])["success_rate"]
        1.0
    """
    if not results:
        raise ValueError("no episodes to summarise")
    return {
        "episodes": float(len(results)),
        "success_rate": float(np.mean([r.success for r in results])),
        "final_emotion": float(np.mean([r.final_emotion for r in results])),
        "user_left_rate": float(np.mean([r.user_left for r in results])),
        "mean_turns": float(np.mean([r.turns for r in results])),
    }


def format_table(rows: Iterable[tuple[str, Mapping[str, float]]]) -> str:
    """A plain-text table of policy summaries."""
    header = f"{'policy':<18} {'success':>8} {'final emotion':>14} {'user left':>10} {'turns':>6}"
    lines = [header, "-" * len(header)]
    for name, s in rows:
        lines.append(
            f"{name:<18} {s['success_rate']:>8.0%} {s['final_emotion']:>14.1f} "
            f"{s['user_left_rate']:>10.0%} {s['mean_turns']:>6.1f}"
        )
    return "\n".join(lines)
