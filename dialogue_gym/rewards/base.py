"""What every reward wrapper shares: named components in ``info`` and its own seeded generator.

A reward wrapper is a full :class:`gymnasium.Wrapper` (a ``RewardWrapper`` sees only the
scalar). Each one writes the components it used into ``info["reward_components"]``, a flat
dict shared by the whole stack: the wrapper's own reward under its ``name`` and its raw parts
under ``name/part``. A wrapper never overwrites an entry another wrapper wrote.

Example:
    >>> info = {"reward_components": {"sparse": 0.0}}
    >>> add_components(info, {"mine": 0.5, "mine/part": 1.0})
    >>> info["reward_components"]
    {'sparse': 0.0, 'mine': 0.5, 'mine/part': 1.0}
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec, WrapperSpec

from dialogue_gym.core.validation import Spec, check, number, text

#: The largest magnitude of a reward wrapper's scale, bonus, weight or cost. A finite but huge
#: factor (1e307) times an emotion change overflows to an infinite reward (found by the fuzz
#: suite), and no sensible reward needs a factor beyond this.
MAX_FACTOR = 1e6


def factor(low: float | None = -MAX_FACTOR) -> Spec:
    """The spec of a reward's multiplier: a finite number in ``[low, MAX_FACTOR]``.

    Example:
        >>> factor(0).describe()
        'a finite number in [0, 1e+06]'
    """
    return number(low, MAX_FACTOR)


#: The ``info`` key that holds every reward wrapper's components.
COMPONENTS_KEY = "reward_components"


def add_components(info: dict[str, Any], entries: Mapping[str, float]) -> None:
    """Add ``entries`` to ``info["reward_components"]``, never overwriting an existing one.

    Args:
        info: A step's or a reset's ``info`` (changed in place).
        entries: Component name -> value.

    Raises:
        ValueError: If a name is already there (two wrappers with the same ``name``).
    """
    components = info.get(COMPONENTS_KEY)
    if components is None:
        components = info[COMPONENTS_KEY] = {}
    for key, value in entries.items():
        if key in components:
            raise ValueError(
                f"reward component {key!r} is already in info[{COMPONENTS_KEY!r}] (written by "
                "a wrapper below): give this wrapper another name=..."
            )
        components[key] = value


def iter_wrappers(env: gym.Env) -> Iterator[gym.Env]:
    """``env`` and every wrapper below it, outermost first (the unwrapped env last)."""
    while True:
        yield env
        if not isinstance(env, gym.Wrapper):
            return
        env = env.env


def reward_names_below(env: gym.Env) -> set[str]:
    """The names of the reward wrappers in ``env``'s stack."""
    return {w.name for w in iter_wrappers(env) if isinstance(w, ComponentRewardWrapper)}


def episode_rng(env: gym.Env, seed: int) -> np.random.Generator:
    """A generator for one episode's extra randomness, that leaves the env's ``np_random`` alone.

    Seeded from what the env drew at reset (``env.unwrapped.episode_key()``: the card and
    the per-turn noise of its simulated user, a function of the env's seed and of how many
    episodes it has played) and the wrapper's own ``seed``. The same env seed therefore gives the same draws, a new
    episode new ones, and nothing is drawn from the env's generator.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(env.unwrapped.episode_key())
    entropy = int.from_bytes(digest.digest(), "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([entropy, int(seed)])))


def wrapper_spec(wrapper: gym.Wrapper) -> EnvSpec | None:
    """``wrapper.spec``, without deep-copying anything.

    Gymnasium's ``Wrapper.spec`` deep-copies the whole spec and gives ``None`` when it cannot
    (an env made with a backend object holding a lock, say). A reward wrapper is applied by
    the registered entry point, inside ``gym.make``, which needs the spec; so the spec below
    and this wrapper's arguments (a rollout policy may be a large model) are shared: a spec
    is only read.
    """
    env_spec = wrapper.env.spec
    if env_spec is None:
        return None
    kwargs = {key: value for key, value in wrapper._saved_kwargs.items() if key != "env"}
    entry = WrapperSpec(
        name=wrapper.class_name(),
        entry_point=f"{type(wrapper).__module__}:{type(wrapper).__name__}",
        kwargs=kwargs,
    )
    return dataclasses.replace(env_spec, additional_wrappers=(*env_spec.additional_wrappers, entry))


def _shared_data(value: Any) -> Any:
    """``value`` with its containers copied and everything else shared.

    The recorded arguments must not change when the caller later mutates a dict it passed,
    but a leaf may be a model (large) or hold a lock, so only plain containers are copied.
    """
    if type(value) is dict:
        return {key: _shared_data(item) for key, item in value.items()}
    if type(value) in (list, tuple, set):
        return type(value)(_shared_data(item) for item in value)
    return value


def _recording(init: Callable[..., None]) -> Callable[..., None]:
    """``init``, recording the arguments it was called with (defaults filled) first.

    Only the outermost ``__init__`` of a call records: a subclass's arguments win over the
    ones it passes to ``super().__init__``. ``env`` is not recorded (a spec rebuilds it).
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def recording_init(self: Any, *args: Any, **kwargs: Any) -> None:
        if "_saved_kwargs" not in vars(self):
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            saved: dict[str, Any] = {}
            for name, value in list(bound.arguments.items())[1:]:  # [0] is self
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    saved.update(value)
                elif name != "env":
                    saved[name] = value
            self._saved_kwargs = _shared_data(saved)
        init(self, *args, **kwargs)

    return recording_init


