"""The hearing user: what the simulated user perceives of *how* an agent's turn was said.

In ``EmpathyDialogueText-v1`` the recogniser still names the strategy a turn carries, and a
listener reads how it was delivered: tone, relevance, coherence, repetition, specificity
(:mod:`~dialogue_gym.user.hearing.listener`). The affective core scales and signs the strategy's
effect by that reading (``AffectiveCore.step(act, delivery)``), so an insult that carries a cue
phrase hurts, an off-topic line builds nothing, and a pile of cue phrases lands less than one
clear sentence.

Listeners are registered like every other extension point:

- ``"embedding"`` (the default): all-MiniLM-L6-v2 sentence embeddings (packaged, nothing
  downloaded) for relevance and a second opinion on tone, word lists for the rest;
- ``"lexical"``: word lists only; bit-exact on every machine, no model.

Example:
    >>> from dialogue_gym.user.hearing import LISTENERS, make_listener
    >>> LISTENERS.names()
    ('embedding', 'lexical')
    >>> make_listener("lexical").kind
    'lexical'
"""

from __future__ import annotations

from typing import Any

from dialogue_gym.registry import Registry
from dialogue_gym.user.hearing.listener import (
    EmbeddingListener,
    Heard,
    HearingContext,
    LexicalListener,
    Listener,
)

__all__ = [
    "LISTENERS",
    "EmbeddingListener",
    "Heard",
    "HearingContext",
    "LexicalListener",
    "Listener",
    "make_listener",
    "register_listener",
]

#: Listener name -> factory (``gym.make("EmpathyDialogueText-v1", listener=name)``).
LISTENERS: Registry[Listener] = Registry("listener")
LISTENERS.register(
    "embedding", EmbeddingListener, doc="all-MiniLM-L6-v2 similarities and word lists"
)
LISTENERS.register("lexical", LexicalListener, doc="word lists only (bit-exact, no model)")


def register_listener(name: str, factory: Any, **options: Any) -> Any:
    """Register a listener factory under ``name`` (see :class:`~dialogue_gym.registry.Registry`)."""
    return LISTENERS.register(name, factory, **options)


def make_listener(spec: str | dict[str, Any]) -> Listener:
    """Build a listener from a name or a spec ``{"name": ..., **kwargs}``."""
    return LISTENERS.build(spec)
