"""EmotionDeltaReward: the change in the user's emotion each turn, as the reward."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from dialogue_gym.core.validation import text
from dialogue_gym.rewards.base import ComponentRewardWrapper, factor


class EmotionDeltaReward(ComponentRewardWrapper):
    """``(e_{t+1} - e_t) x scale`` each turn, with ``e`` the emotion score (0–100).

    Summed over an episode it telescopes to ``(e_T - e_0) x scale``: the return is the
    episode's net change of emotion, however it was reached.

    Components: ``name`` (the reward) and ``name/change`` (``e_{t+1} - e_t`` in points).

    Args:
        env: The env to wrap.
        scale: Reward per point of emotion (``1/100``: the whole scale is worth 1).
        name: Key in ``info["reward_components"]``.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward="emotion_delta")
        >>> _, info = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> change = info["emotion"] - info["emotion_before"]
        >>> reward == change / 100 == info["reward_components"]["emotion_delta/change"] / 100
        True
    """

    parts = ("change",)
    arguments = {"scale": factor(), "name": text(forbid="/")}

    def __init__(self, env: gym.Env, scale: float = 1 / 100, name: str = "emotion_delta") -> None:
        super().__init__(env, name)
        self.scale = float(scale)

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        change = info["emotion"] - info["emotion_before"]
        return change * self.scale, (change,)
