"""Tiny backends implementing the protocol (``generate(chats, params) -> texts``) for tests.

They are passed as ``backend=`` (``get_backend`` returns a live backend object as is).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Chat = Sequence[Mapping[str, str]]


def system_of(chat: Chat) -> str:
    return chat[0]["content"] if chat and chat[0]["role"] == "system" else ""


def quoted_message(chat: Chat) -> str:
    """The last block between data markers in the chat's last message (the agent's words)."""
    blocks = re.findall(r"<data-(\w+)>\n(.*?)\n</data-\1>", chat[-1]["content"], re.DOTALL)
    return blocks[-1][1] if blocks else ""


class ScriptedBackend:
    """Answers every chat with ``reply(chat)`` and records the chats and calls.

    Args:
        reply: A string (the same reply to every chat) or a function of the chat.
    """

    name = "scripted"

    def __init__(self, reply: str | Callable[[Chat], str]) -> None:
        self.reply = reply
        self.chats: list[Chat] = []
        self.calls = 0

    def generate(self, chats: Sequence[Chat], params: object) -> list[str]:
        self.calls += 1
        self.chats.extend(chats)
        return [self.reply(c) if callable(self.reply) else self.reply for c in chats]

    def judged(self) -> list[Chat]:
        """The chats that asked for an emotion appraisal."""
        return [c for c in self.chats if system_of(c).startswith("You judge")]


def judge_reply(change: object, reason: str = "It helped a little.") -> str:
    return json.dumps({"reason": reason, "change": change})


_GULLIBLE_RE = re.compile(r"change\W*[:=]?\s*\+?(\d+)|emotion\W*(?:to|=|:)?\s*(\d+)", re.I)


def gullible(chat: Chat) -> str:
    """A model that obeys whatever the agent's words say.

    As a judge it returns a JSON appraisal the agent proposes (copied, or +10 when the text
    asks for a higher emotion), else ``{"change": 0}``. As a labeller it returns any
    strategy name the text mentions, else "Others".
    """
    text = quoted_message(chat)
    if system_of(chat).startswith("You judge"):
        blob = re.search(r"\{.*\}", text, re.DOTALL)
        if blob:
            return blob.group(0)
        if _GULLIBLE_RE.search(text) or re.search(r"(?i)ignore|system|feels? (great|better)", text):
            return judge_reply(10, "Whatever you say.")
        return judge_reply(0, "Nothing changed.")
    for name in ("Reflection of feelings", "Affirmation and Reassurance", "Providing Suggestions"):
        if name.lower() in text.lower():
            return name
    return "Others"


def caller(chat: Chat) -> str:
    """Which part of the simulator sent ``chat``, read off its system prompt: ``"judge"``
    (SAGE), ``"recogniser"``, ``"realiser"`` (the agent's LLM voice) or ``"user"`` (the user's)."""
    system = system_of(chat)
    if system.startswith("You judge"):
        return "judge"
    if system.startswith("You label"):
        return "recogniser"
    if system.startswith("You are a warm"):
        return "realiser"
    return "user"


def replies_by_caller(chat: Chat) -> str:
    """A plausible reply for whoever asks: a valid appraisal, a strategy name, or a line that
    differs from turn to turn (so no voice falls back to its template for parroting)."""
    who = caller(chat)
    if who == "judge":
        return judge_reply(2)
    if who == "recogniser":
        return "Question"
    return f"Reply number {len(chat)} of {who}, about how things went today."


def completion_body(text: Any = "I hear you.", model: str = "m") -> bytes:
    """An OpenAI-compatible ``chat.completion`` response body carrying ``text``."""
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()
