"""Reference policies for EmpathyDialogue-v0: baselines every study reports beside learners.

A policy is a callable ``obs -> action`` with a ``reset(seed=None)`` called at the start
of each episode. All four read only the observation, except the oracle, which is told the
hidden need and the user's understanding by the env it is given (an upper bound, not an
agent).

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    >>> policy = StageHeuristicPolicy()
    >>> obs, info = env.reset(seed=0)
    >>> policy.reset(seed=0)
    >>> 0 <= policy(obs) < 8
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import gymnasium as gym
import numpy as np

from dialogue_gym.core.config import DEFAULT_RESOLVERS
from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    NEEDS,
    QUESTION,
    REFLECTION,
    RESTATEMENT,
    STRATEGIES,
    USER_ACTS,
)
from dialogue_gym.registry import Registry

Observation = Mapping[str, np.ndarray]

_RESIST = USER_ACTS.index("resist")
_AGREE = USER_ACTS.index("agree")


class Policy(Protocol):
    """What the evaluation loop and the CLI expect of a policy."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode."""

    def __call__(self, obs: Observation) -> int:
        """Choose the next strategy."""


class RandomPolicy:
    """Uniformly random strategies, from its own seeded generator."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Observation) -> int:
        return int(self.rng.integers(len(STRATEGIES)))


class ConstantPolicy:
    """Always the same strategy (e.g. always-reassure, the soothing trap).

    Args:
        strategy: A strategy index or its name from ``STRATEGIES``.
    """

    def __init__(self, strategy: int | str) -> None:
        if isinstance(strategy, str):
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; valid: {list(STRATEGIES)}")
            strategy = STRATEGIES.index(strategy)
        if not 0 <= int(strategy) < len(STRATEGIES):
            raise ValueError(f"strategy index must be in [0, {len(STRATEGIES)}), got {strategy}")
        self.strategy = int(strategy)

    def reset(self, seed: int | None = None) -> None:
        pass

    def __call__(self, obs: Observation) -> int:
        return self.strategy


class StageHeuristicPolicy:
    """ESConv's stages: explore, then comfort, then the help that fits the revealed cues.

    Explores (questions alternating with restatements) until one need's revealed
    evidence is at least ``confidence`` and leads the runner-up by ``margin`` (or
    ``max_explore`` turns have passed); comforts once; then gives the strategy that meets
    the leading need (``resolvers``, ESConv domain knowledge); after the user agrees it
    comforts, alternating, until they thank it. If the user resists help, it goes back
    to exploring.

    Args:
        confidence: Evidence needed for the leading need before acting on it.
        margin: Lead over the runner-up needed before acting.
        max_explore: Exploring turns after which it acts on the best guess anyway.
        resolvers: Need -> strategies that meet it (the simulator's default mapping).
    """

    def __init__(
        self,
        confidence: float = 0.6,
        margin: float = 0.25,
        max_explore: int = 4,
        resolvers: Mapping[str, tuple[int, ...]] = DEFAULT_RESOLVERS,
    ) -> None:
        self.confidence = confidence
        self.margin = margin
        self.max_explore = max_explore
        self.resolvers = dict(resolvers)
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._explored = 0
        self._comforted = 0
        self._helped = False
        self._last = -1

    def decide(self, user_act: int, cues: Sequence[float]) -> int:
        """The rule itself, on what the agent observes: the user's last act (its index in
        ``USER_ACTS``, -1 before the first) and the revealed evidence of each need. Records
        the choice (the next call alternates on it) and returns it.

        :meth:`__call__` reads these off an observation; the look-ahead's rollout
        (``rewards.rollout.StageHeuristicRollout``) reads them off a user model: one rule.
        """
        best = max(cues)
        second = sorted(cues)[-2]
        confident = best >= self.confidence and best - second >= self.margin
        last = self._last
        if user_act == _AGREE:
            act = REFLECTION if last != REFLECTION else AFFIRMATION
        elif self._helped or (user_act == _RESIST and last not in (QUESTION, RESTATEMENT)):
            # The help did not land: the need is not understood well enough yet.
            self._helped = False
            self._comforted = 1
            act = QUESTION if last != QUESTION else RESTATEMENT
        elif not confident and self._explored < self.max_explore:
            self._explored += 1
            act = QUESTION if last != QUESTION else RESTATEMENT
        elif self._comforted < 1:
            self._comforted += 1
            act = REFLECTION if last != REFLECTION else AFFIRMATION
        else:
            # The first need with the most evidence (as a stable sort ranks it).
            act = self.resolvers[NEEDS[list(cues).index(best)]][0]
            if act == last:
                act = REFLECTION if act != REFLECTION else AFFIRMATION
            else:
                self._helped = True
        self._last = act
        return act

    def __call__(self, obs: Observation) -> int:
        user_act = int(np.argmax(obs["user_act"])) if obs["user_act"].any() else -1
        return self.decide(user_act, np.asarray(obs["need_cues"], dtype=float).tolist())


class OraclePolicy:
    """Knows the hidden need and how far the user feels understood: an upper bound.

    It explores until the user is ready for help, comforts while emotion is low, meets the
    need, then comforts (alternating) until the user thanks it.

    Args:
        env: The env whose user it reads: ``env.unwrapped.fork_user()``, the look-ahead user
            model of the published simulator view (a copy: reading it changes nothing).
    """

    def __init__(self, env: gym.Env) -> None:
        self.env = env
        self._last = -1

    def reset(self, seed: int | None = None) -> None:
        self._last = -1

    def _alternate(self, a: int, b: int) -> int:
        return a if self._last != a else b

    def _choose(self, obs: Observation) -> int:
        base = self.env.unwrapped
        user = base.fork_user()
        cfg = user.config
        s = user.state
        if s.resolved:
            return self._alternate(REFLECTION, AFFIRMATION)
        if not user.ready_for_help():
            return self._alternate(QUESTION, RESTATEMENT)
        # Comfort first while the uplift of meeting the need would not reach success.
        if s.emotion + cfg.resolution_uplift < cfg.success_threshold + cfg.max_change and (
            s.turn < base.max_turns - 3
        ):
            comfort = self._alternate(REFLECTION, AFFIRMATION)
            if comfort not in user.resolvers:
                return comfort
        for act in user.resolvers:
            if act != self._last:
                return act
        return next(iter(user.resolvers))

    def __call__(self, obs: Observation) -> int:
        self._last = self._choose(obs)
        return self._last


#: Named reference policies, for the CLI, the benchmarks and the study: each factory takes the
#: env. Entries with ``meta["baseline"]`` are the ones the reward study reports beside its
#: learners (:func:`baselines`).
REFERENCE_POLICIES: Registry[Policy] = Registry("reference policy")
REFERENCE_POLICIES.register(
    "random", lambda env: RandomPolicy(), doc="a uniformly random strategy", baseline=True
)
REFERENCE_POLICIES.register(
    "always-question", lambda env: ConstantPolicy("Question"), doc="always asks a question"
)
REFERENCE_POLICIES.register(
    "always-reassure",
    lambda env: ConstantPolicy("Affirmation and Reassurance"),
    doc="always reassures",
    baseline=True,
)
REFERENCE_POLICIES.register(
    "always-suggest",
    lambda env: ConstantPolicy("Providing Suggestions"),
    doc="always suggests",
)
REFERENCE_POLICIES.register(
    "stage-heuristic",
    lambda env: StageHeuristicPolicy(),
    doc="explore, then comfort, then act on the need the cues point to",
    baseline=True,
)
REFERENCE_POLICIES.register(
    "oracle",
    lambda env: OraclePolicy(env),
    doc="told the hidden need: an upper bound, not an agent",
    baseline=True,
)


def baselines() -> tuple[str, ...]:
    """The reference policies the reward study reports, in registration order.

    Example:
        >>> baselines()
        ('random', 'always-reassure', 'stage-heuristic', 'oracle')
    """
    return tuple(
        name
        for name in REFERENCE_POLICIES
        if (REFERENCE_POLICIES.entry(name).meta or {}).get("baseline")
    )


def make_policy(name: str, env: gym.Env) -> Policy:
    """Build a named reference policy for ``env``.

    Raises:
        ValueError: Unknown name (the message lists the valid ones).

    Example:
        >>> make_policy("always-reassure", None).strategy
        4
    """
    return REFERENCE_POLICIES.build(name, env)
