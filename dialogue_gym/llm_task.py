"""Plumbing shared by the simulator's LLM tasks (act recognition, the emotion judge).

A task names its backend by a spec and resolves it lazily, so it pickles and deep-copies
without the model (the same contract as the voices); its prompts are text files in
``dialogue_gym/prompts/``, read once per process.

Example:
    >>> client = BackendClient("llama_cpp")
    >>> import pickle
    >>> pickle.loads(pickle.dumps(client)).spec
    'llama_cpp'
    >>> load_prompt("recognise_system.txt").startswith("You label")
    True
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dialogue_gym.backends import Backend, BackendSpec, GenerationParams, get_backend

__all__ = ["BackendClient", "load_prompt", "spec_label"]

_PROMPT_DIR = Path(__file__).parent / "prompts"
_PROMPTS: dict[str, str] = {}
_LOCK = threading.Lock()


def load_prompt(name: str) -> str:
    """A prompt template from ``dialogue_gym/prompts/`` (read once per process, stripped).

    Raises:
        FileNotFoundError: No such prompt file.
    """
    text = _PROMPTS.get(name)
    if text is None:
        with _LOCK:
            text = _PROMPTS.get(name)
            if text is None:
                text = (_PROMPT_DIR / name).read_text(encoding="utf-8").strip()
                _PROMPTS[name] = text
    return text


def spec_label(spec: BackendSpec) -> Any:
    """A printable, picklable description of a backend spec (for ``info`` and reprs)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return dict(spec)
    return getattr(spec, "name", type(spec).__name__)


class BackendClient:
    """A backend named by a spec, resolved on first use and never pickled.

    Args:
        spec: A backend spec (see :mod:`dialogue_gym.backends`), or a live backend object
            (tests use small fakes; a live backend is pickled along with the client).
    """

    def __init__(self, spec: BackendSpec = "llama_cpp") -> None:
        self.spec = spec
        self._backend: Backend | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_backend"] = None  # the model never travels; get_backend reconnects
        return state

    @property
    def backend(self) -> Backend:
        """The shared backend for ``spec``."""
        if self._backend is None:
            self._backend = get_backend(self.spec)
        return self._backend

    def generate(
        self, chats: Sequence[Sequence[Mapping[str, str]]], params: GenerationParams
    ) -> list[str]:
        """One batched call; checks that the backend answered every chat.

        Raises:
            RuntimeError: The backend returned a different number of replies.
        """
        if not chats:
            return []
        replies = self.backend.generate(chats, params)
        if len(replies) != len(chats):
            raise RuntimeError(
                f"backend {spec_label(self.spec)!r} returned {len(replies)} replies for "
                f"{len(chats)} chats"
            )
        return [r if isinstance(r, str) else "" for r in replies]
