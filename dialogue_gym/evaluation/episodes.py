"""Run policies over scenario cards and record, turn by turn, what the metrics need.

A policy is anything that maps an observation to an action: a reference policy
(``agents.REFERENCE_POLICIES``, with ``reset``), a plain callable ``choose(obs) -> action``,
or a trained model with SB3's ``predict`` (wrap it in :class:`ModelPolicy`, or call
:func:`evaluate_model`). Every episode becomes an :class:`EpisodeResult`: the outcome and,
per agent turn, the strategy, the user's act and line, the emotion, the reward and the reward
components every reward wrapper wrote (``dialogue_gym.evaluation.metrics`` reads these).

:class:`EpisodeResult` is the package's one episode record; the other two are views of it that
keep its field names (``card_id``, ``episode_return``, ``success``, ``final_emotion``,
``user_lines``): the audit's text view (:class:`dialogue_gym.evaluation.audit.Episode`, built
from a result by ``as_episode``) and a GRPO rollout's conversation in progress
(:class:`dialogue_gym.integrations.trl.Episode`, with its token ids; ``.result()`` is the
record).

Example:
    >>> results = evaluate("stage-heuristic", env_kwargs={"scenarios": "test"}, seed=0)
    >>> r = results[0]
    >>> len(r.strategies) == len(r.user_acts) == len(r.reward_components) == r.turns
    True
    >>> len(r.emotions) == len(r.user_lines) == r.turns + 1
    True
    >>> sorted(r.reward_components[0])
    ['sparse', 'sparse/left', 'sparse/success']
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.agents.reference import Policy, make_policy
from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.rewards.base import COMPONENTS_KEY, iter_wrappers
from dialogue_gym.rewards.registry import DEFAULT_REWARD

#: ``reward=`` value of :func:`evaluate` that stacks every reward wrapper
#: (``metrics.stack_reward_probes``), so each step's ``info`` carries every reward's components.
ALL_REWARDS = "all"

#: Anything :func:`run_episode` can play: a policy with ``reset`` or a plain ``obs -> action``.
AnyPolicy = Policy | Callable[[Any], Any]

_STRATEGY_INDEX = {name: i for i, name in enumerate(STRATEGIES)}


@dataclass
class EpisodeResult:
    """One conversation, reduced to what the metrics need.

    The first ten fields are the outcome (positional, as before); the per-turn records
    default to empty so a hand-built result needs only what a metric reads.

    Attributes:
        card_id: The scenario card.
        need: The hidden need.
        success: The need was resolved and the user left satisfied.
        user_left: The user left in distress.
        initial_emotion: Emotion at the start.
        final_emotion: Emotion at the end.
        turns: Agent turns taken.
        strategies: The agent's strategy index at each turn, in order.
        emotions: Emotion after the opening and after each turn (``turns + 1`` values).
        episode_return: Sum of the env's rewards over the agent turns.
        messages: The chat, if kept.
        user_acts: The user's act (``core.vocabulary.USER_ACTS``) after each agent turn.
        user_lines: The user's opening line and their line after each turn (``turns + 1``).
        rewards: The env's reward at each agent turn.
        reward_components: ``info["reward_components"]`` at each agent turn (empty dicts
            when no reward wrapper wrote any).
        resolved: Whether the hidden need was resolved at the end; ``None`` when unknown
            (a hand-built result), in which case :attr:`need_resolved` falls back to
            ``success``.
        seed: The seed the episode was reset with.
    """

    card_id: str
    need: str
    success: bool
    user_left: bool
    initial_emotion: float
    final_emotion: float
    turns: int
    strategies: list[int]
    emotions: list[float]
    episode_return: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    user_acts: list[str] = field(default_factory=list)
    user_lines: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    reward_components: list[dict[str, float]] = field(default_factory=list)
    resolved: bool | None = None
    seed: int | None = None

    @property
    def need_resolved(self) -> bool:
        """The need was met by the end (``resolved``, or ``success`` when unrecorded).

        Example:
            >>> EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0).need_resolved
            True
        """
        return self.success if self.resolved is None else bool(self.resolved)


class _EpisodeLog:
    """Accumulates one episode's per-turn records from the env's ``info`` dicts."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.emotions = [float(info["emotion"])]
        self.user_lines = [str(info.get("user_utterance", ""))]
        self.strategies: list[int] = []
        self.user_acts: list[str] = []
        self.rewards: list[float] = []
        self.components: list[dict[str, float]] = []
        self.last: Mapping[str, Any] = info

    def add(self, info: Mapping[str, Any], reward: float, action: Any) -> None:
        # The env names the strategy it played: right for free-text actions and for
        # hierarchical ones (an option's turns reach the log one by one, below the option).
        name = info.get("strategy")
        self.strategies.append(_STRATEGY_INDEX[name] if name in _STRATEGY_INDEX else int(action))
        self.emotions.append(float(info["emotion"]))
        self.user_acts.append(str(info.get("user_act", "")))
        self.user_lines.append(str(info.get("user_utterance", "")))
        self.rewards.append(float(reward))
        components = info.get(COMPONENTS_KEY) or {}
        self.components.append({key: float(value) for key, value in components.items()})
        self.last = info

    def result(self, seed: int | None, keep_messages: bool) -> EpisodeResult:
        info = self.last
        messages = info.get("messages")
        return EpisodeResult(
            card_id=info.get("card", info["card_id"]),  # the full id: only the terminal info
            need=info["need"],
            success=bool(info["success"]),
            user_left=bool(info["user_left"]),
            initial_emotion=self.emotions[0],
            final_emotion=self.emotions[-1],
            turns=len(self.strategies),
            strategies=self.strategies,
            emotions=self.emotions,
            episode_return=float(sum(self.rewards)),
            messages=messages.to_list() if keep_messages and messages is not None else [],
            user_acts=self.user_acts,
            user_lines=self.user_lines,
            rewards=self.rewards,
            reward_components=self.components,
            resolved=bool(info["resolved"]) if "resolved" in info else None,
            seed=seed,
        )