def _validating(init: Callable[..., None], specs: Mapping[str, Spec]) -> Callable[..., None]:
    """``init``, holding each argument that has a spec in ``specs`` to it first.

    The owner in the message is the class being built (a subclass names itself).
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def validating_init(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        owner = type(self).__name__
        for name, value in bound.arguments.items():
            spec = specs.get(name)
            if spec is not None:
                check(owner, name, value, spec)
        init(self, *args, **kwargs)

    return validating_init


class RecordsArguments(gym.utils.RecordConstructorArgs):
    """Records every subclass's constructor arguments by itself (for ``env.spec``), and checks
    them against the specs the subclass declares.

    Gymnasium rebuilds a wrapper stack from ``env.spec`` with the keyword arguments each
    wrapper recorded through :class:`gymnasium.utils.RecordConstructorArgs`. Here each
    subclass's ``__init__`` is wrapped when the class is defined, so a new wrapper records
    its arguments without repeating them by hand; and when the class declares
    :attr:`arguments`, each argument named there is held to its spec before ``__init__``
    runs (a NaN ``scale`` fails at construction, naming it, instead of giving NaN rewards).
    """

    #: The spec of each constructor argument but ``env``
    #: (:mod:`dialogue_gym.core.validation`), declared by the class that defines the
    #: ``__init__``: its type and range, once. ``tests/test_validation.py`` checks every
    #: built-in reward declares one for each argument; a plugin's wrapper may leave it empty.
    arguments: ClassVar[Mapping[str, Spec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in vars(cls):
            init = vars(cls)["__init__"]
            specs = vars(cls).get("arguments")
            if specs:
                init = _validating(init, specs)
            cls.__init__ = _recording(init)  # type: ignore[method-assign]


class ComponentRewardWrapper(gym.Wrapper, RecordsArguments):
    """Base class: replaces the reward and logs its components in ``info``.

    Subclasses set ``parts`` (the names of their raw parts) and implement :meth:`reward`;
    :meth:`combine` says how their reward meets the one below (default: replaces it).
    Every step writes ``name`` (the wrapper's reward) and ``name/part`` for each part; every
    reset writes the same keys as ``0.0``, so vector envs see the same keys each step and an
    autoreset step never shows the previous episode's values.

    A subclass's constructor arguments are recorded for ``env.spec`` by themselves
    (:class:`RecordsArguments`): nothing to repeat in its ``__init__``.

    Args:
        env: The env to wrap (``env.unwrapped`` is an ``EmpathyDialogueEnv``).
        name: The key of this wrapper's reward in ``info["reward_components"]``.
    """

    parts: tuple[str, ...] = ()
    arguments = {"name": text(forbid="/")}

    def __init__(self, env: gym.Env, name: str) -> None:
        gym.Wrapper.__init__(self, env)
        if name in reward_names_below(env):
            raise ValueError(
                f"a reward wrapper named {name!r} is already in this stack; "
                "give this one another name=..."
            )
        self.name = name
        self.keys = (name, *(f"{name}/{part}" for part in self.parts))

    @property
    def spec(self) -> EnvSpec | None:
        if self._cached_spec is None:
            self._cached_spec = wrapper_spec(self)
        return self._cached_spec

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.on_reset(info)
        add_components(info, dict.fromkeys(self.keys, 0.0))
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        own, parts = self.reward(float(reward), terminated, truncated, info)
        entries = {self.name: own}
        entries.update(zip(self.keys[1:], parts, strict=True))
        add_components(info, entries)
        return obs, self.combine(float(reward), own), terminated, truncated, info

    def on_reset(self, info: dict[str, Any]) -> None:
        """Start an episode (after the env's reset). Default: nothing."""

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        """This wrapper's reward and the raw values of ``parts``, from the step below."""
        raise NotImplementedError

    def combine(self, reward_below: float, own: float) -> float:
        """The reward passed up. Default: this wrapper's own, replacing the one below."""
        return own
