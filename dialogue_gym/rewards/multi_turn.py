"""MultiTurnValueReward: CollabLLM's multiturn-aware reward, by look-ahead on forked users."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.validation import anything, boolean, choice, integer, text
from dialogue_gym.rewards.base import ComponentRewardWrapper, episode_rng, factor
from dialogue_gym.rewards.rollout import CorePolicy, StageHeuristicRollout

_MODES = ("value", "advantage")


def copy_state(state: Any) -> Any:
    """``state.copy()``: an independent copy of a user's state.

    Kept for code that imported it; the look-ahead now forks user models
    (``env.unwrapped.fork_user``), whose state copy is the fast one.
    """
    return state.copy()


class MultiTurnValueReward(ComponentRewardWrapper):
    """The expected conversation-level reward of ``samples`` simulated futures of ``horizon`` turns.

    CollabLLM's multiturn-aware reward: after each real turn, fork the simulated user,
    continue the conversation ``samples`` times for a window of ``horizon`` more agent turns
    with ``rollout_policy`` (each future with its own noise), score each finished window with
    the conversation-level reward ``R*`` and average. No discount: the window replaces it.

    ``R* = success_weight x success + progress_weight x progress + emotion_weight x e / 100
    - min(cost x turns, 1)`` at the window's end, where ``success`` is 1 if the user thanked
    the agent with the need met, ``progress = (min(understanding / understanding_needed, 1) +
    resolved) / 2`` (how far the hidden need is drawn out and met), ``e`` the emotion score
    and ``turns`` the conversation's agent turns so far (CollabLLM's ``-min(lambda x
    tokens, 1)`` with the agent turn as the unit). A future stops early when the user thanks
    the agent or leaves, or at ``max_turns``. On the episode's last step there is no future:
    ``R*`` of the real conversation is the value.

    ``mode="advantage"`` (the default) pays ``MR_t - MR_{t-1}`` (``MR_{-1}`` is the value of
    the reset state), whose sum over an episode telescopes to ``R*(end) - MR_{-1}``: the
    return does not grow with the episode's length. ``mode="value"`` pays the value ``MR_t``
    itself each turn, as CollabLLM scores each response: CollabLLM trains a per-turn bandit,
    but in a multi-step MDP with a discount near 1 the return is then a sum of levels over
    turns, so a longer conversation earns more (the study measures what that does:
    ``docs/rewards.md``). The advantage form is the faithful transplant; the study runs the
    value form beside it as ``multi_turn_value``.

    The look-ahead steps look-ahead user models (``env.unwrapped.fork_user(noise=...)``, part
    of the published simulator view), ``samples`` futures in lockstep, with no voice and no
    env: the user's dynamics do the work once per turn per future. The noise comes from the wrapper's own generator, seeded from the episode
    (:func:`~dialogue_gym.rewards.base.episode_rng`) and ``seed``; the real env — its user,
    its transcript, its ``np_random`` — is untouched.

    Components: ``name`` (the reward), ``name/value`` (``MR_t``) and the raw averages over
    futures of ``name/success``, ``name/progress``, ``name/emotion`` (``e / 100``) and
    ``name/cost`` (``min(cost x turns, 1)``).

    Args:
        env: The env to wrap (``env.unwrapped`` an ``EmpathyDialogueEnv``).
        horizon: Agent turns in each future's window (CollabLLM's w; 2 is its best).
        samples: Futures per turn (CollabLLM's 3).
        rollout_policy: Who speaks for the agent in the futures: a callable ``obs -> action``
            (given ``env.unwrapped.observe(user)``), or a :class:`CorePolicy` (``act_core``,
            given the user model).
            A shallow copy per future is ``reset(seed=...)`` first, if it has ``reset``.
            Default: :class:`StageHeuristicRollout`, ESConv's stages, started fresh each
            look-ahead.
        cost: CollabLLM's lambda, per agent turn.
        mode: ``"advantage"`` (pays the change of the value) or ``"value"`` (pays the value).
        success_weight: Weight of success in ``R*``.
        progress_weight: Weight of progress in ``R*``.
        emotion_weight: Weight of the emotion level in ``R*``.
        lookahead_voice: Step whole env forks with their voices instead of bare cores (the
            rollout policy then sees the env's own observations, and its actions must be
            actions of the env; far slower with an LLM).
        seed: Mixed into the look-ahead's seed, to sample other futures for the same episodes.
        name: Key in ``info["reward_components"]``.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", reward="multi_turn")
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> c = info["reward_components"]
        >>> expected = (c["multi_turn/success"] + 0.5 * c["multi_turn/progress"]
        ...     + 0.5 * c["multi_turn/emotion"] - c["multi_turn/cost"])
        >>> abs(c["multi_turn/value"] - expected) < 1e-12  # MR_t; the reward is its change
        True
        >>> value = gym.make("EmpathyDialogue-v0", voice="template", reward="multi_turn",
        ...                  reward_kwargs={"mode": "value"})
        >>> _ = value.reset(seed=0)
        >>> _, paid, _, _, info = value.step(0)
        >>> paid == info["reward_components"]["multi_turn/value"]  # the value form pays MR_t
        True
    """

    parts = ("value", "success", "progress", "emotion", "cost")
    # horizon and samples: each turn rolls samples x horizon simulated turns (and draws as
    # much noise); CollabLLM uses 2 and 3.
    arguments = {
        "horizon": integer(1, 1000),
        "samples": integer(1, 1000),
        "rollout_policy": anything(
            "a callable obs -> action, a CorePolicy, or None",
            lambda policy: policy is None or callable(policy) or isinstance(policy, CorePolicy),
        ),
        "cost": factor(0),
        "mode": choice(*_MODES),
        "success_weight": factor(),
        "progress_weight": factor(),
        "emotion_weight": factor(),
        "lookahead_voice": boolean(),
        "seed": integer(0),
        "name": text(forbid="/"),
    }

    def __init__(
        self,
        env: gym.Env,
        horizon: int = 2,
        samples: int = 3,
        rollout_policy: Callable[[Any], int] | CorePolicy | None = None,
        cost: float = 0.01,
        mode: str = "advantage",
        success_weight: float = 1.0,
        progress_weight: float = 0.5,
        emotion_weight: float = 0.5,
        lookahead_voice: bool = False,
        seed: int = 0,
        name: str = "multi_turn",
    ) -> None:
        needed = ("observe", "fork", "fork_user", "episode_key")  # of the simulator view
        if not all(hasattr(env.unwrapped, name) for name in needed):
            raise TypeError(
                f"MultiTurnValueReward needs an EmpathyDialogueEnv below (with {needed}), "
                f"got {env.unwrapped!r}"
            )
        super().__init__(env, name)
        self.horizon = int(horizon)
        self.samples = int(samples)
        if rollout_policy is None:
            rollout_policy = StageHeuristicRollout()
        self.rollout_policy = rollout_policy
        self.cost = float(cost)
        self.mode = mode
        self.weights = (float(success_weight), float(progress_weight), float(emotion_weight))
        self.lookahead_voice = bool(lookahead_voice)
        self.seed = int(seed)
        self._core_policy = isinstance(self.rollout_policy, CorePolicy)
        self._resettable = callable(getattr(self.rollout_policy, "reset", None))
        # The default policy is deterministic: its futures need no seeds.
        self._seeded = self._resettable and not isinstance(
            self.rollout_policy, StageHeuristicRollout
        )
        self._deterministic = (
            type(self.rollout_policy) is StageHeuristicRollout and not self.lookahead_voice
        )
        self._rng: np.random.Generator | None = None
        self._policy_seed = 0
        self._last_value = 0.0
        self._turn = 0  # the real conversation's agent turns, from info

    def on_reset(self, info: dict[str, Any]) -> None:
        self._turn = int(info.get("turn", 0))
        self._rng = episode_rng(self.env, self.seed)
        # The rollout policies' seeds (turn t, future i: base + t x samples + i) come from
        # one draw, so the noise stream is the same whatever the policy.
        self._policy_seed = int(self._rng.integers(2**31 - 1))
        if self.mode == "advantage":
            self._last_value = self.value_of(self.lookahead())

    def reward(
        self, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[float, tuple[float, ...]]:
        # On the last step there is no future: the real conversation is scored.
        self._turn = int(info["turn"])
        ended = terminated or truncated
        parts = self.score(self.env.unwrapped.fork_user()) if ended else self.lookahead()
        value = self.value_of(parts)
        own = value
        if self.mode == "advantage":
            own, self._last_value = value - self._last_value, value
        return own, (value, *parts)

    def value_of(self, parts: tuple[float, float, float, float]) -> float:
        """``R*`` from its raw parts ``(success, progress, emotion, cost)``."""
        success, progress, emotion, cost = parts
        w_success, w_progress, w_emotion = self.weights
        return w_success * success + w_progress * progress + w_emotion * emotion - cost

    def score(self, user: Any) -> tuple[float, float, float, float]:
        """The raw parts of ``R*`` for the conversation that led to ``user``'s state."""
        s, c = user.state, user.config
        success = 1.0 if s.resolved and s.emotion >= c.success_threshold else 0.0
        need = c.understanding_needed
        understood = min(s.understanding / need, 1.0) if need > 0 else 1.0
        progress = 0.5 * understood + (0.5 if s.resolved else 0.0)
        return success, progress, s.emotion / 100.0, min(self.cost * s.turn, 1.0)

    def lookahead(self) -> tuple[float, float, float, float]:
        """Roll the futures from the real user's current state; the mean raw parts of ``R*``."""
        env = self.env.unwrapped
        k = self.samples
        draws = self._rng.standard_normal((k, self.horizon)).tolist()
        turn = self._turn
        base = self._policy_seed + turn * k
        seeds = [(base + i) % 2**31 for i in range(k)] if self._seeded else [None] * k
        steps = min(self.horizon, env.max_turns - turn)
        past = [0.0] * turn  # noise is indexed by turn: the past's is never read
        futures = None if self.lookahead_voice else [env.fork_user(past + row) for row in draws]
        first = None
        if self._deterministic and steps:
            # Every future starts from the same state: the default policy's first act is the
            # same in all of them, so choose it once and copy the policy after choosing.
            lead = self.rollout_policy.__copy__()
            lead.reset()
            first = lead.act_core(futures[0])
            policies = [lead, *(lead.__copy__() for _ in range(k - 1))]
        else:
            policies = []
            for seed in seeds:
                policy = self.rollout_policy
                if self._resettable:
                    policy = copy.copy(policy)
                    policy.reset(seed=seed)
                policies.append(policy)
        if futures is None:
            futures = self._voiced_futures(env, past, draws, policies, steps)
        else:
            self._step_futures(env, futures, policies, steps, first)
        success = progress = emotion = cost = 0.0
        for future in futures:
            parts = self.score(future)
            success += parts[0]
            progress += parts[1]
            emotion += parts[2]
            cost += parts[3]
        return success / k, progress / k, emotion / k, cost / k

    def _step_futures(
        self, env: Any, futures: list, policies: list, steps: int, first: int | None
    ) -> None:
        """Step the user models in lockstep, each future until it ends or ``steps`` turns.

        ``first``, if given, is every future's first act (already chosen by its policy).
        """
        act_core = self._core_policy
        active = list(zip(futures, policies, strict=True))
        for step in range(steps):
            still = []
            for future, policy in active:
                if step == 0 and first is not None:
                    act = first
                elif act_core:
                    act = policy.act_core(future)
                else:
                    act = policy(env.observe(future))
                appraisal = future.step(act)
                if not (appraisal.success or appraisal.left):
                    still.append((future, policy))
            if not still:
                return
            active = still

    def _voiced_futures(
        self, env: Any, past: list[float], draws: list[list[float]], policies: list, steps: int
    ) -> list[Any]:
        """Step whole env forks, voices included; return their users (to score)."""
        users = []
        for row, policy in zip(draws, policies, strict=True):
            fork = env.fork(voice=True, noise=past + row)
            obs = fork.observe()
            for _ in range(steps):
                act = policy.act_core(fork.fork_user()) if self._core_policy else policy(obs)
                obs, _, terminated, truncated, _ = fork.step(act)
                if terminated or truncated:
                    break
            users.append(fork.fork_user())
        return users
