"""Reward wrappers: each pays one reward and logs its components in ``info``.

``gym.make("EmpathyDialogue-v0", reward=name, reward_kwargs={...})`` applies one by name
(``REWARDS``; the default is ``DEFAULT_REWARD``, ``"sparse"``), or wrap by hand and stack.
Every wrapper writes what it used into ``info["reward_components"]``, shared by the stack.
See ``docs/rewards.md`` for each one's formula, source and how it can be gamed.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward="emotion_delta")
    >>> env = SparseBonus(env, kind="final_emotion")  # stacks: both components are logged
    >>> _ = env.reset(seed=0)
    >>> sorted(env.step(0)[-1]["reward_components"])
    ['emotion_delta', 'emotion_delta/change', 'final_emotion', 'final_emotion/emotion', 'final_emotion/left']
"""

from __future__ import annotations

from dialogue_gym.rewards.base import (
    COMPONENTS_KEY,
    ComponentRewardWrapper,
    add_components,
    episode_rng,
)
from dialogue_gym.rewards.composite import CompositeReward
from dialogue_gym.rewards.critique import CritiqueFeedback, as_feedback
from dialogue_gym.rewards.emotion_delta import EmotionDeltaReward
from dialogue_gym.rewards.multi_turn import MultiTurnValueReward
from dialogue_gym.rewards.next_turn import PPDPP_VALUES, VERDICTS, NextTurnReward
from dialogue_gym.rewards.potential import PotentialShapedEmotion
from dialogue_gym.rewards.registry import (
    COMPONENT_WRAPPERS,
    DEFAULT_REWARD,
    REWARDS,
    apply_reward,
    register_reward,
    reward_components,
    reward_probes,
    unregister_reward,
)
from dialogue_gym.rewards.rollout import CorePolicy, StageHeuristicRollout
from dialogue_gym.rewards.sparse import SparseBonus

__all__ = [
    "COMPONENTS_KEY",
    "COMPONENT_WRAPPERS",
    "DEFAULT_REWARD",
    "PPDPP_VALUES",
    "REWARDS",
    "VERDICTS",
    "ComponentRewardWrapper",
    "CompositeReward",
    "CorePolicy",
    "CritiqueFeedback",
    "EmotionDeltaReward",
    "MultiTurnValueReward",
    "NextTurnReward",
    "PotentialShapedEmotion",
    "SparseBonus",
    "StageHeuristicRollout",
    "add_components",
    "apply_reward",
    "as_feedback",
    "episode_rng",
    "register_reward",
    "reward_components",
    "reward_probes",
    "unregister_reward",
]
