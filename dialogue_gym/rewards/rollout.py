"""The default rollout policy for look-ahead: ESConv's stage heuristic, read off a user model.

Building an observation costs about as much as a step of the user's dynamics; a look-ahead
of k futures of w turns would build k x w of them. :class:`StageHeuristicRollout` applies
:class:`~dialogue_gym.agents.reference.StageHeuristicPolicy`'s rule to the same observable quantities
(the revealed need cues, the user's last act) read directly from a look-ahead user model's
state (``env.unwrapped.fork_user()``), rounded to ``float32`` as the observation rounds them,
so it chooses exactly what the policy would choose from ``env.observe(user)``.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogue-v0", voice="template")
    >>> _ = env.reset(seed=0)
    >>> user = env.unwrapped.fork_user()  # the look-ahead user model
    >>> StageHeuristicRollout().act_core(user) == StageHeuristicPolicy()(env.unwrapped.observe(user))
    True
"""

from __future__ import annotations

from array import array
from typing import Any, Protocol, runtime_checkable

from dialogue_gym.agents.reference import StageHeuristicPolicy
from dialogue_gym.core.vocabulary import (
    USER_ACTS,
)

_USER_ACT_INDEX = {act: i for i, act in enumerate(USER_ACTS)}
_RESIST = USER_ACTS.index("resist")
_AGREE = USER_ACTS.index("agree")


@runtime_checkable
class CorePolicy(Protocol):
    """A rollout policy that reads a look-ahead user model instead of an observation (faster)."""

    def reset(self, seed: int | None = None) -> None:
        """Start a new rollout."""

    def act_core(self, core: Any) -> int:
        """Choose the next strategy from ``core``'s state (observable parts only)."""


class StageHeuristicRollout(StageHeuristicPolicy):
    """:class:`~dialogue_gym.agents.reference.StageHeuristicPolicy`, reading a core instead of an observation.

    Takes the same arguments; ``policy(obs)`` still works, ``policy.act_core(core)`` is the
    fast path the look-ahead uses.
    """

    def __copy__(self) -> StageHeuristicRollout:
        # The look-ahead copies the policy once per future: skip copy's generic protocol.
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def act_core(self, core: Any) -> int:
        """Choose the next strategy from ``core``'s revealed cues and the user's last act."""
        state = core.state
        # float32, as the observation holds the cues: the same rule sees the same numbers.
        return self.decide(_USER_ACT_INDEX[state.user_act], array("f", state.evidence).tolist())
