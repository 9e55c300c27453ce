"""The ``GRPOConfig`` a multi-turn rollout trains with: batch, budget and the settings it needs.

:meth:`DialogueRollout.grpo_config <dialogue_gym.integrations.trl.DialogueRollout.grpo_config>`
is :func:`grpo_config` with the rollout's own completion budget.
"""

from __future__ import annotations

from typing import Any

from dialogue_gym.integrations.trl.extras import require

__all__ = ["grpo_config", "split_step"]


def split_step(sequences: int, micro_batch: int) -> tuple[int, int]:
    """``(per_device_train_batch_size, gradient_accumulation_steps)`` for a step of
    ``sequences`` conversations in micro-batches of ``micro_batch`` (0: one micro-batch).

    Raises:
        ValueError: ``micro_batch`` is negative or does not divide ``sequences``.

    Example:
        >>> split_step(8, 2)
        (2, 4)
        >>> split_step(8, 3)
        Traceback (most recent call last):
        ...
        ValueError: micro_batch 3 does not divide the step's 8 sequences; allowed: ... 1, 2, 4, 8
    """
    if micro_batch == 0:
        return sequences, 1
    if micro_batch < 0 or sequences % micro_batch:
        allowed = ", ".join(str(d) for d in range(1, sequences + 1) if sequences % d == 0)
        raise ValueError(
            f"micro_batch {micro_batch} does not divide the step's {sequences} sequences; "
            f"allowed: 0 (the whole step) or {allowed}"
        )
    return micro_batch, sequences // micro_batch


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
    micro_batch: int = 0,
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
        micro_batch: Sequences a forward/backward pass holds (``0``: the whole step): the
            step's ``users_per_step x num_generations`` conversations are then
            ``per_device_train_batch_size = micro_batch`` times ``gradient_accumulation_steps``,
            so one optimiser step still covers them all (and one rollout call plays them).
        **overrides: Further ``GRPOConfig`` arguments (they win).

    Returns:
        A ``trl.GRPOConfig``.

    Raises:
        ValueError: ``micro_batch`` does not divide the step's conversations.

    Example:
        >>> split_step(8, 2), split_step(8, 0)
        ((2, 4), (8, 1))
    """
    trl = require("trl")
    per_device, accumulation = split_step(users_per_step * num_generations, micro_batch)
    settings: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
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
