"""Every reward at once: stack every reward wrapper as a probe, and sum each reward's return.

The list of rewards is the rewards registry's (:data:`dialogue_gym.rewards.registry.REWARDS`
and its component wrappers), read when asked for: a reward registered by a plugin, with one
``register_reward`` call, is stacked by :func:`stack_reward_probes` and gets its
``return/<name>`` metric with no other edit. :data:`PROBE_ORDER` and :data:`REWARD_PROBES`
are live views of the registry, not copies.

Example:
    >>> list(REWARD_PROBES)[:3], PROBE_ORDER[-1]
    (['sparse', 'final_emotion', 'next_turn'], 'sparse')
    >>> REWARD_PROBES["potential_emotion"]  # shaping is paid on top of the coarse bonus
    ('sparse', 'potential_emotion')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

import gymnasium as gym
import numpy as np

from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.evaluation.metrics._common import example_episode, require_results  # noqa: F401  (examples)
from dialogue_gym.rewards.registry import COMPONENT_WRAPPERS, probe_order, reward_probes

__all__ = [
    "PROBE_ORDER",
    "REWARD_PROBES",
    "all_rewards_env",
    "mean_returns",
    "returns_by_reward",
    "stack_reward_probes",
]

V = TypeVar("V")


class LiveMapping(Mapping[str, V]):
    """A read-only mapping recomputed from ``source()`` on every read (a registry's view).

    Example:
        >>> names = ["a"]
        >>> view = LiveMapping(lambda: {n: len(n) for n in names})
        >>> names.append("bb")
        >>> dict(view), view == {"a": 1, "bb": 2}
        ({'a': 1, 'bb': 2}, True)
    """

    def __init__(self, source: Callable[[], Mapping[str, V]]) -> None:
        self._source = source

    def __getitem__(self, key: str) -> V:
        return self._source()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._source())

    def __len__(self) -> int:
        return len(self._source())

    def __repr__(self) -> str:
        return repr(dict(self._source()))


class LiveTuple(Sequence[str]):
    """A read-only tuple recomputed from ``source()`` on every read; equal to that tuple.

    Example:
        >>> LiveTuple(lambda: ("a", "b")) == ("a", "b")
        True
    """

    def __init__(self, source: Callable[[], tuple[str, ...]]) -> None:
        self._source = source

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return self._source()[index]

    def __len__(self) -> int:
        return len(self._source())

    def __iter__(self) -> Iterator[str]:
        return iter(self._source())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LiveTuple):
            other = other._source()
        return self._source() == other

    __hash__ = None  # type: ignore[assignment]  (it changes with the registry)

    def __repr__(self) -> str:
        return repr(self._source())


#: The order in which :func:`stack_reward_probes` stacks the reward wrappers, innermost
#: first: every registered component wrapper, the coarse bonus on top, so the stacked env's
#: own reward is the default one (``rewards.registry.probe_order()``, read live).
PROBE_ORDER: Sequence[str] = LiveTuple(probe_order)

#: Reward name (``gym.make(..., reward=name)``) -> the components whose per-turn sum is the
#: reward that env pays. ``potential_emotion`` pays the coarse bonus plus its shaping term,
#: as ``rewards.REWARDS`` stacks it; ``composite`` is a weighted sum of these, left out
#: (``rewards.registry.reward_probes()``, read live).
REWARD_PROBES: Mapping[str, tuple[str, ...]] = LiveMapping(reward_probes)


def stack_reward_probes(
    env: gym.Env, reward_kwargs: Mapping[str, Mapping[str, Any]] | None = None
) -> gym.Env:
    """Wrap ``env`` with every component reward wrapper, each under its own name.

    Each wrapper of ``rewards.registry.COMPONENT_WRAPPERS`` is applied once, in
    :data:`PROBE_ORDER`, with ``name=`` its registry name, so every step's
    ``info["reward_components"]`` holds every reward's components. The wrappers read only
    ``info`` (and look-ahead forks, never the real user), so each computes what it would
    alone; the env's reward is the coarse bonus (``"sparse"`` is on top).

    Args:
        env: An env with no reward wrapper (``gym.make(..., reward=None)``).
        reward_kwargs: Reward name -> its wrapper's arguments (e.g. ``{"multi_turn":
            {"horizon": 3}}``), for the ones trained with non-default settings.
    """
    order = probe_order()
    reward_kwargs = dict(reward_kwargs or {})
    unknown = set(reward_kwargs) - set(order)
    if unknown:
        raise ValueError(
            f"reward_kwargs for unknown reward(s) {sorted(unknown)}; valid: {sorted(order)}"
        )
    for name in order:
        kwargs = {**reward_kwargs.get(name, {}), "name": name}
        env = COMPONENT_WRAPPERS[name](env, **kwargs)
    return env


def all_rewards_env(
    env_kwargs: Mapping[str, Any] | None = None,
    env_id: str = "EmpathyDialogue-v0",
    reward_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` with every reward's components in ``info``.

    Same as ``evaluation.make_eval_env(reward=ALL_REWARDS)`` without its defaults: a
    ``reward`` in ``env_kwargs`` is ignored.

    Example:
        >>> env = all_rewards_env({"voice": "template"})
        >>> _ = env.reset(seed=0)
        >>> c = env.step(0)[-1]["reward_components"]
        >>> all(name in c for name in REWARD_PROBES)
        True
    """
    kwargs = {
        key: v for key, v in (env_kwargs or {}).items() if key not in ("reward", "reward_kwargs")
    }
    return stack_reward_probes(gym.make(env_id, reward=None, **kwargs), reward_kwargs)


def returns_by_reward(results: Sequence[EpisodeResult]) -> dict[str, list[float]]:
    """Each episode's return under every reward of :data:`REWARD_PROBES`.

    The return under reward ``r`` is the undiscounted sum over the episode's agent turns of
    the components ``REWARD_PROBES[r]`` in ``reward_components``: what ``gym.make(...,
    reward=r)`` would have paid for the same conversation. NaN for an episode that lacks a
    component (it was not run with ``ALL_REWARDS`` or that reward).

    Example:
        >>> r = example_episode([0, 4], reward_components=[
        ...     {"sparse": 0.0, "potential_emotion": 0.1},
        ...     {"sparse": 1.0, "potential_emotion": -0.5}])
        >>> out = returns_by_reward([r])
        >>> out["sparse"], out["potential_emotion"], out["next_turn"]
        ([1.0], [0.6], [nan])
    """
    probes = reward_probes()
    out: dict[str, list[float]] = {name: [] for name in probes}
    for r in results:
        for name, keys in probes.items():
            try:
                total = sum(sum(c[key] for key in keys) for c in r.reward_components)
            except KeyError:
                total = math.nan
            out[name].append(float(total) if r.reward_components else math.nan)
    return out


def mean_returns(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """The mean over episodes of :func:`returns_by_reward` (NaN if any episode lacks one).

    Example:
        >>> r = example_episode([0], reward_components=[{"sparse": 1.0, "potential_emotion": 0.2}])
        >>> mean_returns([r, r])["potential_emotion"]
        1.2
    """
    require_results(results)
    return {name: float(np.mean(values)) for name, values in returns_by_reward(results).items()}
