"""Text-generation backends behind one batched protocol, named by a spec.

A *spec* names a backend and its options without holding a live model, so environments
that carry it pickle and deep-copy cheaply:

- a string: ``"llama_cpp"`` or ``"llama_cpp:/path/to/model.gguf"`` (the part after the first
  ``:`` is the backend's main argument: a model path for ``llama_cpp``, a hub id or path for
  ``transformers``, the base URL for ``openai``: ``"openai:http://127.0.0.1:8000/v1"``);
- a mapping: ``{"name": "llama_cpp", "model_path": "/path/model.gguf", "n_ctx": 2048}``.

The backends: ``llama_cpp`` (the embedded GGUF on the CPU, the default), ``transformers``
(:mod:`~dialogue_gym.llm.backends.transformers_backend`: any causal LM, CPU or GPU, true
batching) and ``openai`` (:mod:`~dialogue_gym.llm.backends.openai_backend`: any
OpenAI-compatible server). See ``docs/backends.md``.

:func:`get_backend` resolves a spec to one instance per process (the model loads once and
every environment shares it). New backends join the registry (:data:`BACKENDS`, a
:class:`~dialogue_gym.registry.Registry`) with :func:`register_backend`.

Example:
    >>> from dialogue_gym.llm.backends import get_backend
    >>> get_backend("llama_cpp") is get_backend({"name": "llama_cpp"})
    True
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from dialogue_gym.llm.backends.base import Backend, BackendError, Chat, GenerationParams
from dialogue_gym.registry import Registry

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendSpec",
    "Chat",
    "GenerationParams",
    "available_backends",
    "get_backend",
    "register_backend",
    "spec_key",
    "unregister_backend",
]

#: What names a backend: a registry name (optionally ``name:main_argument``), a mapping with
#: a ``"name"`` key and the backend's options, or a live backend (not recommended through
#: ``gym.make``: it is deep-copied and pickled with the env).
BackendSpec = str | Mapping[str, Any] | Backend


#: Backend name -> factory; each entry's ``meta["main_arg"]`` is the keyword that the part
#: after ``name:`` in a string spec fills.
BACKENDS: Registry[Backend] = Registry("backend")
_INSTANCES: dict[tuple[str, tuple[tuple[str, str], ...]], Backend] = {}
_LOCK = threading.Lock()


def register_backend(name: str, factory: Callable[..., Backend], main_arg: str) -> None:
    """Add (or replace) a backend in the registry.

    Replacing a name drops the instances the old factory built, so the next
    :func:`get_backend` builds with the new one.

    Args:
        name: The name specs use, e.g. ``"llama_cpp"``.
        factory: Called with the spec's options as keywords; must not load a model
            eagerly (backends load on first ``generate``).
        main_arg: The keyword filled by the part after ``name:`` in a string spec.

    Example:
        >>> register_backend("echo_doc", lambda **options: options, main_arg="text")
        >>> get_backend("echo_doc:hello")
        {'text': 'hello'}
        >>> unregister_backend("echo_doc")  # (the example cleans up after itself)
    """
    with _LOCK:
        BACKENDS.register(name, factory, replace=True, main_arg=main_arg)
        _forget_instances(name)


def unregister_backend(name: str) -> None:
    """Remove a backend and the instances it built (plugins' tests clean up with it).

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
    """
    with _LOCK:
        _lookup(name)
        BACKENDS.unregister(name)
        _forget_instances(name)


def _forget_instances(name: str) -> None:
    for key in [key for key in _INSTANCES if key[0] == name]:
        del _INSTANCES[key]


def available_backends() -> tuple[str, ...]:
    """The registered backend names, sorted.

    Example:
        >>> "llama_cpp" in available_backends()
        True
    """
    return tuple(sorted(BACKENDS))


def _parse(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, str):
        name, sep, arg = spec.partition(":")
        name = name.strip()
        main_arg = _lookup(name)
        return name, ({main_arg: arg} if sep and arg else {})
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise ValueError(
                f"a backend spec mapping needs a 'name' key (one of {available_backends()}), "
                f"got keys {sorted(options)}"
            )
        name = str(options.pop("name"))
        _lookup(name)
        # An option left at None means "the backend's default", so it shares the instance.
        return name, {k: v for k, v in options.items() if v is not None}
    raise TypeError(f"a backend spec is a string or a mapping, got {type(spec).__name__}: {spec!r}")


def _lookup(name: str) -> str:
    """The main argument of backend ``name``."""
    if name not in BACKENDS:
        raise ValueError(
            f"unknown backend {name!r}; valid backends: {', '.join(available_backends())}"
        )
    return str((BACKENDS.entry(name).meta or {})["main_arg"])


def spec_key(spec: str | Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The canonical, hashable form of a spec: ``(name, sorted (option, repr(value)) pairs)``.

    Two specs with the same key resolve to the same instance.

    Example:
        >>> spec_key("llama_cpp:/m.gguf") == spec_key({"name": "llama_cpp", "model_path": "/m.gguf"})
        True
    """
    name, options = _parse(spec)
    return name, tuple(sorted((k, repr(v)) for k, v in options.items()))


def get_backend(spec: BackendSpec = "llama_cpp") -> Backend:
    """Resolve a spec to the process-wide backend instance (created on first use).

    Thread-safe. Creating a backend does not load its model; the first ``generate`` does.

    Args:
        spec: ``"llama_cpp"``, ``"llama_cpp:/path/model.gguf"``, a mapping such as
            ``{"name": "llama_cpp", "n_ctx": 4096}``, or an already built backend
            (returned as is).

    Returns:
        The shared backend for that spec.

    Raises:
        ValueError: Unknown backend name or option (the message lists the valid names).
        TypeError: The spec is neither a string nor a mapping nor a backend.
    """
    if not isinstance(spec, str | Mapping) and callable(getattr(spec, "generate", None)):
        return spec  # a live backend
    name, options = _parse(spec)  # type: ignore[arg-type]
    key = (name, tuple(sorted((k, repr(v)) for k, v in options.items())))
    with _LOCK:
        backend = _INSTANCES.get(key)
        if backend is None:
            try:
                backend = BACKENDS.build(name, **options)
            except TypeError as exc:
                raise ValueError(
                    f"bad options {sorted(options)} for backend {name!r}: {exc}"
                ) from exc
            _INSTANCES[key] = backend
        return backend


def _llama_cpp_factory(**options: Any) -> Backend:
    from dialogue_gym.llm.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(**options)


def _transformers_factory(**options: Any) -> Backend:
    from dialogue_gym.llm.backends.transformers_backend import TransformersBackend

    return TransformersBackend(**options)


def _openai_factory(**options: Any) -> Backend:
    from dialogue_gym.llm.backends.openai_backend import OpenAIBackend

    return OpenAIBackend(**options)


register_backend("llama_cpp", _llama_cpp_factory, main_arg="model_path")
register_backend("transformers", _transformers_factory, main_arg="model")
register_backend("openai", _openai_factory, main_arg="base_url")
