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
        """Seeds for the next ``reset()``, one per user (``seed(int)`` gives ``int + i``).

        Raises:
            TypeError: A seed is neither ``None`` nor an integer (numpy integers are).
            ValueError: A negative seed, or not one per user.
        """
        self._seeds = _check_seeds(seeds, self.num_envs)

    def reset(self) -> VecEnvObs:
        """Reset every user, each with its seed (``seed``) and options (``set_options``).

        Users given the same options reset together in one batched call. Where they differ,
        the largest group resets first, for every user (a vector env starts with a full
        reset), and each other group then resets again with its own options through a reset
        mask and the same seeds, so a seeded user starts exactly as if reset alone (an unseeded
        one draws its start from its generator twice).

        Raises:
            ValueError: ``set_options`` was given a list whose length is not ``num_envs``.
        """
        n = self.num_envs
        options = list(self._options)
        if len(options) != n:
            raise ValueError(f"set_options() got {len(options)} options for {n} envs")
        seeds = [None if s is None else int(s) for s in self._seeds]
        groups: list[tuple[dict[str, Any], list[int]]] = []
        for i, opts in enumerate(options):
            group = next((g for g in groups if g[0] == opts), None)
            if group is None:
                groups.append((opts, [i]))
            else:
                group[1].append(i)
        groups.sort(key=lambda g: -len(g[1]))  # stable: ties keep the first user's group
        first, *rest = groups
        obs, infos = self.venv.reset(seed=seeds, options=dict(first[0]) or None)
        self.reset_infos = _split_infos(infos, n)
        for opts, members in rest:
            mask = np.zeros(n, dtype=bool)
            mask[members] = True
            # A fresh dict each time: Gymnasium's vector envs pop reset_mask from it.
            obs, infos = self.venv.reset(seed=seeds, options={**opts, "reset_mask": mask})
            for i, info in enumerate(_split_infos(infos, n)):
                if mask[i]:
                    self.reset_infos[i] = info
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


_SEEDS_ALLOWED = (
    "None, a non-negative integer (numpy integers too), or a sequence of None or such integers, "
    "one per env"
)


def _is_integer(value: Any) -> bool:
    # bool is an int subclass, but True as a seed is a mistake, not the seed 1.
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _check_seeds(seeds: Any, n: int) -> list[int | None]:
    """``seeds`` (one per user, each ``None`` or a non-negative integer) as plain ints.

    Raises:
        TypeError: Not a sequence, or an entry that is neither ``None`` nor an integer.
        ValueError: A negative entry, or not ``n`` of them.
    """
    if isinstance(seeds, str | bytes) or not isinstance(seeds, Sequence | np.ndarray):
        raise TypeError(f"seed must be {_SEEDS_ALLOWED}; got {seeds!r}")
    out: list[int | None] = []
    for s in seeds:
        if s is not None and not _is_integer(s):
            raise TypeError(
                f"seed {seeds!r}: each must be None or an integer, got {s!r}; "
                f"allowed: {_SEEDS_ALLOWED}"
            )
        if s is not None and s < 0:
            raise ValueError(f"seed {seeds!r}: {s} is negative; allowed: {_SEEDS_ALLOWED}")
        out.append(None if s is None else int(s))
    if len(out) != n:
        raise ValueError(
            f"seed {seeds!r}: {len(out)} seeds for {n} envs; allowed: {_SEEDS_ALLOWED}"
        )
    return out


def make_sb3_vec_env(
    env_id: str = "EmpathyDialogue-v0",
    n_envs: int = 1,
    seed: int | np.integer | Sequence[int | None] | None = None,
    max_batch: int | None = None,
    **env_kwargs: Any,
) -> SB3VecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` users of ``env_id`` with batched LLM calls.

    Args:
        env_id: A registered dialogue env.
        n_envs: How many users.
        seed: Seeds the first reset: an integer (a numpy integer too; user ``i`` gets
            ``seed + i``), one seed per user, or ``None`` (unseeded).
        max_batch: The backend's batch limit.
        **env_kwargs: Passed to ``gym.make`` for each user.

    Raises:
        TypeError: ``seed`` is not ``None``, an integer or a sequence of them.
        ValueError: A negative seed, or a sequence that is not one per user.
    """
    # Checked before the users are built: a bad seed should not cost n_envs env builds.
    if _is_integer(seed):
        if seed < 0:
            raise ValueError(f"seed {seed!r} is negative; allowed: {_SEEDS_ALLOWED}")
        seeds: list[int | None] | None = [int(seed) + i for i in range(n_envs)]
    elif seed is None:
        seeds = None
    else:
        seeds = _check_seeds(seed, n_envs)
    venv = EmpathyDialogueVectorEnv(
        n_envs, env_id=env_id, autoreset_mode="same_step", max_batch=max_batch, **env_kwargs
    )
    sb3 = SB3VecEnv(venv)
    if seeds is not None:
        sb3.seed_each(seeds)
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
