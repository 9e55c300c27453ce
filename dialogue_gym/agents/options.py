"""Options: a high-level policy picks a low-level policy that runs until it terminates.

:class:`Options` turns a dialogue env into a semi-MDP (Sutton, Precup and Singh, 1999):
its action picks an :class:`Option` — a low-level policy plus a termination condition —
which then plays primitive strategies until it terminates or the episode ends. The
high-level step returns the SMDP transition: the discounted sum of the wrapped env's
rewards ``sum_k gamma^k r_k`` over the option's turns, with ``info["option_turns"]`` (the
number of turns, so a learner can discount by ``gamma ** option_turns``) and
``info["primitive"]`` (every primitive transition, for intra-option learners).

It wraps whatever reward wrapper the env has, and works under SB3 and ``make_vec``.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = Options(gym.make("EmpathyDialogue-v0", voice="template"), gamma=0.9)
    >>> env.action_space
    Discrete(5)
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(env.option_index("explore"))
    >>> info["option"], info["option_turns"], len(info["primitive"])
    ('explore', 2, 2)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    INFORMATION,
    QUESTION,
    REFLECTION,
    RESTATEMENT,
    SELF_DISCLOSURE,
    SUGGESTION,
)
from dialogue_gym.registry import Registry

Observation = Mapping[str, np.ndarray]
LowLevelPolicy = Callable[[Observation], int]


def _alternate(a: int, b: int) -> LowLevelPolicy:
    """A mini-policy that plays ``a``, or ``b`` when the last act was ``a`` (no repeats)."""

    def policy(obs: Observation) -> int:
        return b if obs["last_act"][a] > 0 else a

    return policy


def _constant(a: int) -> LowLevelPolicy:
    def policy(obs: Observation) -> int:
        return a

    return policy


def as_low_level_policy(policy: Any) -> LowLevelPolicy:
    """Accept a callable ``obs -> action`` or anything with SB3's ``predict``."""
    if hasattr(policy, "predict"):
        model = policy

        def predict(obs: Observation) -> int:
            action, _ = model.predict(obs, deterministic=True)
            return int(np.asarray(action).reshape(()))

        return predict
    if callable(policy):
        return policy
    raise TypeError(f"an option's policy must be callable or have predict(), got {policy!r}")


@dataclass(frozen=True)
class Option:
    """A low-level policy and when it stops.

    Attributes:
        name: What the high level calls it.
        policy: ``obs -> strategy`` (a callable, or an SB3 model: its ``predict`` is used).
        max_turns: The option terminates after this many turns.
        until: Optional predicate on the observation after a turn; the option terminates
            as soon as it is true.
    """

    name: str
    policy: Any
    max_turns: int = 1
    until: Callable[[Observation], bool] | None = None

    def __post_init__(self) -> None:
        if self.max_turns < 1:
            raise ValueError(f"option {self.name!r}: max_turns must be >= 1, got {self.max_turns}")
        as_low_level_policy(self.policy)


def _cues_clear(obs: Observation, confidence: float = 0.6) -> bool:
    return float(np.max(obs["need_cues"])) >= confidence


#: The options, by name: a :class:`~dialogue_gym.registry.Registry` whose entries build an
#: :class:`Option` (``BUILTIN_OPTIONS.build("comfort")``); :func:`register_option` adds one, and
#: ``Options(env, options=["...", ...])`` and :class:`HierarchicalPolicy` take its names.
#: The built-ins, each a documented mini-policy over ESConv's strategies:
#:
#: - ``explore``: Question and Restatement, alternating, for up to 2 turns, stopping early
#:   once one need's revealed evidence reaches 0.6 (ESConv's exploration stage);
#: - ``comfort``: Reflection of feelings and Affirmation and Reassurance, alternating, up to
#:   2 turns (comforting stage; also what meets the emotional needs once understood);
#: - ``suggest``: one Providing Suggestions turn;
#: - ``inform``: one Information turn;
#: - ``disclose``: one Self-disclosure turn (meets a need for shared experience).
BUILTIN_OPTIONS: Registry[Option] = Registry("option")


def register_option(option: Option, *, doc: str = "") -> Option:
    """Register ``option`` under its name, for ``Options`` and ``HierarchicalPolicy`` to take.

    Raises:
        ValueError: The name is taken.

    Example:
        >>> with BUILTIN_OPTIONS.restoring():
        ...     _ = register_option(Option("ask", _constant(QUESTION), 1), doc="one question")
        ...     BUILTIN_OPTIONS.build("ask").max_turns
        1
        >>> "ask" in BUILTIN_OPTIONS
        False
    """
    BUILTIN_OPTIONS.register(option.name, lambda: option, doc=doc)
    return option


register_option(
    Option("explore", _alternate(QUESTION, RESTATEMENT), 2, _cues_clear),
    doc="Question and Restatement, alternating, until a need's evidence reaches 0.6",
)
register_option(
    Option("comfort", _alternate(REFLECTION, AFFIRMATION), 2),
    doc="Reflection of feelings and Affirmation and Reassurance, alternating",
)
register_option(Option("suggest", _constant(SUGGESTION), 1), doc="one Providing Suggestions turn")
register_option(Option("inform", _constant(INFORMATION), 1), doc="one Information turn")
register_option(Option("disclose", _constant(SELF_DISCLOSURE), 1), doc="one Self-disclosure turn")


