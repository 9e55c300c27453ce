"""PotentialShapedEmotion: emotion as a potential, added to the task reward without changing it.

Ng, Harada and Russell (1999): adding ``F(s, s') = gamma x Phi(s') - Phi(s)`` to any reward
leaves its optimal policies unchanged, provided ``Phi`` of a terminal state is 0.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from dialogue_gym.core.validation import number, text
from dialogue_gym.rewards.base import ComponentRewardWrapper, factor


class PotentialShapedEmotion(ComponentRewardWrapper):
    """The reward below plus ``F = gamma x Phi(s') - Phi(s)``, with ``Phi = scale x emotion``.

    ``Phi(s') = 0`` when the step terminates the episode (the user thanks the agent or
    leaves); on truncation ``s'`` is not terminal and keeps its potential. The discounted
    sum of ``F`` over an episode telescopes to ``gamma^T Phi(s_T) - Phi(s_0)`` (``-Phi(s_0)``
    when it terminated), so the optimal policies of the task reward below are unchanged
    (Ng, Harada and Russell, 1999) — provided ``gamma`` is the learner's discount.

    Components: ``name`` (``F``, the shaping term only: the reward returned is the reward
    below plus ``F``), ``name/phi`` (``Phi(s')``, 0 at a terminal state) and
    ``name/phi_before`` (``Phi(s)``).

    Args:
        env: The env to wrap; its reward is the task reward (``gym.make(...,
            reward="potential_emotion")`` stacks this on ``SparseBonus``).
        gamma: The learner's discount factor (SB3's PPO default, 0.99).
        scale: ``Phi`` per point of emotion.
        name: Key in ``info["reward_components"]``.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward="potential_emotion")
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> c = info["reward_components"]
        >>> abs(reward - (c["sparse"] + 0.99 * c["potential_emotion/phi"]
        ...     - c["potential_emotion/phi_before"])) < 1e-12
        True
    """

    parts = ("phi", "phi_before")
    arguments = {"gamma": number(0, 1), "scale": factor(), "name": text(forbid="/")}

    def __init__(
        self,
        env: gym.Env,
        gamma: float = 0.99,
        scale: float = 1 / 100,
        name: str = "potential_emotion",
    ) -> None:
        super().__init__(env, name)
        self.gamma = float(gamma)
        self.scale = float(scale)

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        phi_before = self.scale * info["emotion_before"]
        phi = 0.0 if terminated else self.scale * info["emotion"]
        return self.gamma * phi - phi_before, (phi, phi_before)

    def combine(self, reward_below: float, own: float) -> float:
        return reward_below + own
