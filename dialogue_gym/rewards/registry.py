"""The reward names ``gym.make(..., reward=...)`` accepts, and how each wraps the env."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from dialogue_gym.rewards.composite import CompositeReward
from dialogue_gym.rewards.emotion_delta import EmotionDeltaReward
from dialogue_gym.rewards.multi_turn import MultiTurnValueReward
from dialogue_gym.rewards.next_turn import NextTurnReward
from dialogue_gym.rewards.potential import PotentialShapedEmotion
from dialogue_gym.rewards.sparse import SparseBonus

#: The reward the registered envs pay when ``gym.make`` is given no ``reward``: the coarse
#: bonus the bare env pays (1 on success), with its components in ``info``.
DEFAULT_REWARD = "sparse"


def _final_emotion(env: gym.Env, **kwargs: Any) -> gym.Env:
    return SparseBonus(env, kind="final_emotion", **kwargs)


def _potential_on_sparse(env: gym.Env, **kwargs: Any) -> gym.Env:
    return PotentialShapedEmotion(SparseBonus(env), **kwargs)


#: One wrapper per component name, as ``CompositeReward`` adds them.
COMPONENT_WRAPPERS: dict[str, Callable[..., gym.Env]] = {
    "sparse": SparseBonus,
    "final_emotion": _final_emotion,
    "next_turn": NextTurnReward,
    "multi_turn": MultiTurnValueReward,
    "emotion_delta": EmotionDeltaReward,
    "potential_emotion": PotentialShapedEmotion,
}

#: ``reward=`` name -> how it wraps the env (``reward_kwargs`` go to the named wrapper).
REWARDS: dict[str, Callable[..., gym.Env]] = {
    **COMPONENT_WRAPPERS,
    "potential_emotion": _potential_on_sparse,  # shaping needs a task reward below it
    "composite": CompositeReward,
}


def register_reward(name: str, wrap: Callable[..., gym.Env]) -> None:
    """Make ``gym.make(..., reward=name)`` (and the reward study) use ``wrap(env, **kwargs)``.

    Args:
        name: The new reward's name; it may not shadow a built-in one.
        wrap: ``env, **reward_kwargs -> wrapped env``, e.g. a reward wrapper class.

    Raises:
        ValueError: If ``name`` is taken.

    Example:
        >>> from dialogue_gym.rewards import EmotionDeltaReward
        >>> register_reward("doc_delta", lambda env: EmotionDeltaReward(env, scale=0.5))
        >>> "doc_delta" in REWARDS
        True
        >>> del REWARDS["doc_delta"]  # (the example cleans up after itself)
        >>> register_reward("sparse", EmotionDeltaReward)
        Traceback (most recent call last):
        ...
        ValueError: reward 'sparse' is already registered
    """
    if name in REWARDS:
        raise ValueError(f"reward {name!r} is already registered")
    REWARDS[name] = wrap


def apply_reward(
    env: gym.Env,
    reward: str | None = DEFAULT_REWARD,
    reward_kwargs: Mapping[str, Any] | None = None,
) -> gym.Env:
    """Wrap ``env`` with the named reward (``None``: leave the env's own reward).

    Args:
        env: The env.
        reward: A name in ``REWARDS`` or ``None``.
        reward_kwargs: Keyword arguments of the reward's wrapper.

    Raises:
        ValueError: For an unknown name (the message lists the valid ones).

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward=None)
        >>> apply_reward(env, "emotion_delta", {"scale": 0.1}).scale
        0.1
        >>> apply_reward(env, "dense")
        Traceback (most recent call last):
        ...
        ValueError: unknown reward 'dense'; valid: None, 'composite', 'emotion_delta', 'final_emotion', 'multi_turn', 'next_turn', 'potential_emotion', 'sparse'
    """
    if reward is None:
        if reward_kwargs:
            raise ValueError("reward_kwargs given with reward=None")
        return env
    if reward not in REWARDS:
        valid = ", ".join(["None", *map(repr, sorted(REWARDS))])
        raise ValueError(f"unknown reward {reward!r}; valid: {valid}")
    return REWARDS[reward](env, **dict(reward_kwargs or {}))
