"""Planning over forks of the simulated user: UCT search and a dual-process agent.

:class:`MCTSPlanner` runs UCT (Kocsis and Szepesvári, 2006) over ``env.unwrapped.fork()``:
each simulation forks the current conversation without voices, draws fresh per-turn
noise from the planner's own generator (so it does not see the real user's future noise),
walks the tree by UCB1, expands one new action, finishes with a rollout policy, and backs
up the value. :class:`DualProcessAgent` is DPDP's dual process: System 1 (a trained
policy) acts when it is confident — top-1 minus top-2 action probability at least
``threshold`` (DPDP's rule), or entropy below a threshold — and System 2 (the planner)
decides otherwise.

The real env is never stepped by planning: forks share nothing mutable with it.

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    >>> obs, info = env.reset(seed=0)
    >>> planner = MCTSPlanner(simulations=8, seed=0)
    >>> 0 <= planner.plan(env) < 8
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.agents.reference import StageHeuristicPolicy
from dialogue_gym.core.vocabulary import STRATEGIES

Observation = Mapping[str, np.ndarray]
_N = len(STRATEGIES)


@dataclass
class _Node:
    visits: int = 0
    value: float = 0.0
    children: dict[int, _Node] = field(default_factory=dict)


class MCTSPlanner:
    """UCT over forks of the env.

    Args:
        simulations: Simulations per decision.
        depth: Tree depth in turns (the rollout continues to ``rollout_depth``).
        rollout_depth: Turns simulated per simulation in all (tree + rollout).
        c: UCB1 exploration constant.
        rollout_policy: A policy object with ``reset()`` and ``__call__(obs)`` used past
            the tree (default: a fresh :class:`~dialogue_gym.agents.reference.StageHeuristicPolicy`).
            ``None`` with ``random_rollouts=True`` plays uniformly random strategies.
        random_rollouts: Roll out uniformly at random instead.
        emotion_weight: Value of a non-terminal leaf per unit of emotion/100 (a tie-break;
            success is worth 1 and a user leaving -1).
        seed: Seeds the planner's generator (fork noise, random rollouts).
    """

    def __init__(
        self,
        simulations: int = 50,
        depth: int = 4,
        rollout_depth: int = 10,
        c: float = 1.0,
        rollout_policy: Any = None,
        random_rollouts: bool = False,
        emotion_weight: float = 0.5,
        seed: int | None = None,
    ) -> None:
        if simulations < 1 or depth < 1 or rollout_depth < depth:
            raise ValueError("need simulations >= 1, depth >= 1 and rollout_depth >= depth")
        self.simulations = simulations
        self.depth = depth
        self.rollout_depth = rollout_depth
        self.c = c
        self.rollout_policy = rollout_policy
        self.random_rollouts = random_rollouts
        self.emotion_weight = emotion_weight
        self.rng = np.random.default_rng(seed)
        self.forks = 0  # env forks made so far: the planner's cost in core episodes

    def plan(self, env: gym.Env) -> int:
        """The strategy UCT prefers in ``env``'s current state (the env is not changed)."""
        base = env.unwrapped
        try:
            base.episode_key()
        except RuntimeError:
            raise RuntimeError("reset() the env before planning") from None
        root = _Node()
        for _ in range(self.simulations):
            self._simulate(base, root)
        return max(root.children, key=lambda a: (root.children[a].visits, root.children[a].value))

    def action_values(self, env: gym.Env) -> dict[int, float]:
        """Mean value per root action after a fresh search (for analysis)."""
        base = env.unwrapped
        root = _Node()
        for _ in range(self.simulations):
            self._simulate(base, root)
        return {a: n.value / n.visits for a, n in root.children.items() if n.visits}

    def _simulate(self, base: Any, root: _Node) -> None:
        # Fresh noise, indexed by turn: the planner does not see the real user's future.
        sim = base.fork(voice=False, noise=self.rng.standard_normal(base.max_turns).tolist())
        self.forks += 1
        node, path, total, done, depth = root, [root], 0.0, False, 0
        obs = sim.observe()
        info: dict[str, Any] = {}
        while not done and depth < self.depth:
            untried = [a for a in range(_N) if a not in node.children]
            if untried:
                action = int(untried[self.rng.integers(len(untried))])
                node.children[action] = _Node()
                expanded = True
            else:
                action = self._ucb(node)
                expanded = False
            obs, reward, term, trunc, info = sim.step(action)
            total += float(reward)
            done = term or trunc
            node = node.children[action]
            path.append(node)
            depth += 1
            if expanded:
                break
        if not done:
            total, done, info = self._rollout(sim, obs, total, depth, info)
        value = total
        if done and info.get("user_left"):
            value -= 1.0
        elif not done:
            value += self.emotion_weight * sim.emotion / 100.0
        for n in path:
            n.visits += 1
            n.value += value

    def _ucb(self, node: _Node) -> int:
        log_n = math.log(node.visits)

        def score(a: int) -> float:
            child = node.children[a]
            return child.value / child.visits + self.c * math.sqrt(log_n / child.visits)

        return max(node.children, key=score)

    def _rollout(
        self, sim: Any, obs: Observation, total: float, depth: int, info: dict[str, Any]
    ) -> tuple[float, bool, dict[str, Any]]:
        policy = None
        if not self.random_rollouts:
            policy = self.rollout_policy or StageHeuristicPolicy()
            policy.reset()
        done = False
        while not done and depth < self.rollout_depth:
            action = int(self.rng.integers(_N)) if policy is None else int(policy(obs))
            obs, reward, term, trunc, info = sim.step(action)
            total += float(reward)
            done = term or trunc
            depth += 1
        return total, done, info


