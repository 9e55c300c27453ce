"""Stable-Baselines3 adapter: the batched vector env as an SB3 ``VecEnv``.

SB3 resets a finished episode inside the same step and hands back the last observation
as ``info["terminal_observation"]``; :class:`SB3VecEnv` runs the batched
:class:`~dialogue_gym.envs.vector.EmpathyDialogueVectorEnv` in ``same_step`` mode and converts
its outputs, so SB3 learners get the one-LLM-call-per-round batching too.

Example:
    >>> from stable_baselines3 import PPO
    >>> venv = make_sb3_vec_env("EmpathyDialogue-v0", n_envs=2, voice="template")
    >>> model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1)
    >>> _ = model.learn(total_timesteps=32)
    >>> venv.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over N dialogue envs whose LLM calls are batched.

    Args:
        venv: A vector env in ``same_step`` autoreset mode.
    """

    def __init__(self, venv: EmpathyDialogueVectorEnv) -> None:
        if venv.metadata["autoreset_mode"] != AutoresetMode.SAME_STEP:
            raise ValueError("SB3VecEnv needs a vector env made with autoreset_mode='same_step'")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        seeds = [None if s is None else int(s) for s in self._seeds]
        options = self._options
        obs, infos = self.venv.reset(seed=seeds, options=options[0] if options[0] else None)
        self.reset_infos = _split_infos(infos, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async() first"
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        out = _split_infos(infos, self.num_envs)
        for i, info in enumerate(out):
            if dones[i]:
                # SB3's convention: the step's info is the finished episode's last one; the
                # new episode's reset info goes to reset_infos.
                terminal_obs = info.pop("final_obs")
                final_info = info.pop("final_info", {})
                self.reset_infos[i] = info
                info = out[i] = {**final_info, "terminal_observation": terminal_obs}
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, out

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [self.venv.envs[i].get_wrapper_attr(attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for i in self._get_indices(indices):
            self.venv.envs[i].set_wrapper_attr(attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        return [
            self.venv.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        out = []
        for i in self._get_indices(indices):
            env, found = self.venv.envs[i], False
            while isinstance(env, gym.Wrapper):
                found = found or isinstance(env, wrapper_class)
                env = env.env
            out.append(found)
        return out


def _split_infos(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (arrays with ``_key`` masks) back to one dict per env."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, values in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}", np.ones(n, dtype=bool))
        if isinstance(values, dict):
            for i, sub in enumerate(_split_infos(values, n)):
                if mask[i]:
                    out[i][key] = sub
            continue
        for i in range(n):
            if mask[i]:
                value = values[i]
                out[i][key] = value.item() if isinstance(value, np.generic) else value
    return out


def make_sb3_vec_env(
    env_id: str = "EmpathyDialogue-v0",
    n_envs: int = 1,
    seed: int | Sequence[int] | None = None,
    max_batch: int | None = None,
    **env_kwargs: Any,
) -> SB3VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` users of ``env_id`` with batched LLM calls.

    Args:
        env_id: A registered dialogue env.
        n_envs: How many users.
        seed: Seeds the first reset (user ``i`` gets ``seed + i``).
        max_batch: The backend's batch limit.
        **env_kwargs: Passed to ``gym.make`` for each user.
    """
    venv = EmpathyDialogueVectorEnv(
        n_envs, env_id=env_id, autoreset_mode="same_step", max_batch=max_batch, **env_kwargs
    )
    sb3 = SB3VecEnv(venv)
    if seed is not None:
        sb3.seed(seed if isinstance(seed, int) else None)
        if not isinstance(seed, int):
            sb3._seeds = list(seed)
    return sb3
