"""The one text-generation protocol every backend implements, always batched.

A backend turns a batch of chats (each a list of ``{"role", "content"}`` messages) into one
reply per chat. Backends are named by a *spec* (a string or a small mapping), never passed
around as live clients, so that environments pickle and deep-copy without their model:
:func:`dialogue_gym.llm.backends.get_backend` resolves a spec to one instance per process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: A chat: a list of ``{"role": ..., "content": ...}`` messages.
Chat = Sequence[Mapping[str, str]]


class BackendError(RuntimeError):
    """A backend could not load its model or failed to generate."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one batched ``generate`` call.

    Attributes:
        max_tokens: Most new tokens per reply.
        temperature: Sampling temperature; 0 means greedy.
        top_p: Nucleus-sampling mass.
        seeds: One seed per chat, for reproducible sampling; ``None`` lets the backend
            choose (not reproducible). Its length must match the number of chats.
        stop: Strings that end a reply early (not included in the reply).

    Example:
        >>> GenerationParams(max_tokens=16, seeds=(1, 2)).seeds
        (1, 2)
    """

    max_tokens: int = 48
    temperature: float = 0.7
    top_p: float = 0.9
    seeds: tuple[int, ...] | None = None
    stop: tuple[str, ...] = ()

    def seeds_for(self, n: int) -> tuple[int | None, ...]:
        """The per-chat seeds for a batch of ``n`` chats (``None`` where unseeded).

        Raises:
            ValueError: ``seeds`` is given but its length is not ``n``.

        Example:
            >>> GenerationParams(seeds=(7, 8)).seeds_for(2), GenerationParams().seeds_for(2)
            ((7, 8), (None, None))
        """
        if self.seeds is None:
            return (None,) * n
        if len(self.seeds) != n:
            raise ValueError(f"got {len(self.seeds)} seeds for {n} chats; pass one seed per chat")
        return tuple(self.seeds)


@runtime_checkable
class Backend(Protocol):
    """A batched text generator.

    Attributes:
        name: The registry name of the backend (``"llama_cpp"``...).
    """

    name: str

    def generate(self, chats: Sequence[Chat], params: GenerationParams) -> list[str]:
        """Reply to every chat in the batch.

        Args:
            chats: The chats, each a sequence of ``{"role", "content"}`` messages.
            params: Sampling settings; ``params.seeds`` holds one seed per chat.

        Returns:
            One stripped reply per chat, in order.
        """
        ...


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first stop string, excluded (servers cut there already; some do not).

    Example:
        >>> cut_at_stop("I see.\\nUser: and", ["\\nUser:", "###"])
        'I see.'
    """
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if 0 <= i < cut:
            cut = i
    return text[:cut]
