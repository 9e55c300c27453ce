"""Goal-conditioned low level, for feudal hierarchies in which both levels learn.

:class:`GoalConditioned` gives a low-level learner (the "worker") a goal in its
observation and an intrinsic reward for reaching it; :func:`goal_options` turns a trained
worker into one :class:`~dialogue_gym.agents.options.Option` per goal, so a high-level learner
(the "manager") over :class:`~dialogue_gym.agents.options.Options` picks goals (Dayan and
Hinton's feudal RL; Vezhnevets et al.'s FuN). ``benchmarks/train_feudal.py`` trains both
levels with SB3.

Two kinds of goal:

- ``"act"``: a class of support act the worker should play — ``explore`` (Question,
  Restatement), ``comfort`` (Reflection, Affirmation), ``help`` (Suggestions, Information)
  or ``connect`` (Self-disclosure). Intrinsic reward 1 when the act is of the goal's class
  and the user does not resist it, else 0.
- ``"emotion"``: a target emotion change per turn (e.g. +5). Intrinsic reward
  ``-|change - target| / max_change``.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = GoalConditioned(gym.make("EmpathyDialogue-v0", voice="template"))
    >>> obs, info = env.reset(seed=0)
    >>> obs["goal"].shape, info["goal"] in ACT_GOALS
    ((4,), True)
    >>> env.set_goal("explore")
    >>> obs, reward, *_ = env.step(0)  # a Question: the goal's class
    >>> reward
    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.agents.options import Option, as_low_level_policy
from dialogue_gym.core.vocabulary import COMFORT_ACTS, GROUNDING_ACTS, HELP_ACTS, SELF_DISCLOSURE

#: Act-class goals and the strategies of each class.
ACT_GOALS: dict[str, frozenset[int]] = {
    "explore": GROUNDING_ACTS,
    "comfort": COMFORT_ACTS,
    "help": HELP_ACTS,
    "connect": frozenset({SELF_DISCLOSURE}),
}
#: Default emotion-change goals (points per turn).
EMOTION_GOALS: tuple[float, ...] = (0.0, 3.0, 6.0)


class GoalConditioned(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A worker's view of the env: a goal in the observation, an intrinsic reward.

    The goal is drawn at reset and every ``horizon`` turns from the wrapper's own
    generator (seeded from the reset seed), unless a manager sets it with :meth:`set_goal`.

    Args:
        env: A dialogue env.
        kind: ``"act"`` or ``"emotion"``.
        goals: The goals (names of ``ACT_GOALS`` or emotion changes). Default: all.
        horizon: Turns between goal draws.
        extrinsic_weight: Weight of the wrapped env's reward added to the intrinsic one.
    """

    def __init__(
        self,
        env: gym.Env,
        kind: str = "act",
        goals: Sequence[Any] | None = None,
        horizon: int = 2,
        extrinsic_weight: float = 0.0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, kind=kind, goals=goals, horizon=horizon, extrinsic_weight=extrinsic_weight
        )
        super().__init__(env)
        if kind not in ("act", "emotion"):
            raise ValueError(f"kind must be 'act' or 'emotion', got {kind!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.kind = kind
        if kind == "act":
            self.goals = list(goals) if goals is not None else list(ACT_GOALS)
            unknown = [g for g in self.goals if g not in ACT_GOALS]
            if unknown:
                raise ValueError(f"unknown act goals {unknown}; valid: {sorted(ACT_GOALS)}")
        else:
            self.goals = [float(g) for g in (goals if goals is not None else EMOTION_GOALS)]
        if not self.goals:
            raise ValueError("at least one goal is needed")
        self.horizon = horizon
        self.extrinsic_weight = float(extrinsic_weight)
        spaces = dict(env.observation_space.spaces)
        spaces["goal"] = gym.spaces.Box(0.0, 1.0, (len(self.goals),), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self._rng = np.random.default_rng()
        self._goal = 0
        self._since = 0
        self._pinned = False

    @property
    def goal(self) -> Any:
        """The current goal."""
        return self.goals[self._goal]

    def set_goal(self, goal: Any) -> None:
        """Pin the goal (a manager's choice) until the next :meth:`set_goal` or reset."""
        if goal not in self.goals:
            raise ValueError(f"unknown goal {goal!r}; valid: {self.goals}")
        self._goal = self.goals.index(goal)
        self._since = 0
        self._pinned = True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._pinned = False
        self._draw()
        return self._with_goal(obs), {**info, "goal": self.goal}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        goal = self.goal
        obs, extrinsic, terminated, truncated, info = self.env.step(action)
        act = int(np.asarray(action).reshape(()))
        if self.kind == "act":
            reached = act in ACT_GOALS[goal] and info.get("user_act") != "resist"
            intrinsic = 1.0 if reached else 0.0
        else:
            max_change = self.env.unwrapped.sim_config.max_change or 1.0
            intrinsic = -abs(float(info["change"]) - goal) / max_change
        self._since += 1
        if self._since >= self.horizon and not self._pinned:
            self._draw()
        reward = intrinsic + self.extrinsic_weight * float(extrinsic)
        info = {**info, "goal": goal, "intrinsic_reward": intrinsic, "extrinsic_reward": extrinsic}
        return self._with_goal(obs), reward, terminated, truncated, info

    def _draw(self) -> None:
        self._goal = int(self._rng.integers(len(self.goals)))
        self._since = 0

    def _with_goal(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**obs, "goal": self.goal_vector(self.goal)}

    def goal_vector(self, goal: Any) -> np.ndarray:
        """The one-hot encoding of ``goal`` the worker sees."""
        vec = np.zeros(len(self.goals), np.float32)
        vec[self.goals.index(goal)] = 1.0
        return vec


def goal_options(worker: Any, goals: Sequence[Any], horizon: int = 2) -> list[Option]:
    """One option per goal: the trained worker, told that goal, for ``horizon`` turns.

    Args:
        worker: A policy over the goal-conditioned observation (callable or SB3 model).
        goals: The goals, in the order the worker was trained with.
        horizon: Turns each option runs.
    """
    policy = as_low_level_policy(worker)
    options = []
    for i, goal in enumerate(goals):
        one_hot = np.zeros(len(goals), np.float32)
        one_hot[i] = 1.0

        def run(obs: Mapping[str, np.ndarray], _goal: np.ndarray = one_hot) -> int:
            return policy({**obs, "goal": _goal})

        options.append(Option(str(goal), run, max_turns=horizon))
    return options
