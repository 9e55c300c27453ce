"""The ``GRPOConfig`` a multi-turn rollout trains with: batch, budget and the settings it needs.

:meth:`DialogueRollout.grpo_config <dialogue_gym.integrations.trl.DialogueRollout.grpo_config>`
is :func:`grpo_config` with the rollout's own completion budget.
"""

from __future__ import annotations

from typing import Any

from dialogue_gym.integrations.trl.extras import require

__all__ = ["grpo_config"]


def grpo_config(
    output_dir: str,
    users_per_step: int,
    num_generations: int,
    steps: int,
    learning_rate: float,
    seed: int = 0,
    device: str = "cpu",
    *,
    completion_budget: int,
    **overrides: Any,
) -> Any:
    """A ``GRPOConfig`` where one step plays ``users_per_step`` users ``num_generations`` times
    each, within ``completion_budget`` tokens a conversation.

    KL is off (as RLVER), with no checkpoints, no reports, and the dataset's order kept (the
    rows are simulated users in a seeded order).

    Args:
        output_dir: The trainer's output folder.
        users_per_step: Dataset rows a step.
        num_generations: Conversations per row (the GRPO group).
        steps: ``max_steps``.
        learning_rate: The optimiser's learning rate.
        seed: The trainer's seed.
        device: ``"cpu"`` sets ``use_cpu``.
        completion_budget: Tokens a whole conversation's completion may take (a rollout's
            :attr:`~dialogue_gym.integrations.trl.DialogueRollout.completion_budget`):
            ``max_completion_length``, unless ``overrides`` give one.
        **overrides: Further ``GRPOConfig`` arguments (they win).

    Returns:
        A ``trl.GRPOConfig``.
    """
    trl = require("trl")
    settings: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": users_per_step * num_generations,
        "num_generations": num_generations,
        "max_steps": steps,
        "max_completion_length": completion_budget,
        "learning_rate": learning_rate,
        "beta": 0.0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": seed,
        "use_cpu": device == "cpu",
        "bf16": False,
        "shuffle_dataset": False,
        "disable_tqdm": True,
    }
    return trl.GRPOConfig(**{**settings, **overrides})
