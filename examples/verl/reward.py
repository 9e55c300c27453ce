"""verl <= 0.7.1: the reward function for ``custom_reward_function.path`` (name: compute_score).

verl 0.7.1's agent loop puts the interaction's per-turn scores in ``extra_info["turn_scores"]``;
the conversation's reward is their sum (RLVER's layout: the final emotion / 100, paid on the
last turn). verl >= 0.8 needs no reward function: DialogueAgentLoop sets the reward itself.
"""

from dialogue_gym.integrations.verl import compute_score

__all__ = ["compute_score"]
