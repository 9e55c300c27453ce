"""Text rendering of a conversation: the transcript with the user's emotion as a bar."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import emotion_band


def emotion_bar(score: float, width: int = 20) -> str:
    """A fixed-width bar for an emotion score in [0, 100].

    Example:
        >>> emotion_bar(50.0, width=10)
        '[#####.....]  50 middle'
    """
    filled = round(max(0.0, min(100.0, score)) / 100.0 * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {score:3.0f} {emotion_band(score)}"


def render_transcript(messages: Sequence[Mapping[str, Any]], card: ScenarioCard) -> str:
    """The conversation so far, one line a message; user lines carry their emotion bar."""
    lines = [
        f"== {card.id}: {card.persona.name}, {card.persona.age}, {card.persona.occupation} "
        f"({card.problem_type}, {card.emotion_type})"
    ]
    for msg in messages:
        if msg["role"] == "user":
            lines.append(
                f"{emotion_bar(msg.get('emotion', 0.0))} {card.persona.name}: {msg['content']}"
            )
        else:
            strategy = msg.get("strategy", "")
            lines.append(f"{'':>{20 + 11}} Agent [{strategy}]: {msg['content']}")
    return "\n".join(lines)
