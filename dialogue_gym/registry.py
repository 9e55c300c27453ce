"""One registry pattern for every extension point: register by name, list, build from a spec.

Envs, rewards, learners, backends, user voices, agent realisers, recognisers, judges and
reference policies each keep a :class:`Registry`. Whatever lists them — the CLI's choices, the
study's reward list, the metrics' reward probes, the docs' tables — reads the registry, so a
plugin that registers one more name appears everywhere with no other edit.

Example:
    >>> colours = Registry("colour")
    >>> @colours.register("red", doc="the warm one")
    ... def red(shade: int = 1) -> str:
    ...     return f"red{shade}"
    >>> colours.names()
    ('red',)
    >>> colours.build("red", shade=2)
    'red2'
    >>> colours.build({"name": "red", "shade": 3})
    'red3'
    >>> colours.build("blue")
    Traceback (most recent call last):
    ...
    ValueError: unknown colour 'blue'; valid: 'red'
    >>> colours.register("red", red)
    Traceback (most recent call last):
    ...
    ValueError: colour 'red' is already registered

A registry is also a read-only mapping name -> factory (``"red" in colours``,
``sorted(colours)``, ``colours["red"]``), so code written against the dicts it replaced
keeps working; ``unregister`` (or :meth:`Registry.restoring` in tests) removes a name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Entry", "Registry"]


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: what builds it, a one-line description, and free-form metadata."""

    name: str
    factory: Callable[..., T]
    doc: str = ""
    meta: Mapping[str, Any] | None = None


class Registry(Mapping[str, Callable[..., T]], Generic[T]):
    """Names -> factories, for one extension point (a read-only mapping name -> factory).

    Args:
        kind: What the names stand for, singular ("reward", "backend"...): error messages
            and docs use it.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T] | None = None,
        *,
        doc: str = "",
        replace: bool = False,
        **meta: Any,
    ) -> Any:
        """Register ``factory`` under ``name`` (or use as a decorator without ``factory``).

        Args:
            name: The new name (a non-empty string).
            factory: Builds the object: ``factory(*args, **kwargs)``.
            doc: One line for listings (default: the factory docstring's first line).
            replace: Allow replacing an existing name (tests and reloads); off by default.
            **meta: Extra facts about the entry that listings may show.

        Raises:
            ValueError: ``name`` is taken (and ``replace`` is false) or not a non-empty string.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(f: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            text = doc or (f.__doc__ or "").strip().split("\n", 1)[0]
            self._entries[name] = Entry(name, f, text, dict(meta))
            return f

        return add if factory is None else add(factory)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (plugins' tests clean up with it)."""
        self._entries.pop(self._check(name).name)

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` of ``name``.

        Raises:
            ValueError: Unknown name (the message lists the valid ones).
        """
        return self._check(name)

    def build(
        self,
        spec: str | Mapping[str, Any],
        *args: Any,
        offered: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> T:
        """Build from a name, or from a spec ``{"name": ..., **kwargs}``.

        Keyword arguments given here override the spec's.

        Args:
            spec: A registered name, or a mapping with a ``"name"`` key and keyword arguments.
            *args: Positional arguments for the factory.
            offered: Keyword arguments passed only to a factory that takes them (by name, or
                through ``**kwargs``): the env offers every user-side factory its ``backend``,
                and a plain class with no arguments is built without it, so a plugin need not
                accept one.
            **kwargs: Keyword arguments for the factory.

        Raises:
            ValueError: Unknown name (the message lists the valid ones) or a spec without a
                ``"name"`` key.

        Example:
            >>> things = Registry("thing")
            >>> _ = things.register("plain", lambda: "no backend")
            >>> _ = things.register("llm", lambda backend, size=1: f"{backend} x{size}")
            >>> things.build("plain", offered={"backend": "b"})
            'no backend'
            >>> things.build({"name": "llm", "size": 2}, offered={"backend": "b"})
            'b x2'
        """
        name, given = self.parse(spec)
        kwargs = {**given, **kwargs}
        factory = self._check(name).factory
        if offered:
            taken = {k: v for k, v in offered.items() if _takes(factory, k)}
            kwargs = {**taken, **kwargs}
        return factory(*args, **kwargs)

    def parse(self, spec: str | Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """A spec -> ``(name, keyword arguments)``: a name alone, or ``{"name": ..., **kwargs}``.

        Raises:
            ValueError: A mapping without a ``"name"`` key.

        Example:
            >>> Registry("colour").parse({"name": "red", "shade": 3})
            ('red', {'shade': 3})
        """
        if isinstance(spec, Mapping):
            options = dict(spec)
            if "name" not in options:
                raise ValueError(f"a {self.kind} spec needs a 'name' key, got {dict(spec)!r}")
            return options.pop("name"), options
        return spec, {}

    def _check(self, name: Any) -> Entry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            valid = ", ".join(map(repr, self._entries))
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    @contextmanager
    def restoring(self) -> Iterator[Registry[T]]:
        """Undo, on exit, whatever was registered or unregistered inside (for tests).

        Example:
            >>> shapes = Registry("shape")
            >>> with shapes.restoring():
            ...     _ = shapes.register("square", lambda: "[]")
            ...     "square" in shapes
            True
            >>> "square" in shapes
            False
        """
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)

    def __getitem__(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name].factory
        except (KeyError, TypeError):
            valid = ", ".join(map(repr, self._entries))
            raise KeyError(f"unknown {self.kind} {name!r}; valid: {valid}") from None

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable value is not a name
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"


def _takes(factory: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): pass what was given
        return True
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)
