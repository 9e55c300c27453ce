"""The episode record the audit reads, and the forms an episode may come in.

Episodes come in any of these forms (:func:`as_episode`): a plain dict
``{"utterances": [agent lines], "user": [user lines], "return": float, "success": bool,
"final_emotion": float, "card": str}`` (missing keys take defaults), a JSONL episode-log line
(:func:`dialogue_gym.evaluation.episode_log.read_episodes`), an
:class:`~dialogue_gym.evaluation.episodes.EpisodeResult` recorded with ``keep_messages=True``,
a dict with a chat under ``"messages"``, a list of an episode's agent lines, or one string (an
utterance on its own).

Example:
    >>> agent_utterances([{"utterances": ["Hi."]}, "Hello."])
    ['Hi.', 'Hello.']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dialogue_gym.evaluation.episodes import EpisodeResult

__all__ = ["Episode", "agent_utterances", "as_episode", "as_episodes"]


@dataclass(frozen=True)
class Episode:
    """One conversation as the audit reads it: the text view of an episode record.

    The fields keep the names of :class:`~dialogue_gym.evaluation.episodes.EpisodeResult`
    (the package's episode record); ``utterances`` is what the audit adds, the agent's lines
    read out of the chat.

    Attributes:
        utterances: The agent's lines, in order.
        user_lines: The user's lines (the opening line first when there is one).
        episode_return: The episode's return (``nan`` when unknown).
        success: Whether the episode succeeded.
        final_emotion: The user's emotion at the end (``nan`` when unknown).
        card_id: The scenario card's id.
    """

    utterances: tuple[str, ...]
    user_lines: tuple[str, ...] = ()
    episode_return: float = math.nan
    success: bool = False
    final_emotion: float = math.nan
    card_id: str = ""

    @property
    def user(self) -> tuple[str, ...]:
        """The user's lines (``user_lines``; the name before the records were aligned)."""
        return self.user_lines

    @property
    def card(self) -> str:
        """The scenario card's id (``card_id``; the name before the records were aligned)."""
        return self.card_id


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _chat(messages: Iterable[Mapping[str, Any]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    agent, user = [], []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            agent.append(str(message.get("content", "")))
        elif role == "user":
            user.append(str(message.get("content", "")))
    return tuple(agent), tuple(user)


def as_episode(item: Any) -> Episode:
    """Read one episode in any accepted form (see the module docstring).

    Raises:
        TypeError: ``item`` is none of the accepted forms.

    Example:
        >>> as_episode({"utterances": ["Hi."], "return": 1, "card": "c1"}).episode_return
        1.0
        >>> log_line = {"steps": [{"agent": "Hi.", "user": "Hey."}], "episode_return": 0.5}
        >>> as_episode(log_line).utterances, as_episode("Hello.").utterances
        (('Hi.',), ('Hello.',))
    """
    if isinstance(item, Episode):
        return item
    if isinstance(item, str):
        return Episode((item,))
    if isinstance(item, EpisodeResult):
        agent, _ = _chat(item.messages)
        if item.turns and not agent:
            raise TypeError(
                "this EpisodeResult kept no messages: record it with keep_messages=True"
            )
        return Episode(
            agent,
            tuple(item.user_lines),
            float(item.episode_return),
            bool(item.success),
            float(item.final_emotion),
            str(item.card_id),
        )
    if isinstance(item, Mapping):
        if "utterances" in item:
            agent = tuple(str(u) for u in item["utterances"])
            user = tuple(str(u) for u in item.get("user", ()))
            ret = item.get("return", item.get("episode_return"))
            card = item.get("card", item.get("card_id", ""))
        elif "steps" in item:  # an episode-log line
            steps = item["steps"]
            agent = tuple(str(s.get("agent") or "") for s in steps)
            user = tuple(str(s.get("user") or "") for s in steps)
            messages = item.get("messages") or []
            if messages and messages[0].get("role") == "user":
                user = (str(messages[0].get("content", "")), *user)
            ret = item.get("episode_return", item.get("return"))
            card = item.get("card_id", item.get("card", ""))
        elif "messages" in item:
            agent, user = _chat(item["messages"])
            ret = item.get("return", item.get("episode_return"))
            card = item.get("card", item.get("card_id", ""))
        else:
            raise TypeError(
                "an episode dict needs 'utterances', 'steps' (an episode log) or 'messages'; "
                f"got keys {sorted(item)}"
            )
        return Episode(
            agent,
            user,
            _float(ret),
            bool(item.get("success", False)),
            _float(item.get("final_emotion")),
            str(card or ""),
        )
    if isinstance(item, Sequence) and all(isinstance(u, str) for u in item):
        return Episode(tuple(item))
    raise TypeError(f"cannot read an episode from {type(item).__name__}")


def as_episodes(items: Any) -> list[Episode]:
    """Read a collection of episodes (one string or one episode dict counts as one).

    Example:
        >>> [len(e.utterances) for e in as_episodes(["One.", ["Two.", "Three."]])]
        [1, 2]
    """
    if isinstance(items, str | Mapping | Episode | EpisodeResult):
        return [as_episode(items)]
    return [as_episode(item) for item in items]


def agent_utterances(items: Any) -> list[str]:
    """Every agent line of ``items`` (episodes in any form, or plain utterances), in order."""
    return [u for episode in as_episodes(items) for u in episode.utterances]
