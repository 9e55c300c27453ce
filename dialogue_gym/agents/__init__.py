"""Agents that are not learners: reference policies, options, goals, planners.

- :mod:`~dialogue_gym.agents.reference`: random, constant, stage-heuristic and oracle policies;
- :mod:`~dialogue_gym.agents.options`: temporally extended strategies (SMDP options);
- :mod:`~dialogue_gym.agents.goals`: goal-conditioned workers for feudal agents;
- :mod:`~dialogue_gym.agents.planning`: UCT over forked envs, the dual-process agent;
- :mod:`~dialogue_gym.agents.planner_realiser`: a strategy planner whose words an LLM writes.

The reference policies are re-exported here (``from dialogue_gym.agents import make_policy``).
"""

from dialogue_gym.agents.reference import (
    REFERENCE_POLICIES,
    ConstantPolicy,
    Observation,
    OraclePolicy,
    Policy,
    RandomPolicy,
    StageHeuristicPolicy,
    make_policy,
)

__all__ = [
    "REFERENCE_POLICIES",
    "ConstantPolicy",
    "Observation",
    "OraclePolicy",
    "Policy",
    "RandomPolicy",
    "StageHeuristicPolicy",
    "make_policy",
]
