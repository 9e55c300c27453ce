"""How the user side builds from its registries: by name or spec, with a backend when taken.

Voices, realisers, recognisers and judges are registered as factories; the env hands every
one of them its ``backend`` spec. A factory that takes no ``backend`` (a plain class with no
arguments, a template voice) is called without it, so a plugin need not accept one.

Example:
    >>> from dialogue_gym.registry import Registry
    >>> things = Registry("thing")
    >>> _ = things.register("plain", lambda: "no backend")
    >>> _ = things.register("llm", lambda backend, size=1: f"{backend} x{size}")
    >>> build(things, "plain", "llama_cpp", {}), build(things, {"name": "llm", "size": 2}, "b", {})
    ('no backend', 'b x2')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from dialogue_gym.llm.backends import BackendSpec
from dialogue_gym.registry import Registry

T = TypeVar("T")

__all__ = ["build"]


def _takes_backend(factory: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): pass what was given
        return True
    return any(p.name == "backend" or p.kind is p.VAR_KEYWORD for p in params)


def build(
    registry: Registry[T],
    spec: str | Mapping[str, Any],
    backend: BackendSpec,
    kwargs: Mapping[str, Any],
) -> T:
    """Build ``spec`` (a name, or ``{"name": ..., **kwargs}``) from ``registry``.

    Raises:
        ValueError: Unknown name (the message names the valid ones) or a spec without a name.
    """
    options = dict(kwargs)
    if isinstance(spec, Mapping):
        given = dict(spec)
        name = given.pop("name", None)
        if name is None:
            raise ValueError(f"a {registry.kind} spec needs a 'name' key, got {dict(spec)!r}")
        options = {**given, **options}
    else:
        name = spec
    factory = registry.entry(name).factory
    if _takes_backend(factory):
        options = {"backend": backend, **options}
    return factory(**options)
