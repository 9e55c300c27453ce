"""Stable-Baselines3 adapter: the batched vector env as an SB3 ``VecEnv``.

SB3 resets a finished episode inside the same step and hands back the last observation
as ``info["terminal_observation"]``; :class:`SB3VecEnv` converts a Gymnasium vector env's
outputs to that, whatever its autoreset mode, so SB3 learners get the one-LLM-call-per-round
batching of :class:`~dialogue_gym.envs.vector.EmpathyDialogueVectorEnv` too. Wrap what
``gym.make_vec`` returns, or let :func:`make_sb3_vec_env` build it.

Example:
    >>> from stable_baselines3 import PPO
    >>> venv = SB3VecEnv(gym.make_vec("EmpathyDialogue-v0", num_envs=2, voice="template"))
    >>> model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1)
    >>> _ = model.learn(total_timesteps=32)
    >>> venv.close()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv


class SB3VecEnv(VecEnv):
    """An SB3 ``VecEnv`` over N dialogue envs whose LLM calls are batched.

    Any autoreset mode works: with ``same_step`` the vector env resets a finished user
    itself; with ``next_step`` (Gymnasium's default, what ``gym.make_vec`` gives) or
    ``disabled`` the adapter resets the finished users right after the step
    (``reset(options={"reset_mask": ...})``), so SB3 sees the same thing either way.

    Args:
        venv: A Gymnasium vector env of dialogue users whose sub-envs are in ``venv.envs``:
            ``gym.make_vec(...)`` (the batched
            :class:`~dialogue_gym.envs.vector.EmpathyDialogueVectorEnv`, or a ``SyncVectorEnv``
            with ``vectorization_mode="sync"``), possibly under vector wrappers.

    Raises:
        TypeError: ``venv`` is not a Gymnasium vector env, or its sub-envs are out of reach
            (``AsyncVectorEnv``).
        ValueError: An autoreset mode this adapter does not know.
    """

    def __init__(self, venv: EmpathyDialogueVectorEnv | VectorEnv) -> None:
        if not isinstance(venv, VectorEnv):
            raise TypeError(f"SB3VecEnv needs a Gymnasium VectorEnv, got {type(venv).__name__}")
        if not isinstance(getattr(venv.unwrapped, "envs", None), list | tuple):
            raise TypeError(
                f"SB3VecEnv needs a vector env whose sub-envs are in .envs (the batched vector "
                f"env or a SyncVectorEnv), got {type(venv.unwrapped).__name__}"
            )
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        if mode not in tuple(AutoresetMode):
            raise ValueError(
                f"autoreset_mode must be one of {[m.value for m in AutoresetMode]}, got {mode!r}"
            )
        self.venv = venv
        self.envs: list[gym.Env] = list(venv.unwrapped.envs)
        self.autoreset_mode = AutoresetMode(mode)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def seed_each(self, seeds: Sequence[int | None]) -> None:
        """Seeds for the next ``reset()``, one per user (``seed(int)`` gives ``int + i``)."""
        if len(seeds) != self.num_envs:
            raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        self._seeds = list(seeds)

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
        if self.autoreset_mode != AutoresetMode.SAME_STEP:
            if dones.any():
                obs = self._reset_finished(obs, dones, out)
        else:
            for i in np.flatnonzero(dones):
                # SB3's convention: the step's info is the finished episode's last one; the
                # new episode's reset info goes to reset_infos.
                info = out[i]
                terminal_obs = info.pop("final_obs")
                final_info = info.pop("final_info", {})
                self.reset_infos[i] = info
                out[i] = {**final_info, "terminal_observation": terminal_obs}
        for i, info in enumerate(out):
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, out

    def _reset_finished(
        self, obs: dict[str, np.ndarray], dones: np.ndarray, out: list[dict[str, Any]]
    ) -> dict[str, np.ndarray]:
        """SAME_STEP's outcome from a ``next_step`` or ``disabled`` vector env: reset the
        finished users now, their last observation into ``terminal_observation``."""
        for i in np.flatnonzero(dones):
            out[i]["terminal_observation"] = {key: value[i] for key, value in obs.items()}
        # A fresh options dict: Gymnasium's vector envs pop reset_mask from it.
        new_obs, infos = self.venv.reset(options={"reset_mask": dones.copy()})
        for i, info in enumerate(_split_infos(infos, self.num_envs)):
            if dones[i]:
                self.reset_infos[i] = info
        return new_obs

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [self.envs[i].get_wrapper_attr(attr_name) for i in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for i in self._get_indices(indices):
            self.envs[i].set_wrapper_attr(attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
    ) -> list[Any]:
        return [
            self.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs)
            for i in self._get_indices(indices)
        ]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: Any = None) -> list[bool]:
        out = []
        for i in self._get_indices(indices):
            env, found = self.envs[i], False
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
    if isinstance(seed, int):
        sb3.seed(seed)
    elif seed is not None:
        sb3.seed_each(list(seed))
    return sb3


class SB3Policy:
    """A trained SB3 model as the policy callables that agents and planners take.

    ``policy(obs) -> action`` (with ``reset()``, carrying a recurrent model's state) fits an
    :class:`~dialogue_gym.agents.planning.MCTSPlanner`'s ``rollout_policy``, an
    :class:`~dialogue_gym.agents.options.Option`'s policy and ``run_episode``;
    ``policy.action_probs(obs)`` is the ``obs -> probabilities`` a
    :class:`~dialogue_gym.agents.planning.DualProcessAgent`'s System 1 needs (it reads the
    policy's action distribution, which ``predict`` does not expose).

    Args:
        model: An SB3 (or sb3-contrib) model over ``Discrete`` actions.
        deterministic: Act on the most likely action (the usual evaluation setting).

    Example:
        >>> from stable_baselines3 import PPO
        >>> env = gym.make("EmpathyDialogue-v0", voice="template")
        >>> policy = as_policy(PPO("MultiInputPolicy", env, seed=0))  # untrained, for show
        >>> obs, info = env.reset(seed=0)
        >>> probs = policy.action_probs(obs)
        >>> probs.shape, round(float(probs.sum()), 5), policy(obs) == int(probs.argmax())
        ((8,), 1.0, True)
    """

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        from dialogue_gym.agents.planning import sb3_action_probs
        from dialogue_gym.evaluation.episodes import ModelPolicy

        self.model = model
        self._act = ModelPolicy(model, deterministic)
        self.action_probs = sb3_action_probs(model)

    def reset(self, seed: int | None = None) -> None:
        self._act.reset(seed)

    def __call__(self, obs: Any) -> int:
        return int(self._act(obs))


def as_policy(model: Any, deterministic: bool = True) -> SB3Policy:
    """``model`` as an :class:`SB3Policy`: ``obs -> action``, plus ``action_probs(obs)``."""
    return SB3Policy(model, deterministic)
