"""verl's dataset: the RLHF-dataset rows (a parquet file) that name each conversation's user.

:func:`verl_rows` writes one row per simulated user: the system prompt and the user's opening
line as ``prompt``, ``extra_info.interaction_kwargs`` with the card and the seed. The
interaction (:class:`~dialogue_gym.integrations.verl.interaction.DialogueInteraction`) resets
its env with that card and seed, so the opening line verl shows the policy is the one the
simulated user said (checked on the first turn). ``examples/verl/make_dataset.py`` writes the
parquet files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dialogue_gym.integrations.trl import SYSTEM_PROMPT
from dialogue_gym.integrations.verl.agent_loop import AGENT_NAME
from dialogue_gym.integrations.verl.interaction import INTERACTION_NAME, DialogueInteraction

__all__ = ["verl_rows"]


def verl_rows(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    system_prompt: str = SYSTEM_PROMPT,
    interaction_name: str = INTERACTION_NAME,
    agent_name: str | None = AGENT_NAME,
) -> list[dict[str, Any]]:
    """Rows of verl's RLHF dataset (a parquet file), one simulated user each.

    Each row: ``data_source`` (``"dialogue_gym"``), ``prompt`` (``system_prompt``, then the
    user's opening line), ``ability``, ``reward_model`` (``{"style": "rule", "ground_truth":
    card}``: verl's reward managers read it; the reward comes from the interaction),
    ``extra_info`` (``index``, ``split``, and ``interaction_kwargs``: ``name``, ``card``,
    ``seed``), and ``agent_name`` (verl >= 0.8 picks the agent loop by it; ``None`` leaves it
    out for verl's ``tool_agent`` loop with an interaction config).

    Card ``k % n_cards`` of a seeded order, episode seed drawn per row, as
    ``dialogue_gym.integrations.trl.episode_dataset`` does.

    Args:
        split: Scenario cards (``"train"``, ``"test"``, ``"all"`` or a folder).
        n: Rows (default: one per card).
        seed: Seeds the order and the episode seeds.
        config: The interaction's config (its ``env_kwargs`` decide the opening lines).
        system_prompt: The system message.
        interaction_name: The interaction's name in the interaction config.
        agent_name: The agent loop's name, or ``None``.

    Example:
        >>> rows = verl_rows("test", n=2)
        >>> [m["role"] for m in rows[0]["prompt"]], sorted(rows[0]["extra_info"]["interaction_kwargs"])
        (['system', 'user'], ['card', 'name', 'seed'])
    """
    settings = dict(config or {})
    settings.setdefault("env_kwargs", {})
    settings["env_kwargs"] = {**settings["env_kwargs"], "scenarios": split}
    interaction = DialogueInteraction(settings)
    env = interaction.make_env()
    cards = [card.id for card in env.unwrapped.cards]
    n = len(cards) if n is None else int(n)
    rng = np.random.default_rng(seed)
    order: list[str] = []
    rows = []
    for index in range(n):
        if not order:
            order = [cards[i] for i in rng.permutation(len(cards))]
        card = order.pop(0)
        episode_seed = int(rng.integers(2**31 - 1))
        _, info = env.reset(seed=episode_seed, options={"card": card})
        row = {
            "data_source": "dialogue_gym",
            "prompt": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": str(info["user_utterance"])},
            ],
            "ability": "emotional_support",
            "reward_model": {"style": "rule", "ground_truth": card},
            "extra_info": {
                "index": index,
                "split": str(split),
                "interaction_kwargs": {
                    "name": interaction_name,
                    "card": card,
                    "seed": episode_seed,
                },
            },
        }
        if agent_name is not None:
            row["agent_name"] = agent_name
        rows.append(row)
    env.close()
    return rows
