"""The prompt dataset: simulated users (a card and a seed) as rows for ``GRPOTrainer``.

Rows of :func:`episode_dataset` are simulated users. GRPO's ``RepeatSampler`` hands each row to
the rollout ``num_generations`` times in a row, so the completions of a group talk to the same
user (same card, same seed: same opening line and the same per-turn noise) and differ only by
what the policy says. No two rows share a prompt, so a prompt names its user
(:func:`prompt_key` is how the rollout looks it up).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dialogue_gym.integrations.trl.env import make_dialogue_env
from dialogue_gym.integrations.trl.extras import require

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["SYSTEM_PROMPT", "TOOL_SYSTEM_PROMPT", "episode_dataset", "prompt_key"]

#: The system message of the rollout form's prompts.
SYSTEM_PROMPT = (
    "You are a warm, supportive listener. The person writing to you is going through a hard "
    "time. Answer them in one to three short sentences, in plain words."
)
#: The system message of the tool form's prompts: the same, plus how to speak.
TOOL_SYSTEM_PROMPT = (
    SYSTEM_PROMPT + " Say each answer by calling the reply tool; what it returns is what they "
    "say back."
)


def prompt_key(prompt: Sequence[Mapping[str, Any]]) -> str:
    """The exact conversation as a hashable key (roles and contents, in order).

    Example:
        >>> prompt_key([{"role": "user", "content": "hi"}])
        '[["user", "hi"]]'
    """
    return json.dumps([[m["role"], m["content"]] for m in prompt], ensure_ascii=False)


def episode_dataset(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    system_prompt: str = SYSTEM_PROMPT,
    **env_kwargs: Any,
) -> datasets.Dataset:
    """Simulated users to train or evaluate on, one a row, for ``GRPOTrainer``.

    Columns: ``prompt`` (what the policy reads at turn 0: ``system_prompt`` as a ``system``
    message, then the user's opening line as a ``user`` message), ``card`` (the scenario
    card's id), ``seed`` (the episode's seed: ``reset(seed=seed, options={"card": card})``
    gives back this user) and ``split``.

    Rows go through the split's cards in a seeded order, as many rounds as ``n`` needs, each
    row with its own seed. No two rows share a prompt (a row whose opening line repeats an
    earlier row's is redrawn with another seed), so a prompt names its user:
    :class:`~dialogue_gym.integrations.trl.DialogueRollout`, which TRL hands only prompts,
    finds the card and seed by it.

    Args:
        split: The scenario cards: ``"train"``, ``"test"`` (72 cards), ``"all"`` or a folder.
        n: Rows (``None``: one per card).
        seed: Seeds the order and the episode seeds.
        system_prompt: The system message (:data:`TOOL_SYSTEM_PROMPT` for the tool form).
        **env_kwargs: Arguments of ``EmpathyDialogueText-v0`` that change the opening line
            (``voice``...): they must match the rollout's.

    Example:
        >>> data = episode_dataset("test", n=3, seed=0)
        >>> data.column_names
        ['prompt', 'card', 'seed', 'split']
        >>> [m["role"] for m in data[0]["prompt"]]
        ['system', 'user']
    """
    ds = require("datasets")
    env = make_dialogue_env(split, reward=None, **env_kwargs)
    cards = [card.id for card in env.unwrapped.cards]
    n = len(cards) if n is None else int(n)
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {"prompt": [], "card": [], "seed": [], "split": []}
    seen: set[str] = set()
    order: list[str] = []
    while len(rows["card"]) < n:
        if not order:
            order = [cards[i] for i in rng.permutation(len(cards))]
        card = order.pop(0)
        for _ in range(100):
            episode_seed = int(rng.integers(2**31 - 1))
            _, info = env.reset(seed=episode_seed, options={"card": card})
            prompt = [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": info["user_utterance"]},
            ]
            key = prompt_key(prompt)
            if key not in seen:
                break
        else:  # pragma: no cover (a card's voice would need fewer than 100 openings)
            raise RuntimeError(f"card {card!r} gives no new opening line in 100 seeds")
        seen.add(key)
        rows["prompt"].append(prompt)
        rows["card"].append(card)
        rows["seed"].append(episode_seed)
        rows["split"].append(str(split))
    env.close()
    return ds.Dataset.from_dict(rows)
