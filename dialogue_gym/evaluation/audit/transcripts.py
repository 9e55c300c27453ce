"""Sample transcripts: the best- and worst-scored episodes, as fenced markdown."""

from __future__ import annotations

import math
from typing import Any

from dialogue_gym.evaluation.audit.records import Episode, as_episode, as_episodes

__all__ = ["best_and_worst", "format_transcript"]


def best_and_worst(episodes: Any, k: int = 1) -> tuple[list[Episode], list[Episode]]:
    """The ``k`` highest- and ``k`` lowest-return episodes (those with a known return).

    Ties keep the input order; the worst list starts with the very worst.

    Example:
        >>> eps = [{"utterances": [x], "return": r} for x, r in (("a", 0.1), ("b", 0.9), ("c", -1))]
        >>> best, worst = best_and_worst(eps)
        >>> best[0].utterances, worst[0].utterances
        (('b',), ('c',))
    """
    scored = [e for e in as_episodes(episodes) if not math.isnan(e.episode_return)]
    ranked = sorted(range(len(scored)), key=lambda i: (-scored[i].episode_return, i))
    best = [scored[i] for i in ranked[:k]]
    worst = [scored[i] for i in sorted(ranked, key=lambda i: (scored[i].episode_return, i))[:k]]
    return best, worst


def format_transcript(episode: Any, max_chars: int = 400) -> str:
    """An episode's transcript as a fenced markdown text block, its outcome on top.

    The user's opening line comes first when the episode has one (one user line more than
    agent lines); each line is cut at ``max_chars``.

    Example:
        >>> print(format_transcript({"utterances": ["How are you?"], "user": ["Bad.", "Worse."],
        ...                          "return": 0.5, "success": False, "final_emotion": 30,
        ...                          "card": "c1"}))
        card c1, return 0.500, final emotion 30.0, no success
        ```text
        user:  Bad.
        agent: How are you?
        user:  Worse.
        ```
    """
    e = as_episode(episode)

    def cut(text: str) -> str:
        text = " ".join(text.replace("```", "'''").split())
        return text if len(text) <= max_chars else text[: max_chars - 1] + "\u2026"

    user = list(e.user_lines)
    lines = [f"user:  {cut(user.pop(0))}"] if len(user) == len(e.utterances) + 1 else []
    for i, text in enumerate(e.utterances):
        lines.append(f"agent: {cut(text)}")
        if i < len(user):
            lines.append(f"user:  {cut(user[i])}")
    head = (
        f"card {e.card_id or '?'}, return {e.episode_return:.3f}, final emotion "
        f"{e.final_emotion:.1f}, {'success' if e.success else 'no success'}"
    )
    return "\n".join([head, "```text", *lines, "```"])