def sb3_action_probs(model: Any) -> Callable[[Observation], np.ndarray]:
    """``obs -> action probabilities`` of an SB3 policy over ``Discrete`` actions."""
    import torch

    def probs(obs: Observation) -> np.ndarray:
        obs_tensor, _ = model.policy.obs_to_tensor(obs)
        with torch.no_grad():
            dist = model.policy.get_distribution(obs_tensor)
        return dist.distribution.probs.cpu().numpy().reshape(-1)

    return probs


class DualProcessAgent:
    """DPDP's dual process: a fast policy when confident, MCTS otherwise.

    Args:
        system1: ``obs -> action probabilities`` (see :func:`sb3_action_probs`).
        planner: The System 2 planner.
        threshold: Confidence needed for System 1 to act.
        rule: ``"margin"`` (top-1 minus top-2 probability >= threshold, DPDP's rule) or
            ``"entropy"`` (entropy in nats <= threshold).

    Attributes:
        system1_turns: Turns decided by System 1 so far.
        system2_turns: Turns decided by System 2 so far.
    """

    def __init__(
        self,
        system1: Callable[[Observation], np.ndarray],
        planner: MCTSPlanner,
        threshold: float = 0.3,
        rule: str = "margin",
    ) -> None:
        if rule not in ("margin", "entropy"):
            raise ValueError(f"rule must be 'margin' or 'entropy', got {rule!r}")
        self.system1 = system1
        self.planner = planner
        self.threshold = threshold
        self.rule = rule
        self.system1_turns = 0
        self.system2_turns = 0

    def confident(self, probs: np.ndarray) -> bool:
        """Whether System 1 may act on these probabilities."""
        if self.rule == "margin":
            top = np.sort(probs)[::-1]
            return float(top[0] - top[1]) >= self.threshold
        p = probs[probs > 0]
        return float(-(p * np.log(p)).sum()) <= self.threshold

    def act(self, env: gym.Env, obs: Observation) -> int:
        """Choose the next strategy for ``env``'s current state."""
        probs = np.asarray(self.system1(obs), dtype=float)
        if self.confident(probs):
            self.system1_turns += 1
            return int(np.argmax(probs))
        self.system2_turns += 1
        return self.planner.plan(env)

    @property
    def system2_share(self) -> float:
        """Share of turns System 2 decided."""
        total = self.system1_turns + self.system2_turns
        return self.system2_turns / total if total else 0.0