class TurnRecorder(gym.Wrapper):
    """Records every agent turn that passes through it, for :func:`run_episode`.

    Needed only under a wrapper whose one step spans several agent turns (``hierarchy.Options``):
    put the recorder below it and :func:`run_episode` reads the turns from here, so an
    option's turns are recorded one by one. :func:`evaluate` does this for its ``wrapper``.

    Example:
        >>> from dialogue_gym.agents.options import Options
        >>> base = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
        >>> env = Options(TurnRecorder(base))
        >>> r = run_episode(env, lambda obs: env.option_index("explore"), seed=0, card=0)
        >>> r.turns > 1 and set(r.strategies) <= {0, 1}
        True
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.log: _EpisodeLog | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.log = _EpisodeLog(info)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.log is not None:
            self.log.add(info, float(reward), action)
        return obs, reward, terminated, truncated, info


def _recorder(env: gym.Env) -> TurnRecorder | None:
    for wrapper in iter_wrappers(env):
        if isinstance(wrapper, TurnRecorder):
            return wrapper
    return None


def _as_action(action: Any) -> Any:
    """A Python int for integer actions (SB3 returns arrays); anything else unchanged."""
    if isinstance(action, np.ndarray | np.integer) and np.asarray(action).dtype.kind in "iu":
        return int(np.asarray(action).reshape(()))
    return action


def run_episode(
    env: gym.Env,
    policy: AnyPolicy,
    seed: int | None = None,
    card: str | int | None = None,
    keep_messages: bool = False,
    on_step: Callable[[gym.Env, dict[str, Any], bool], None] | None = None,
) -> EpisodeResult:
    """Play one episode of ``policy`` in ``env`` and record it turn by turn.

    Args:
        env: The env (any reward wrapper; under a multi-turn wrapper such as
            ``hierarchy.Options``, a :class:`TurnRecorder` must sit below it).
        policy: ``obs -> action``; its ``reset(seed=seed)`` is called first if it has one.
        seed: Passed to ``env.reset``.
        card: Card id or index (``reset(options={"card": card})``); default: drawn.
        keep_messages: Keep the chat in ``messages``.
        on_step: Called after every step with ``(env, info, done)``, e.g. to probe the user
            mid-episode (:func:`dialogue_gym.evaluation.metrics.qa_consistency`).

    Raises:
        ValueError: A step spanned several turns and no :class:`TurnRecorder` recorded them.

    Example:
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
        >>> r = run_episode(env, lambda obs: 4, seed=0, card=0)  # a plain callable
        >>> r.strategies == [4] * r.turns and not r.success
        True
    """
    options = {"card": card} if card is not None else None
    obs, info = env.reset(seed=seed, options=options)
    reset = getattr(policy, "reset", None)
    if callable(reset):
        reset(seed=seed)
    recorder = _recorder(env)
    log = _EpisodeLog(info)
    done = False
    while not done:
        action = _as_action(policy(obs))
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        if recorder is None:
            if "option_turns" in info:
                raise ValueError(
                    "this step ran several agent turns (an option): put a TurnRecorder below "
                    "the Options wrapper, e.g. Options(TurnRecorder(env)), to record each turn"
                )
            log.add(info, float(reward), action)
        if on_step is not None:
            on_step(env, info, done)
    if recorder is not None and recorder.log is not None:
        log = recorder.log
    return log.result(seed, keep_messages)


class ModelPolicy:
    """A trained model with SB3's ``predict`` as a policy (recurrent models included).

    Passes ``state`` and ``episode_start`` when ``predict`` takes them (SB3 and
    sb3-contrib's ``RecurrentPPO`` do), so a recurrent model's memory is carried through the
    episode and cleared by :meth:`reset`.

    Args:
        model: Anything with ``predict(obs, ..., deterministic=...) -> (action, state)``.
        deterministic: Take the most likely action (the usual evaluation setting).

    Example:
        >>> class Always:
        ...     def predict(self, obs, deterministic=False):
        ...         return np.array(2), None
        >>> ModelPolicy(Always())({})
        2
    """

    def __init__(self, model: Any, deterministic: bool = True) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must have a predict() method, got {model!r}")
        self.model = model
        self.deterministic = bool(deterministic)
        params = inspect.signature(model.predict).parameters
        self._stateful = "state" in params and "episode_start" in params
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self._state: Any = None
        self._start = True

    def __call__(self, obs: Any) -> Any:
        if self._stateful:
            action, self._state = self.model.predict(
                obs,
                state=self._state,
                episode_start=np.array([self._start]),
                deterministic=self.deterministic,
            )
        else:
            action, _ = self.model.predict(obs, deterministic=self.deterministic)
        self._start = False
        return _as_action(action)


def make_eval_env(
    env_id: str = "EmpathyDialogue-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    reward: str | None = DEFAULT_REWARD,
    reward_kwargs: Mapping[str, Any] | None = None,
    wrapper: Callable[[gym.Env], gym.Env] | None = None,
) -> gym.Env:
    """The env :func:`evaluate` plays in.

    Args:
        env_id: The registered env.
        env_kwargs: Passed to ``gym.make`` (default: template voice, test cards). A ``reward``
            or ``reward_kwargs`` entry is replaced by the arguments below, so a training
            run's kwargs can be reused as they are.
        reward: A reward name (``rewards.REWARDS``), ``None`` (the bare env's bonus) or
            :data:`ALL_REWARDS` (every reward's components; the env's reward is then the
            coarse bonus).
        reward_kwargs: The reward's arguments; for :data:`ALL_REWARDS`, reward name ->
            arguments.
        wrapper: Applied last (e.g. ``hierarchy.Options``), above a :class:`TurnRecorder`.

    Example:
        >>> env = make_eval_env(reward=ALL_REWARDS)
        >>> _ = env.reset(seed=0)
        >>> sorted(k for k in env.step(0)[-1]["reward_components"] if "/" not in k)
        ['emotion_delta', 'final_emotion', 'multi_turn', 'next_turn', 'potential_emotion', 'sparse']
    """
    kwargs = {"voice": "template", "scenarios": "test", **(env_kwargs or {})}
    kwargs.pop("reward", None)
    kwargs.pop("reward_kwargs", None)
    if reward == ALL_REWARDS:
        from dialogue_gym.evaluation.metrics import (
            stack_reward_probes,  # metrics imports this module
        )

        env = stack_reward_probes(gym.make(env_id, reward=None, **kwargs), reward_kwargs)
    else:
        env = gym.make(env_id, reward=reward, reward_kwargs=reward_kwargs, **kwargs)
    if wrapper is not None:
        env = wrapper(TurnRecorder(env))
    return env


def evaluate(
    policy: str | Callable[[gym.Env], AnyPolicy],
    env_id: str = "EmpathyDialogue-v0",
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    repeats: int = 1,
    reward: str | None = DEFAULT_REWARD,
    reward_kwargs: Mapping[str, Any] | None = None,
    wrapper: Callable[[gym.Env], gym.Env] | None = None,
    keep_messages: bool = False,
) -> list[EpisodeResult]:
    """Play one episode per card of the env's scenarios (times ``repeats``), seeded.

    Episode ``k`` plays card ``k % n_cards`` with seed ``seed + k``, so results are
    reproducible and every policy meets the same users.

    Args:
        policy: A reference policy name (see ``agents.REFERENCE_POLICIES``) or a factory
            ``env -> policy`` (a policy with ``reset`` or a plain ``obs -> action``).
        env_id: The registered env.
        env_kwargs: Passed to ``gym.make`` (default: template voice, test cards).
        seed: Base seed.
        repeats: Passes over the cards.
        reward: The reward wrapper (see :func:`make_eval_env`; :data:`ALL_REWARDS` records
            every reward's components, for ``metrics.returns_by_reward``).
        reward_kwargs: Its arguments.
        wrapper: An outer wrapper whose actions the policy takes (``hierarchy.Options``).
        keep_messages: Keep each chat in ``messages``.
    """
    env = make_eval_env(env_id, env_kwargs, reward, reward_kwargs, wrapper)
    try:
        agent = make_policy(policy, env) if isinstance(policy, str) else policy(env)
        n_cards = len(env.unwrapped.cards)
        return [
            run_episode(env, agent, seed=seed + k, card=k % n_cards, keep_messages=keep_messages)
            for k in range(n_cards * repeats)
        ]
    finally:
        env.close()


def evaluate_model(
    model: Any,
    env_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    deterministic: bool = True,
    env_id: str = "EmpathyDialogue-v0",
    reward: str | None = ALL_REWARDS,
    reward_kwargs: Mapping[str, Any] | None = None,
    wrapper: Callable[[gym.Env], gym.Env] | None = None,
    repeats: int = 1,
    keep_messages: bool = False,
) -> list[EpisodeResult]:
    """:func:`evaluate` for a trained model with SB3's ``predict``: one episode per card.

    By default every reward's components are recorded (``reward=ALL_REWARDS``), whatever
    reward the model was trained on, so its return under each can be compared.

    Args:
        model: An SB3 (or sb3-contrib) model, or anything with the same ``predict``.
        env_kwargs: ``gym.make`` kwargs (default: template voice, test cards); a training
            ``reward``/``reward_kwargs`` in them is replaced by ``reward``/``reward_kwargs``.
        seed: Base seed (episode ``k``: ``seed + k``).
        deterministic: Passed to ``predict``.
        env_id: The registered env.
        reward: See :func:`make_eval_env`.
        reward_kwargs: See :func:`make_eval_env`.
        wrapper: The wrapper the model acts in, e.g. ``hierarchy.Options`` for a
            hierarchical model (its turns are recorded one by one).
        repeats: Passes over the cards.
        keep_messages: Keep each chat in ``messages``.

    Example:
        >>> class Always:  # stands in for a trained model
        ...     def predict(self, obs, state=None, episode_start=None, deterministic=False):
        ...         return np.array(1), state
        >>> results = evaluate_model(Always(), {"scenarios": "test"})
        >>> all(set(r.strategies) == {1} for r in results)
        True
    """
    return evaluate(
        lambda env: ModelPolicy(model, deterministic),
        env_id=env_id,
        env_kwargs=env_kwargs,
        seed=seed,
        repeats=repeats,
        reward=reward,
        reward_kwargs=reward_kwargs,
        wrapper=wrapper,
        keep_messages=keep_messages,
    )


def summarize(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """Success rate, mean final emotion, user-left rate and mean turns.

    ``dialogue_gym.evaluation.metrics.compute_metrics`` gives these and every other metric.

    Example:
        >>> r = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> summarize([r])["success_rate"]
        1.0
    """
    if not results:
        raise ValueError("no episodes to summarise")
    return {
        "episodes": float(len(results)),
        "success_rate": float(np.mean([r.success for r in results])),
        "final_emotion": float(np.mean([r.final_emotion for r in results])),
        "user_left_rate": float(np.mean([r.user_left for r in results])),
        "mean_turns": float(np.mean([r.turns for r in results])),
    }


def format_table(rows: Iterable[tuple[str, Mapping[str, float]]]) -> str:
    """A plain-text table of policy summaries."""
    header = f"{'policy':<18} {'success':>8} {'final emotion':>14} {'user left':>10} {'turns':>6}"
    lines = [header, "-" * len(header)]
    for name, s in rows:
        lines.append(
            f"{name:<18} {s['success_rate']:>8.0%} {s['final_emotion']:>14.1f} "
            f"{s['user_left_rate']:>10.0%} {s['mean_turns']:>6.1f}"
        )
    return "\n".join(lines)