#: The options ``Options(env)`` plays when none are named: the five built-ins, in this action
#: order (a registered plugin option joins only when named, so the default action space and
#: the study's hierarchical runs stay as they were).
DEFAULT_OPTIONS: tuple[str, ...] = ("explore", "comfort", "suggest", "inform", "disclose")


def resolve_options(options: Sequence[Option | str] | None) -> list[Option]:
    """``Option`` objects and registered names -> options (default: :data:`DEFAULT_OPTIONS`).

    Raises:
        ValueError: An unknown name (the message lists the registered ones), or no option.
    """
    chosen = list(options) if options is not None else list(DEFAULT_OPTIONS)
    if not chosen:
        raise ValueError("Options needs at least one option")
    return [BUILTIN_OPTIONS.build(o) if isinstance(o, str) else o for o in chosen]


class Options(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The SMDP over options: each high-level action runs one option to its end.

    Args:
        env: A dialogue env (any reward wrapper may sit inside).
        options: The options (``Option`` objects or names of built-in ones), in action
            order. Default: the five built-ins.
        gamma: Discount applied inside an option: the step's reward is
            ``sum_k gamma**k * r_k``.
    """

    def __init__(
        self,
        env: gym.Env,
        options: Sequence[Option | str] | None = None,
        gamma: float = 0.99,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, options=options, gamma=gamma)
        super().__init__(env)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        self.options: list[Option] = resolve_options(options)
        self._policies = [as_low_level_policy(o.policy) for o in self.options]
        self.gamma = float(gamma)
        self.action_space = gym.spaces.Discrete(len(self.options))
        self._obs: Observation | None = None

    def option_index(self, name: str) -> int:
        """The action that runs the option called ``name``."""
        for i, opt in enumerate(self.options):
            if opt.name == name:
                return i
        raise ValueError(f"no option {name!r}; have {[o.name for o in self.options]}")

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Run the chosen option until it terminates or the episode ends."""
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        index = int(np.asarray(action).reshape(())) if not isinstance(action, int) else action
        if not self.action_space.contains(index):
            raise ValueError(
                f"action {action!r} is outside Discrete({len(self.options)}): options are "
                f"{[f'{i}={o.name}' for i, o in enumerate(self.options)]}"
            )
        option, policy = self.options[index], self._policies[index]
        obs = self._obs
        total, discount = 0.0, 1.0
        primitive: list[dict[str, Any]] = []
        terminated = truncated = False
        info: dict[str, Any] = {}
        while True:
            act = int(policy(obs))
            next_obs, reward, terminated, truncated, info = self.env.step(act)
            primitive.append(
                {
                    "obs": obs,
                    "action": act,
                    "reward": float(reward),
                    "next_obs": next_obs,
                    "terminated": terminated,
                    "truncated": truncated,
                }
            )
            total += discount * float(reward)
            discount *= self.gamma
            obs = next_obs
            if terminated or truncated or len(primitive) >= option.max_turns:
                break
            if option.until is not None and option.until(obs):
                break
        self._obs = obs
        info = {
            **info,
            "option": option.name,
            "option_turns": len(primitive),
            "primitive": primitive,
        }
        return obs, total, terminated, truncated, info


class HierarchicalPolicy:
    """A high-level policy over options, played one primitive turn at a time.

    It makes the same choices as the policy acting in :class:`Options` — pick an option,
    follow it until its ``max_turns`` or its ``until`` predicate — but answers each turn
    with a strategy, so it can act in the bare env and be measured like any flat policy.

    Args:
        manager: Picks an option index from an observation: a callable or an SB3 model.
        options: The options, in the manager's action order (``Option`` objects or names of
            built-in ones; default: the five built-ins).

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> from dialogue_gym.evaluation.episodes import run_episode
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
        >>> policy = HierarchicalPolicy(lambda obs: 0)  # always "explore"
        >>> run_episode(env, policy, seed=0).strategies[:2]
        [0, 1]
        >>> policy.chosen[0]
        'explore'
    """

    def __init__(self, manager: Any, options: Sequence[Option | str] | None = None) -> None:
        self.options = resolve_options(options)
        self._manager = as_low_level_policy(manager)
        self._policies = [as_low_level_policy(o.policy) for o in self.options]
        self._current: int | None = None
        self._turns = 0
        self.chosen: list[str] = []
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Forget the option in progress (call at each episode start)."""
        if hasattr(self._manager, "reset"):  # a recurrent manager's memory, for one
            self._manager.reset(seed=seed)
        self._current = None
        self._turns = 0
        self.chosen = []  # the names of the options picked this episode, in order

    def _option_over(self, obs: Observation) -> bool:
        if self._current is None:
            return True
        option = self.options[self._current]
        if self._turns >= option.max_turns:
            return True
        # Options checks ``until`` on the observation after a turn: that is this one.
        return option.until is not None and bool(option.until(obs))

    def __call__(self, obs: Observation) -> int:
        if self._option_over(obs):
            index = int(self._manager(obs))
            if not 0 <= index < len(self.options):
                raise ValueError(f"the manager chose option {index}; have {len(self.options)}")
            self._current, self._turns = index, 0
            self.chosen.append(self.options[index].name)
        self._turns += 1
        return int(self._policies[self._current](obs))
