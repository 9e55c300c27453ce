"""N simulated users stepped together, with one batched LLM call per round of LLM calls.

``gym.make_vec("EmpathyDialogue-v0", num_envs=N)`` returns an
:class:`EmpathyDialogueVectorEnv` (the registration's ``vector_entry_point``). Each user is a
full ``gym.make`` env (reward wrappers included). When anything in it calls an LLM — the user
voice, the agent realiser (``agent_voice="llm"``), the LLM recogniser of
EmpathyDialogueText-v0 (``recogniser="llm"``), the SAGE judge (``appraisal="llm"``) — the N users
step in worker threads and every one of those backend handles
(:class:`~dialogue_gym.llm.client.BackendClient`) is routed through one
:class:`~dialogue_gym.llm.batching.Batcher`, so each kind of call costs one backend call for all
N users (per backend and sampling setting). With no LLM the users step in turn, no threads.

A step that raises (a backend that cannot answer) leaves some users stepped and others not:
the vector env then refuses ``step`` until ``reset``.

Autoreset follows Gymnasium's default, ``NEXT_STEP``: the step after an episode ends
resets that user (reward 0, not terminated) and ignores its action. ``SAME_STEP`` is also
available. ``reset(options={"reset_mask": mask})`` resets only the users where ``mask`` is
true (Gymnasium's partial reset). The Stable-Baselines3 adapter
(:class:`~dialogue_gym.integrations.sb3.SB3VecEnv`) takes the vector env in either mode, so
``SB3VecEnv(gym.make_vec(...))`` needs no autoreset setting.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> envs = gym.make_vec("EmpathyDialogue-v0", num_envs=3, voice="template")
    >>> obs, infos = envs.reset(seed=0)
    >>> obs["score"].shape
    (3, 1)
    >>> obs, rewards, terminated, truncated, infos = envs.step([0, 1, 2])
    >>> rewards.shape, infos["emotion"].shape
    ((3,), (3,))
    >>> envs.close()
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from dialogue_gym.core.validation import (
    InvalidArgument,
    Spec,
    anything,
    check_all,
    integer,
    text,
)
from dialogue_gym.envs.text import prime_embeddings
from dialogue_gym.llm.batching import Batcher
from dialogue_gym.llm.client import BackendClient

_StepResult = tuple[Any, float, bool, bool, dict[str, Any]]
_AUTORESET_NAMES: dict[Any, AutoresetMode] = {
    "next_step": AutoresetMode.NEXT_STEP,
    "same_step": AutoresetMode.SAME_STEP,
    **{m.value: m for m in AutoresetMode},
}

#: Each constructor argument's spec (see ``dialogue_gym.envs.empathy.ENV_ARGUMENTS``); the
#: keyword arguments for the single envs are checked by their own constructors.
VECTOR_ENV_ARGUMENTS: Mapping[str, Spec] = {
    "num_envs": integer(1),
    "env_id": text(),
    "autoreset_mode": anything(
        "'next_step' or 'same_step' (or the AutoresetMode)",
        lambda mode: (
            isinstance(mode, str | AutoresetMode)
            and _AUTORESET_NAMES.get(mode, mode)
            in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
        ),
    ),
    "max_batch": integer(1, optional=True),
}


#: The public names of the vector env (``envs.unwrapped``) that code above it may use:
#: Gymnasium's ``VectorEnv`` API, and two of its own, ``envs`` (the single users, each a full
#: ``gym.make`` env, for adapters such as SB3's that step them) and ``backend_calls`` (the
#: batched backend calls so far, which the throughput benchmark counts).
#: ``tests/test_simulator_view.py`` checks, at run time, that nothing above reads another.
VECTOR_VIEW: tuple[str, ...] = (
    # Gymnasium's VectorEnv API
    "reset",
    "step",
    "render",
    "close",
    "call",
    "get_attr",
    "set_attr",
    "num_envs",
    "action_space",
    "observation_space",
    "single_action_space",
    "single_observation_space",
    "metadata",
    "render_mode",
    "spec",
    "unwrapped",
    "np_random",
    "np_random_seed",
    "closed",
    # this env's own
    "env_id",
    "envs",
    "backend_calls",
)


class EmpathyDialogueVectorEnv(VectorEnv):
    """A vector of dialogue envs that batches their LLM calls.

    Args:
        num_envs: How many users.
        env_id: The registered single env to vectorise.
        autoreset_mode: ``"next_step"`` (Gymnasium's default) or ``"same_step"``.
        max_batch: The backend's batch limit (larger rounds are split); ``None``: no limit.
        **env_kwargs: Passed to ``gym.make(env_id, ...)`` for every user (``voice``,
            ``backend``, ``scenarios``, ``reward``...).
    """

    def __init__(
        self,
        num_envs: int,
        env_id: str = "EmpathyDialogue-v0",
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        max_batch: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        arguments = {
            "num_envs": num_envs,
            "env_id": env_id,
            "autoreset_mode": autoreset_mode,
            "max_batch": max_batch,
        }
        check_all(type(self).__name__, VECTOR_ENV_ARGUMENTS, arguments)
        mode = _AUTORESET_NAMES.get(autoreset_mode, autoreset_mode)
        env_kwargs.pop("max_episode_steps", None)  # the env truncates at its own max_turns
        self.num_envs = int(num_envs)
        self.env_id = env_id
        self.envs = [gym.make(env_id, **env_kwargs) for _ in range(self.num_envs)]
        first = self.envs[0]
        self.metadata = {**first.metadata, "autoreset_mode": mode}
        self.render_mode = first.render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._batcher = self._install_batching(max_batch)
        self._pool = ThreadPoolExecutor(self.num_envs) if self._batcher else None
        self._obs = create_empty_array(self.single_observation_space, self.num_envs)
        self._env_obs: list[Any] = [None] * self.num_envs  # each user's latest observation
        self._autoreset = np.zeros(self.num_envs, dtype=bool)
        self._failed: str | None = None  # why step() is refused until reset()

    # -- batching -----------------------------------------------------------------------

    def _install_batching(self, max_batch: int | None) -> Batcher | None:
        """Route every backend handle of every user through one batcher (``None``: no LLM).

        The handles are what each env lists in ``backend_clients()``: user voice, agent
        realiser, LLM recogniser, SAGE judge. Handles naming the same backend share a proxy,
        so their users' calls merge; other backends get their own proxy in the same rounds.
        """
        clients: list[BackendClient] = []
        for env in self.envs:
            listed = getattr(env.unwrapped, "backend_clients", None)
            if callable(listed):
                clients.extend(listed())
        if not clients:
            return None
        batcher = Batcher(max_batch)
        for client in clients:
            client.attach(batcher.proxy(client.backend))
        return batcher

    @property
    def backend_calls(self) -> int:
        """Batched backend calls made so far (0 when no user calls an LLM)."""
        return self._batcher.calls if self._batcher is not None else 0

    def _run(self, jobs: Sequence[Callable[[], Any]]) -> list[Any]:
        """Run one job per user; with LLM callers, in parallel with their calls batched."""
        if self._pool is None or self._batcher is None:
            return [job() for job in jobs]
        batcher = self._batcher
        batcher.start(len(jobs))

        def run(job: Callable[[], Any]) -> Any:
            try:
                return job()
            finally:
                batcher.finish()

        futures = [self._pool.submit(run, job) for job in jobs]
        wait(futures)  # no worker may still be stepping when the error reaches the caller
        return [f.result() for f in futures]  # re-raises the first user's error

    # -- Gymnasium vector API -----------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every user, or with ``options={"reset_mask": mask}`` those where ``mask``
        is true (the others keep their episodes; ``infos`` has entries for the reset ones).

        An int seed seeds user ``i`` with ``seed + i``; other options go to each user's reset.

        Raises:
            ValueError: A bad seed list or ``reset_mask`` (the message says what is allowed).
            RuntimeError: A partial reset after a failed ``step`` or ``reset``: the other
                users are out of step too, so reset them all.
        """
        if seed is None or isinstance(seed, int | np.integer):
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"got {len(seeds)} seeds for {self.num_envs} envs")
        if options is not None and not isinstance(options, Mapping):
            raise InvalidArgument(
                f"{type(self).__name__}.reset",
                "options",
                options,
                "must be a mapping (reset_mask and the single envs' options), or None",
            )
        mask = None
        if options is not None and "reset_mask" in options:
            options = dict(options)
            mask = self._check_reset_mask(options.pop("reset_mask"))
        if mask is not None and self._failed is not None:
            raise RuntimeError(
                f"the vector env needs a full reset(): {self._failed}; a reset_mask would "
                "leave the other users out of step"
            )
        if mask is not None and any(o is None for o in self._env_obs):
            raise RuntimeError("call reset() without a reset_mask first: some users never started")
        chosen = range(self.num_envs) if mask is None else np.flatnonzero(mask).tolist()
        if mask is None:
            self._failed = "an earlier reset() failed"  # cleared once every user has reset
        try:
            results = self._run(
                [
                    (lambda env=self.envs[i], s=seeds[i]: env.reset(seed=s, options=options))
                    for i in chosen
                ]
            )
        except BaseException as exc:
            if mask is not None:  # some users may have reset and others not
                self._failed = f"a partial reset() raised {type(exc).__name__}: {exc}"
            raise
        self._failed = None
        infos: dict[str, Any] = {}
        for i, (obs, info) in zip(chosen, results, strict=True):
            infos = self._add_info(infos, info, i)
            self._env_obs[i] = obs
            self._autoreset[i] = False
        self._obs = concatenate(self.single_observation_space, self._env_obs, self._obs)
        return copy.deepcopy(self._obs), infos

    def _check_reset_mask(self, mask: Any) -> np.ndarray:
        array = np.asarray(mask)
        if array.dtype != np.bool_ or array.shape != (self.num_envs,) or not array.any():
            raise ValueError(
                f"options['reset_mask'] must be a boolean array of shape ({self.num_envs},) "
                f"with at least one True, got {mask!r}"
            )
        return array

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every user (NEXT_STEP: users whose episode ended are reset instead).

        Raises:
            RuntimeError: An earlier ``step`` or ``reset`` raised (some users moved on,
                others did not): call ``reset()``.
        """
        if self._failed is not None:
            raise RuntimeError(
                f"the vector env needs reset(): {self._failed}, so its users are out of step "
                "with the observations it returned"
            )
        actions = self._one_per_env(actions)
        # Every action is checked before any user steps: a bad one raises with the batch
        # untouched, rather than leaving some users a turn ahead of the others.
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if not self._autoreset[i]:
                env.unwrapped.check_action(action)
        # Hearing users embed the agent's words: one model pass for the whole batch.
        prime_embeddings(
            [e for e, done in zip(self.envs, self._autoreset, strict=True) if not done],
            [a for a, done in zip(actions, self._autoreset, strict=True) if not done],
        )
        same_step = self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        jobs = []
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self._autoreset[i]:
                jobs.append(lambda env=env: _reset_as_step(env))
            elif same_step:
                jobs.append(lambda env=env, a=action: _step_and_reset(env, a))
            else:
                jobs.append(lambda env=env, a=action: env.step(a))
        try:
            results: list[_StepResult] = self._run(jobs)
        except BaseException as exc:
            self._failed = f"an earlier step() raised {type(exc).__name__}: {exc}"
            raise
        rewards = np.array([r[1] for r in results], dtype=np.float64)
        terminated = np.array([r[2] for r in results], dtype=np.bool_)
        truncated = np.array([r[3] for r in results], dtype=np.bool_)
        infos: dict[str, Any] = {}
        for i, r in enumerate(results):
            infos = self._add_info(infos, r[4], i)
        if not same_step:
            self._autoreset = terminated | truncated
        self._env_obs = [r[0] for r in results]
        self._obs = concatenate(self.single_observation_space, self._env_obs, self._obs)
        return copy.deepcopy(self._obs), rewards, terminated, truncated, infos

    def _one_per_env(self, actions: Any) -> list[Any]:
        """``actions`` as a list of one action per env, or a clear error before any env steps.

        A scalar (``step(5)``), a string (which ``list`` would split into characters), a
        mapping or anything else not a sequence of ``num_envs`` actions is refused.
        """
        n = self.num_envs
        single = (
            isinstance(actions, str | bytes | Mapping)
            or (isinstance(actions, np.ndarray) and actions.ndim == 0)
            or not isinstance(actions, Iterable)
        )
        if not single:
            actions = list(actions)
            if len(actions) == n:
                return actions
        raise InvalidArgument(
            f"{type(self).__name__}.step",
            "actions",
            actions,
            f"must be a sequence or array of {n} actions, one per env ({n} envs)"
            + (": wrap a single action in a list" if single else f", got {len(actions)}"),
        )

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a method (or read an attribute) of every user env."""
        out = []
        for env in self.envs:
            attr = env.get_wrapper_attr(name)
            out.append(attr(*args, **kwargs) if callable(attr) else attr)
        return tuple(out)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """An attribute of every user env."""
        return tuple(env.get_wrapper_attr(name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set an attribute of every user env (one value, or one per env)."""
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"got {len(values)} values for {self.num_envs} envs")
        for env, value in zip(self.envs, values, strict=True):
            env.set_wrapper_attr(name, value)


def _reset_as_step(env: gym.Env) -> _StepResult:
    obs, info = env.reset()
    return obs, 0.0, False, False, info


def _step_and_reset(env: gym.Env, action: Any) -> _StepResult:
    """SAME_STEP autoreset: a finished episode's last obs/info go to ``final_*`` keys."""
    obs, reward, terminated, truncated, info = env.step(action)
    if terminated or truncated:
        final_obs, final_info = obs, info
        obs, info = env.reset()
        info = {**info, "final_obs": final_obs, "final_info": final_info}
    return obs, reward, terminated, truncated, info
