"""Plumbing shared by everything in the simulator that calls an LLM.

The user voice, the agent realiser (``dialogue_gym.user.voices``), the LLM recogniser
(``dialogue_gym.user.recognise.llm``) and the SAGE judge (``dialogue_gym.user.judge``) each reach
their backend through a :class:`BackendClient`: the voices are clients, the recogniser and the
judge hold one as ``client``. A client names its backend by a spec and resolves it lazily, so it
pickles and deep-copies without the model; the vector env swaps every client's backend for a
batching proxy (:meth:`BackendClient.attach`) so that N users make one call per round. Prompts
are text files in ``dialogue_gym/llm/prompts/``, read once per process.

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

from dialogue_gym.llm.backends import Backend, BackendSpec, GenerationParams, get_backend

__all__ = ["BackendClient", "load_prompt", "spec_label"]

_PROMPT_DIR = Path(__file__).parent / "prompts"
_PROMPTS: dict[str, str] = {}
_LOCK = threading.Lock()


def load_prompt(name: str) -> str:
    """A prompt template from ``dialogue_gym/llm/prompts/`` (read once per process, stripped).

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

    The one handle through which a simulator part calls its backend: whatever routes the
    calls elsewhere (the vector env's batching) swaps this handle, and every caller follows.

    Args:
        spec: A backend spec (see :mod:`dialogue_gym.llm.backends`), or a live backend object
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
        """The backend calls go to: the shared one for ``spec``, or the attached proxy."""
        if self._backend is None:
            self._backend = get_backend(self.spec)
        return self._backend

    def attach(self, backend: Backend | None) -> None:
        """Send calls to ``backend`` (a proxy such as the vector env's batcher) from now on.

        Like the resolved backend, an attached one is dropped when the client is pickled or
        deep-copied: a copy talks to the shared backend for ``spec`` again.

        Args:
            backend: The backend to use; ``None`` goes back to the one ``spec`` names.
        """
        self._backend = backend

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
