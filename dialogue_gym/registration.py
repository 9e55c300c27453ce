"""Registration of the package's environments with Gymnasium.

Adding an environment is one module (or one set of cards) plus one entry here.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv


class RewardedEnvFactory:
    """An entry point: builds ``env_class(**env_kwargs)`` and wraps it with a named reward.

    ``gym.make(env_id, reward=..., reward_kwargs={...}, **env_kwargs)`` calls it;
    ``env.unwrapped`` stays the env class. ``env_class`` (imported on first use) is what the
    docs' env cards and ``gym.make``'s render-mode check read.

    Args:
        env_class: ``"module:Class"`` of the env.
    """

    def __init__(self, env_class: str) -> None:
        self.env_class_path = env_class

    @property
    def env_class(self) -> type[gym.Env]:
        module, _, name = self.env_class_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.env_class.metadata

    def __call__(
        self,
        reward: str | None = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        **env_kwargs: Any,
    ) -> gym.Env:
        """The env, wrapped with ``reward`` (see ``dialogue_gym.rewards.REWARDS``; ``None``:
        the env's own coarse bonus, no wrapper)."""
        from dialogue_gym.rewards import apply_reward

        return apply_reward(self.env_class(**env_kwargs), reward, reward_kwargs)


make_empathy_dialogue = RewardedEnvFactory("dialogue_gym.envs.empathy:EmpathyDialogueEnv")
make_empathy_dialogue_text = RewardedEnvFactory("dialogue_gym.envs.text:EmpathyDialogueTextEnv")

#: Every env id this package registers, with its entry point and default kwargs.
_SPECS: dict[str, dict] = {
    "EmpathyDialogue-v0": {
        "entry_point": "dialogue_gym.registration:make_empathy_dialogue",
        "kwargs": {},
    },
    "EmpathyDialogueText-v0": {
        "entry_point": "dialogue_gym.registration:make_empathy_dialogue_text",
        "kwargs": {},
    },
}

ENV_IDS: tuple[str, ...] = tuple(_SPECS)


def register_envs() -> None:
    """Register every env id (idempotent: importing twice does not warn)."""
    for env_id, spec in _SPECS.items():
        if env_id in gym.registry:
            continue
        # No TimeLimit: the env truncates at its own max_turns, which gym.make may override.
        # gym.make_vec gets the batched vector env (one LLM call per round for all users).
        gym.register(
            id=env_id,
            entry_point=spec["entry_point"],
            vector_entry_point=functools.partial(EmpathyDialogueVectorEnv, env_id=env_id),
            kwargs=spec["kwargs"],
        )
