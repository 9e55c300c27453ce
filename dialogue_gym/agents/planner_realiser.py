"""Planner + realiser on free text: a strategy policy decides, an LLM says it (PPDPP).

:class:`PlannerRealiserAgent` acts in ``EmpathyDialogueText-v0``: its planner is any policy
over the strategy env's observation (an SB3 model trained on ``EmpathyDialogue-v0``, a
reference policy, a callable) and its realiser writes the chosen strategy as the agent's
utterance — by default an LLM backend (the embedded SmolLM2), or the template realiser.
The text env then recognises the act from the words, so ``fidelity`` measures how often the
realised words still carry the planned strategy (what a plug-and-play planner relies on).

Example:
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> from dialogue_gym.agents.reference import StageHeuristicPolicy
    >>> env = gym.make("EmpathyDialogueText-v0", voice="template")
    >>> agent = PlannerRealiserAgent(StageHeuristicPolicy(), realiser="template")
    >>> obs, info = env.reset(seed=0)
    >>> agent.reset(seed=0)
    >>> text = agent.act(env, obs)
    >>> obs, reward, terminated, truncated, info = env.step(text)
    >>> agent.planned[-1] == dialogue_gym.STRATEGIES.index("Question")
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.envs.text import DEFAULT_MAX_LENGTH, to_action
from dialogue_gym.llm.backends import BackendSpec
from dialogue_gym.user.voices import AgentTurn, make_agent_realiser

#: The strategy env's observation keys: what the planner sees of the text env's observation.
STRATEGY_OBS_KEYS = ("emotion", "score", "turn", "user_act", "need_cues", "history", "last_act")


class PlannerRealiserAgent:
    """A strategy planner driving a realiser, acting with words.

    Args:
        planner: Picks a strategy from the strategy env's observation: an object with SB3's
            ``predict``, a reference policy (``reset`` + ``__call__``), or a callable.
        realiser: ``"llm"``, ``"template"``, or a realiser object with ``say(turns)``.
        backend: Backend spec for the ``"llm"`` realiser.

    Attributes:
        planned: The strategies planned this episode.
        recognised: The strategies the env recognised in the words (filled by :meth:`observe`).
    """

    def __init__(
        self, planner: Any, realiser: Any = "llm", backend: BackendSpec = "llama_cpp"
    ) -> None:
        self.planner = planner
        self.realiser = (
            make_agent_realiser(realiser, backend=backend)
            if isinstance(realiser, str)
            else realiser
        )
        self.planned: list[int] = []
        self.recognised: list[int] = []
        self._seed = 0

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (resets a reference-policy planner too)."""
        self.planned, self.recognised = [], []
        self._seed = 0 if seed is None else int(seed)
        if hasattr(self.planner, "reset") and not hasattr(self.planner, "predict"):
            self.planner.reset(seed=seed)

    def plan(self, obs: Mapping[str, Any]) -> int:
        """The planner's strategy for this observation."""
        strategy_obs = {k: np.asarray(obs[k]) for k in STRATEGY_OBS_KEYS}
        if hasattr(self.planner, "predict"):
            action, _ = self.planner.predict(strategy_obs, deterministic=True)
            return int(np.asarray(action).reshape(()))
        return int(self.planner(strategy_obs))

    def act(self, env: gym.Env, obs: Mapping[str, Any]) -> str:
        """Plan a strategy and put it into words for ``env``'s current user."""
        base = env.unwrapped
        strategy = self.plan(obs)
        turn = len(self.planned)
        history = tuple(base.messages[-base.history_window :]) if base.history_window else ()
        text = self.realiser.say(
            [
                AgentTurn(
                    card=base.card,
                    strategy=strategy,
                    user_utterance=base.messages[-1]["content"],
                    cue=base.last_cue,
                    history=history,
                    turn=turn,
                    seed=self._seed * 1000 + turn,
                )
            ]
        )[0]
        self.planned.append(strategy)
        # An LLM may emit characters outside the text env's charset or run long: map its
        # words into the action space rather than fail the turn.
        return to_action(text, max_length=getattr(base, "max_length", DEFAULT_MAX_LENGTH))

    def observe(self, info: Mapping[str, Any]) -> None:
        """Record the strategy the env recognised in the words (``info["strategy"]``)."""
        if info.get("strategy") in STRATEGIES:
            self.recognised.append(STRATEGIES.index(info["strategy"]))

    @property
    def fidelity(self) -> float:
        """Share of turns whose words were recognised as the planned strategy."""
        pairs = list(zip(self.planned, self.recognised, strict=False))
        return sum(p == r for p, r in pairs) / len(pairs) if pairs else 0.0
