"""The reward names ``gym.make(..., reward=...)`` accepts, and how each wraps the env.

Two :class:`~dialogue_gym.registry.Registry` objects, read by everything that lists rewards
(the CLI's and the study's choices, the metrics' ``return/<name>`` probes, the study's
report, the docs):

- :data:`REWARDS`: ``reward=`` name -> ``wrap(env, **reward_kwargs)``; each entry's
  ``meta["components"]`` names the ``info["reward_components"]`` keys whose per-turn sum is
  the reward it pays (``None``: not a sum of components, e.g. ``composite``);
- :data:`COMPONENT_WRAPPERS`: component name -> a wrapper that takes ``name=`` and logs its
  reward under it; the metrics' probes stack every one of them (:func:`probe_order`), and
  ``composite`` adds the ones its weights name.

:func:`register_reward` adds a plugin reward to both (to the second when its wrapper takes
``name=``), so one call makes it appear everywhere.

Example:
    >>> list(REWARDS)[:2], DEFAULT_REWARD in REWARDS
    (['sparse', 'final_emotion'], True)
    >>> reward_probes()["potential_emotion"]  # shaping is paid on top of the coarse bonus
    ('sparse', 'potential_emotion')
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from dialogue_gym.registry import Registry
from dialogue_gym.rewards.base import COMPONENTS_KEY, add_components
from dialogue_gym.rewards.composite import CompositeReward
from dialogue_gym.rewards.emotion_delta import EmotionDeltaReward
from dialogue_gym.rewards.multi_turn import MultiTurnValueReward
from dialogue_gym.rewards.next_turn import NextTurnReward
from dialogue_gym.rewards.potential import PotentialShapedEmotion
from dialogue_gym.rewards.sparse import SparseBonus

__all__ = [
    "COMPONENT_WRAPPERS",
    "DEFAULT_REWARD",
    "REWARDS",
    "PlainRewardProbe",
    "apply_reward",
    "probe_order",
    "register_reward",
    "reward_components",
    "reward_probes",
    "unregister_reward",
]

#: The reward the registered envs pay when ``gym.make`` is given no ``reward``: the coarse
#: bonus the bare env pays (1 on success), with its components in ``info``.
DEFAULT_REWARD = "sparse"

#: Component name -> a wrapper ``(env, name=..., **kwargs)`` logging one reward under ``name``.
COMPONENT_WRAPPERS: Registry[gym.Env] = Registry("reward component")

#: ``reward=`` name -> how it wraps the env (``reward_kwargs`` go to the named wrapper).
REWARDS: Registry[gym.Env] = Registry("reward")


def _final_emotion(env: gym.Env, **kwargs: Any) -> gym.Env:
    return SparseBonus(env, kind="final_emotion", **kwargs)


def _potential_on_sparse(env: gym.Env, **kwargs: Any) -> gym.Env:
    return PotentialShapedEmotion(SparseBonus(env), **kwargs)


def _takes_name(wrap: Callable[..., Any]) -> bool:
    """Whether ``wrap`` accepts a ``name=`` keyword (so the probes can stack it under its name)."""
    try:
        parameters = inspect.signature(wrap).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): do not guess
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == "name" and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in parameters
    )


class _RewardTap(gym.Wrapper):
    """The bottom of a :class:`PlainRewardProbe`'s own stack: it keeps the real step's reward
    and ``info`` and hands the wrapper above a copy (whatever it logs stays in the copy)."""

    last: tuple[float, dict[str, Any]] = (0.0, {})

    @staticmethod
    def _copy(info: dict[str, Any]) -> dict[str, Any]:
        return {**info, COMPONENTS_KEY: dict(info.get(COMPONENTS_KEY, {}))}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.last = (0.0, info)
        return obs, self._copy(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.last = (float(reward), info)
        return obs, reward, terminated, truncated, self._copy(info)


class PlainRewardProbe(gym.Wrapper):
    """A plain reward wrapper (a ``gym.Wrapper`` that takes no ``name=``, as Gymnasium's
    tutorials write one, or a function building a wrapper) measured like the built-in rewards.

    It runs ``wrap(env, **kwargs)`` as a stack of its own over the env below, logs the reward
    that stack pays under ``name`` in ``info["reward_components"]`` and passes on the reward and
    ``info`` of the env below unchanged: what the wrapped stack logs stays inside it, and its
    wrappers are not in the outer stack (a plugin's ``EmotionDeltaReward`` meets no built-in
    ``emotion_delta``). So it stacks with the other probes: an evaluation reports
    ``return/<name>`` and the study lists it. The probes stack it innermost
    (:func:`probe_order`), where the reward it receives is the env's own, as under
    ``gym.make(..., reward=name)``. Observations and episode ends pass as the stack gives them.

    Example:
        >>> class Double(gym.Wrapper):
        ...     def step(self, action):
        ...         obs, r, term, trunc, info = self.env.step(action)
        ...         return obs, 2 * r - 1, term, trunc, info
        >>> env = PlainRewardProbe(gym.make("EmpathyDialogue-v0", voice="template"), Double, "x2")
        >>> _ = env.reset(seed=0)
        >>> _, r, *_, info = env.step(0)
        >>> r, info["reward_components"]["x2"]
        (0.0, -1.0)
    """

    def __init__(
        self, env: gym.Env, wrap: Callable[..., gym.Env], name: str, **kwargs: Any
    ) -> None:
        super().__init__(env)
        self._tap = _RewardTap(env)
        self._own = wrap(self._tap, **kwargs)
        self.name = name

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, _ = self._own.reset(**kwargs)
        info = self._tap.last[1]
        add_components(info, {self.name: 0.0})
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, paid, terminated, truncated, _ = self._own.step(action)
        reward, info = self._tap.last
        add_components(info, {self.name: float(paid)})
        return obs, reward, terminated, truncated, info


def register_reward(
    name: str,
    wrap: Callable[..., gym.Env],
    *,
    components: tuple[str, ...] | None = None,
    doc: str = "",
) -> None:
    """Make ``gym.make(..., reward=name)`` (and the reward study) use ``wrap(env, **kwargs)``.

    It is also a component (unless ``components`` says it is a sum of others): the metrics'
    probes stack it, so every evaluation measures ``return/<name>`` and the study lists it
    among its default rewards. A wrapper that accepts ``name=`` (a
    :class:`~dialogue_gym.rewards.ComponentRewardWrapper` subclass does) is stacked as
    ``wrap(env, name=name)``; a plain ``gym.Wrapper`` through :class:`PlainRewardProbe`.

    Args:
        name: The new reward's name; it may not shadow a registered one.
        wrap: ``env, **reward_kwargs -> wrapped env``, e.g. a reward wrapper class.
        components: The component keys whose per-turn sum is the reward ``wrap`` pays, when
            it stacks several wrappers (default: ``(name,)``, one wrapper logging under
            ``name``; then ``wrap`` is also registered as that component).
        doc: One line for listings (default: the first line of ``wrap``'s docstring).

    Raises:
        ValueError: If ``name`` is taken.

    Example:
        >>> from functools import partial
        >>> from dialogue_gym.rewards import EmotionDeltaReward
        >>> register_reward("doc_delta", partial(EmotionDeltaReward, scale=0.5, name="doc_delta"))
        >>> "doc_delta" in REWARDS, "doc_delta" in COMPONENT_WRAPPERS
        (True, True)
        >>> unregister_reward("doc_delta")  # (the example cleans up after itself)
        >>> register_reward("sparse", EmotionDeltaReward)
        Traceback (most recent call last):
        ...
        ValueError: reward 'sparse' is already registered
    """
    if name in REWARDS:
        raise ValueError(f"reward {name!r} is already registered")
    component = components is None and name not in COMPONENT_WRAPPERS
    REWARDS.register(name, wrap, doc=doc, components=components or (name,))
    if component:
        probe = wrap if _takes_name(wrap) else functools.partial(PlainRewardProbe, wrap=wrap)
        COMPONENT_WRAPPERS.register(name, probe, doc=doc)


def unregister_reward(name: str) -> None:
    """Remove a reward :func:`register_reward` added (and its component, if it added one).

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
    """
    wrap = REWARDS.entry(name).factory
    REWARDS.unregister(name)
    probe = COMPONENT_WRAPPERS.entry(name).factory if name in COMPONENT_WRAPPERS else None
    if probe is wrap or getattr(probe, "keywords", {}).get("wrap") is wrap:
        COMPONENT_WRAPPERS.unregister(name)


def reward_components(name: str) -> tuple[str, ...] | None:
    """The component keys whose per-turn sum is what ``reward=name`` pays (``None``: not a sum).

    Example:
        >>> reward_components("sparse"), reward_components("composite")
        (('sparse',), None)
    """
    components = (REWARDS.entry(name).meta or {}).get("components")
    return None if components is None else tuple(components)


def reward_probes() -> dict[str, tuple[str, ...]]:
    """Reward name -> its components, for every reward the probes can measure.

    That is every reward that is a sum of registered components (not ``composite``), in
    registration order: the rewards whose ``return/<name>`` an evaluation reports, and that
    the reward study compares by default.

    Example:
        >>> list(reward_probes()) == [n for n in REWARDS if n != "composite"]
        True
    """
    out = {}
    for name in REWARDS:
        components = reward_components(name)
        if components and all(c in COMPONENT_WRAPPERS for c in components):
            out[name] = components
    return out


def probe_order() -> tuple[str, ...]:
    """The component wrappers as the probes stack them, innermost first.

    The default reward goes on top, so the stacked env's own reward is the default one.

    Example:
        >>> probe_order()[-1] == DEFAULT_REWARD
        True
    """
    names = [name for name in COMPONENT_WRAPPERS if name != DEFAULT_REWARD]
    # A plain wrapper's reward is computed from the reward it receives: it goes innermost,
    # where the reward below it is the env's own, as under gym.make(..., reward=name).
    plain = [name for name in names if _is_plain_probe(COMPONENT_WRAPPERS.entry(name).factory)]
    return (*plain, *(n for n in names if n not in plain), DEFAULT_REWARD)


def _is_plain_probe(factory: Callable[..., Any]) -> bool:
    return getattr(factory, "func", None) is PlainRewardProbe


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
        >>> try:
        ...     apply_reward(env, "dense")
        ... except ValueError as err:
        ...     message = str(err)
        >>> message.startswith("unknown reward 'dense'; valid: None, ")
        True
        >>> all(repr(name) in message for name in REWARDS)
        True
    """
    if reward is None:
        if reward_kwargs:
            raise ValueError("reward_kwargs given with reward=None")
        return env
    if reward not in REWARDS:
        valid = ", ".join(["None", *map(repr, sorted(REWARDS))])
        raise ValueError(f"unknown reward {reward!r}; valid: {valid}")
    return REWARDS.build(reward, env, **dict(reward_kwargs or {}))


# The built-ins, in the order listings show them: the coarse bonus first.
_BUILT_IN: tuple[tuple[str, Callable[..., gym.Env], Callable[..., gym.Env], tuple[str, ...]], ...]
_BUILT_IN = (
    ("sparse", SparseBonus, SparseBonus, ("sparse",)),
    ("final_emotion", _final_emotion, _final_emotion, ("final_emotion",)),
    ("next_turn", NextTurnReward, NextTurnReward, ("next_turn",)),
    ("multi_turn", MultiTurnValueReward, MultiTurnValueReward, ("multi_turn",)),
    ("emotion_delta", EmotionDeltaReward, EmotionDeltaReward, ("emotion_delta",)),
    # Shaping needs a task reward below it: reward= stacks it on the coarse bonus, the
    # component alone is the shaping term.
    (
        "potential_emotion",
        _potential_on_sparse,
        PotentialShapedEmotion,
        ("sparse", "potential_emotion"),
    ),
)
_DOCS = {
    "sparse": "the coarse bonus: 1 when the user's need is met (the env's own signal)",
    "final_emotion": "RLVER: the final emotion score / 100, paid at the end",
    "next_turn": "PPDPP: noisy critic verdicts on the user's next turn, every turn",
    "multi_turn": "the change of the expected conversation-level reward of short simulated "
    "futures (advantage form)",
    "emotion_delta": "the change of the emotion score, every turn",
    "potential_emotion": "the coarse bonus plus potential-based shaping on the emotion score",
    "composite": "a weighted sum of other rewards' components",
}
for _name, _wrap, _component, _components in _BUILT_IN:
    REWARDS.register(_name, _wrap, doc=_DOCS[_name], components=_components)
    COMPONENT_WRAPPERS.register(_name, _component, doc=_DOCS[_name])
REWARDS.register("composite", CompositeReward, doc=_DOCS["composite"], components=None)
