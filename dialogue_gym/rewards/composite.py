"""CompositeReward: a weighted sum of named reward components."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from dialogue_gym.core.validation import InvalidArgument, anything, mapping, text
from dialogue_gym.rewards.base import (
    COMPONENTS_KEY,
    ComponentRewardWrapper,
    factor,
    iter_wrappers,
    reward_names_below,
)


class CompositeReward(ComponentRewardWrapper):
    """``sum(weight x info["reward_components"][name])`` over ``weights``.

    The names are components written by reward wrappers below (a wrapper's ``name`` or one
    of its parts, ``"multi_turn/emotion"``). A name whose wrapper is not in the stack yet
    and is one of the built-in rewards (``"sparse"``, ``"final_emotion"``, ``"next_turn"``,
    ``"multi_turn"``, ``"emotion_delta"``, ``"potential_emotion"``) is added below this
    wrapper, with its defaults or the arguments in ``reward_kwargs[name]``. Any other name
    fails at construction (an ``InvalidArgument`` naming it and the registered components),
    not at the first step. A weight of 0 keeps the component in ``info`` without adding it to
    the sum. ``"potential_emotion"`` adds only its shaping term here.

    Components: ``name`` (the weighted sum); the summed components are already logged.

    Args:
        env: The env to wrap.
        weights: Component name -> weight.
        reward_kwargs: Built-in reward name -> keyword arguments, for the ones added here.
        name: Key in ``info["reward_components"]``.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward="composite",
        ...                reward_kwargs={"weights": {"sparse": 1.0, "emotion_delta": 0.5}})
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> c = info["reward_components"]
        >>> reward == c["composite"] == 1.0 * c["sparse"] + 0.5 * c["emotion_delta"]
        True
    """

    arguments = {
        "weights": mapping(factor(), min_len=1),
        "reward_kwargs": mapping(
            anything("a mapping of keyword arguments", lambda kw: isinstance(kw, Mapping)),
            optional=True,
        ),
        "name": text(forbid="/"),
    }

    def __init__(
        self,
        env: gym.Env,
        weights: Mapping[str, float],
        reward_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        name: str = "composite",
    ) -> None:
        from dialogue_gym.rewards.registry import COMPONENT_WRAPPERS

        owner = type(self).__name__
        reward_kwargs = dict(reward_kwargs or {})
        wanted = {key.partition("/")[0] for key in weights}
        for base in reward_kwargs:
            if base not in wanted:
                raise InvalidArgument(
                    owner, f"reward_kwargs[{base!r}]", reward_kwargs[base], "reward not in weights"
                )
        for key in weights:
            base = key.partition("/")[0]
            if base in COMPONENT_WRAPPERS and base not in reward_names_below(env):
                env = COMPONENT_WRAPPERS[base](env, **reward_kwargs.get(base, {}))
        # Every summed component must be written below, or each step would fail: say so now.
        below = {
            k for w in iter_wrappers(env) if isinstance(w, ComponentRewardWrapper) for k in w.keys
        }
        for key, weight in weights.items():
            if key not in below:
                registered = ", ".join(map(repr, COMPONENT_WRAPPERS))
                raise InvalidArgument(
                    owner,
                    f"weights[{key!r}]",
                    weight,
                    f"no reward component {key!r} below this wrapper; registered components: "
                    f"{registered} (or one of their parts, e.g. 'multi_turn/emotion'); in this "
                    f"stack: {', '.join(map(repr, sorted(below)))}",
                )
        super().__init__(env, name)
        self.weights = {key: float(weight) for key, weight in weights.items()}
        self._summed = [(key, w) for key, w in self.weights.items() if w != 0.0]

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        components = info.get(COMPONENTS_KEY, {})
        try:
            total = sum(w * components[key] for key, w in self._summed)
        except KeyError as missing:
            raise KeyError(
                f"component {missing} is not in info[{COMPONENTS_KEY!r}]; "
                f"there are: {sorted(components)}"
            ) from None
        return float(total), ()
