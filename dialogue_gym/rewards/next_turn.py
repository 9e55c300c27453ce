"""NextTurnReward: PPDPP's critic, judging only the user's immediate next turn."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.validation import integer, mapping, number, text
from dialogue_gym.rewards.base import ComponentRewardWrapper, episode_rng, factor

#: The verdicts, in order, and PPDPP's mapping of each to a reward (DPDP pays 0.1 for better).
VERDICTS: tuple[str, ...] = ("worse", "same", "better", "solved")
PPDPP_VALUES: Mapping[str, float] = {"worse": -1.0, "same": -0.5, "better": 0.5, "solved": 1.0}


class NextTurnReward(ComponentRewardWrapper):
    """The mean of ``samples`` noisy critic verdicts on the user's next turn (PPDPP).

    Each turn a simulated critic reads the user's answer (``info``: emotion before and
    after, whether the need is resolved, the user's act) and gives one of four verdicts,
    mapped to rewards as PPDPP does: worse -1, same -0.5, better +0.5, solved +1. Like an
    LLM critic sampled at a temperature, it misperceives how the user feels: each sample
    draws ``z ~ N(0, 1)`` and perceives the emotion as ``e' = e_{t+1} + noise x z``. The
    rule, per sample:

    1. the user left (``user_act == "leave"``): **worse**;
    2. the need is resolved and ``e' >= solved_emotion``: **solved**;
    3. ``e' - e_t > same_band``: **better**; ``e' - e_t < -same_band``: **worse**;
    4. otherwise **same**.

    The reward is the mean of the verdicts' values. It looks one turn ahead only: myopic by
    design. The draws come from the wrapper's own generator, seeded from the episode
    (:func:`~dialogue_gym.rewards.base.episode_rng`) and ``seed``, ``samples`` per turn; the
    env's ``np_random`` is never touched.

    Components: ``name`` (the reward) and ``name/worse``, ``name/same``, ``name/better``,
    ``name/solved``: the share of samples with each verdict (the reward is their sum
    weighted by ``values``).

    Args:
        env: The env to wrap.
        samples: Critic samples per turn (PPDPP: 10).
        noise: Standard deviation of the critic's misperception, in emotion points.
        same_band: A perceived change within ``[-same_band, same_band]`` points is "same".
        solved_emotion: Perceived emotion at or above which a resolved need is "solved"
            (SAGE's "good" band and the env's default success threshold: 70).
        values: Reward per verdict; missing keys keep PPDPP's (``{"better": 0.1}`` is DPDP).
        seed: Mixed into the critic's seed, to draw another critic for the same episodes.
        name: Key in ``info["reward_components"]``.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward="next_turn")
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> c = info["reward_components"]
        >>> shares = [c[f"next_turn/{v}"] for v in ("worse", "same", "better", "solved")]
        >>> sum(shares), abs(reward - sum(s * v for s, v in zip(shares, (-1, -0.5, 0.5, 1)))) < 1e-12
        (1.0, True)
    """

    parts = VERDICTS
    # samples: each turn draws that many critic verdicts (PPDPP samples 10).
    arguments = {
        "samples": integer(1, 1000),
        "noise": number(0),
        "same_band": number(0),
        "solved_emotion": number(),
        "values": mapping(factor(), keys=VERDICTS, exact=False, optional=True),
        "seed": integer(0),
        "name": text(forbid="/"),
    }

    def __init__(
        self,
        env: gym.Env,
        samples: int = 10,
        noise: float = 2.0,
        same_band: float = 1.0,
        solved_emotion: float = 70.0,
        values: Mapping[str, float] | None = None,
        seed: int = 0,
        name: str = "next_turn",
    ) -> None:
        super().__init__(env, name)
        self.samples = int(samples)
        self.noise = float(noise)
        self.same_band = float(same_band)
        self.solved_emotion = float(solved_emotion)
        self.values = {**PPDPP_VALUES, **(values or {})}
        self.seed = int(seed)
        self._weights = tuple(self.values[v] for v in VERDICTS)
        self._rng: np.random.Generator | None = None

    def on_reset(self, info: dict[str, Any]) -> None:
        self._rng = episode_rng(self.env, self.seed)

    def verdicts(
        self, emotion_before: float, emotion: float, resolved: bool, user_act: str
    ) -> list[int]:
        """Draw ``samples`` verdicts (indices into ``VERDICTS``) for one user turn."""
        z = self._rng.standard_normal(self.samples).tolist()  # every turn: a fixed stream
        if user_act == "leave":
            return [0] * self.samples
        out = []
        for draw in z:
            perceived = emotion + self.noise * draw
            change = perceived - emotion_before
            if resolved and perceived >= self.solved_emotion:
                out.append(3)
            elif change > self.same_band:
                out.append(2)
            elif change < -self.same_band:
                out.append(0)
            else:
                out.append(1)
        return out

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        verdicts = self.verdicts(
            info["emotion_before"], info["emotion"], bool(info["resolved"]), info["user_act"]
        )
        shares = tuple(verdicts.count(v) / self.samples for v in range(len(VERDICTS)))
        return sum(map(operator.mul, shares, self._weights)), shares
