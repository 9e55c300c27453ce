"""SparseBonus: the coarse end-of-episode bonus, or RLVER's final-emotion reward."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from dialogue_gym.core.validation import choice, text
from dialogue_gym.rewards.base import COMPONENTS_KEY, ComponentRewardWrapper, add_components, factor

_KINDS = ("success", "final_emotion")


class SparseBonus(ComponentRewardWrapper):
    """0 on every turn until the episode ends; then the bonus.

    - ``kind="success"`` (the coarse bonus): ``bonus`` if the user's need is resolved and
      they thank the agent (success), else 0.
    - ``kind="final_emotion"`` (RLVER): ``bonus x max(e_T / 100, 0)`` with ``e_T`` the final
      emotion score, paid once at the end whether the episode terminated or was truncated.
      ``bonus=1`` is RLVER's reward exactly.

    In both kinds ``leave_penalty`` is subtracted when the user leaves (emotion fell to the
    leave threshold).

    Components: ``name`` (the reward); ``name/success`` (1.0 on a successful end) or
    ``name/emotion`` (``max(e_T/100, 0)`` at the end); ``name/left`` (1.0 when the user
    left). All 0.0 before the end.

    Args:
        env: The env to wrap.
        bonus: Weight of the success indicator (or of the final emotion level).
        leave_penalty: Subtracted when the user leaves (``1.0`` gives -1 for leaving).
        kind: ``"success"`` or ``"final_emotion"``.
        name: Key in ``info["reward_components"]``; by default the kind's name
            (``"sparse"`` or ``"final_emotion"``).

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = SparseBonus(
        ...     gym.make("EmpathyDialogue-v0", voice="template", reward=None),
        ...     kind="final_emotion",
        ... )
        >>> _ = env.reset(seed=0)
        >>> _, reward, terminated, truncated, info = env.step(0)
        >>> reward, info["reward_components"]["final_emotion"]
        (0.0, 0.0)
    """

    arguments = {
        "bonus": factor(),
        "leave_penalty": factor(),
        "kind": choice(*_KINDS),
        "name": text(forbid="/", optional=True),
    }

    def __init__(
        self,
        env: gym.Env,
        bonus: float = 1.0,
        leave_penalty: float = 0.0,
        kind: str = "success",
        name: str | None = None,
    ) -> None:
        self.parts = ("success" if kind == "success" else "emotion", "left")
        super().__init__(env, name or ("sparse" if kind == "success" else "final_emotion"))
        self.bonus = float(bonus)
        self.leave_penalty = float(leave_penalty)
        self.kind = kind

    #: Whether :meth:`reward` is 0 with all parts 0 before the end and :meth:`combine` passes
    #: it on (so :meth:`step` may skip both); a subclass that overrides either is not.
    _zero_until_end = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._zero_until_end = (
            cls.reward is SparseBonus.reward and cls.combine is SparseBonus.combine
        )

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        # gym.make's default wrapper, so on every user's hot path: the base class's step
        # without its calls before the episode's end (all zeros then), and without its
        # per-key collision checks when no wrapper below wrote components.
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._zero_until_end and not (terminated or truncated):
            own = 0.0
            entries = dict.fromkeys(self.keys, 0.0)
        else:
            reward = float(reward)
            own, parts = self.reward(reward, terminated, truncated, info)
            entries = dict(zip(self.keys, (own, *parts), strict=True))
            own = self.combine(reward, own)
        if COMPONENTS_KEY in info:
            add_components(info, entries)
        else:
            info[COMPONENTS_KEY] = entries
        return obs, own, terminated, truncated, info

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        if not (terminated or truncated):
            return 0.0, (0.0, 0.0)
        if self.kind == "success":
            value = 1.0 if info["success"] else 0.0
        else:
            value = max(info["emotion"] / 100.0, 0.0)
        left = 1.0 if info["user_left"] else 0.0
        return self.bonus * value - self.leave_penalty * left, (value, left)
