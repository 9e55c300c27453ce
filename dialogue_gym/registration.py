"""Registration of the package's environments with Gymnasium.

Adding an environment is one module (or one set of cards) plus one entry here.
"""

from __future__ import annotations

import functools

import gymnasium as gym

from dialogue_gym.vector import EmpathyDialogueVectorEnv

#: Every env id this package registers, with its entry point and default kwargs.
_SPECS: dict[str, dict] = {
    "EmpathyDialogue-v0": {
        "entry_point": "dialogue_gym.env:EmpathyDialogueEnv",
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
