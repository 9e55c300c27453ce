"""The chat as it goes into ``info["messages"]``: read-only messages, cheap to copy.

Vector envs deep-copy ``info`` every step (SB3's ``DummyVecEnv`` does); a transcript of
plain dicts made that copy the largest cost of a training step. Messages never change once
said, so they are read-only and a deep copy of them is the object itself.

Example:
    >>> import copy
    >>> msg = Message(role="user", content="Hi.", trainable=False)
    >>> chat = Transcript([msg])
    >>> copy.deepcopy(chat) is chat, chat[0]["content"], chat.to_list()[0]["role"]
    (True, 'Hi.', 'user')
    >>> msg["content"] = "changed"
    Traceback (most recent call last):
    ...
    TypeError: messages are read-only; copy one with dict(message)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NoReturn


def _read_only(*args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("messages are read-only; copy one with dict(message)")


class Message(dict):
    """A chat message (``role``, ``content`` and annotations), a read-only ``dict``.

    Works wherever a chat message dict does (``tokenizer.apply_chat_template``, JSON).
    """

    __slots__ = ()
    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = __ior__ = _read_only

    def __deepcopy__(self, memo: dict) -> Message:
        return self

    def __copy__(self) -> Message:
        return self

    def __reduce__(self) -> tuple[type[Message], tuple[dict[str, Any]]]:
        return (Message, (dict(self),))


class Transcript(Sequence[Message]):
    """An immutable sequence of :class:`Message`; deep copies share it.

    Not a ``tuple`` subclass on purpose: Gymnasium's data-reuse checker treats a tuple as a
    container and would flag the (read-only) messages shared between steps.
    """

    __slots__ = ("_messages",)

    def __init__(self, messages: Iterable[Message] = ()) -> None:
        self._messages = tuple(messages)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return Transcript(self._messages[index])
        return self._messages[index]

    def __len__(self) -> int:
        return len(self._messages)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Transcript):
            return self._messages == other._messages
        if isinstance(other, list | tuple):
            return list(self._messages) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Transcript({list(self._messages)!r})"

    def __deepcopy__(self, memo: dict) -> Transcript:
        return self

    def __reduce__(self) -> tuple[type[Transcript], tuple[tuple[Message, ...]]]:
        return (Transcript, (self._messages,))

    def to_list(self) -> list[dict[str, Any]]:
        """Plain, mutable dicts (for JSON or editing)."""
        return [dict(m) for m in self._messages]
