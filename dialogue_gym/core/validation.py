"""Validation as data: each argument declares its type and range once; one validator checks it.

A :class:`Spec` says what one argument may be: a number (a range with open or closed ends,
finite or not), an integer, a flag, one of a few choices, a string, a mapping (of fixed or free
keys to values of one spec), a tuple of items of one spec, a name in a registry, or an object a
predicate accepts.
:func:`check` holds a value to its spec and raises :class:`InvalidArgument`, the one error type
of bad arguments, whose message names the owner, the field, the value and what is allowed::

    SimConfig.volatility['open'] = -1.0: must be a finite number in [0, 100]

The specs live beside what they describe: ``SimConfig``'s in its fields' metadata
(``dialogue_gym.core.config.SIM_SPECS``), the envs' in ``ENV_ARGUMENTS``,
``TEXT_ENV_ARGUMENTS`` and ``VECTOR_ENV_ARGUMENTS``, each reward wrapper's in its
``arguments`` class attribute; ``tests/test_validation.py`` fails for an argument without one.

Rules every spec shares: a bool is never a number (``True`` is not 1 here); numpy's integer
and float scalars count as ints and floats; NaN is never a number in range, and infinities only
where the spec says ``finite=False``; an integer too large for a float is not finite.

Example:
    >>> spec = number(0, 100)
    >>> check("SimConfig", "success_threshold", 70.0, spec)
    >>> check("SimConfig", "success_threshold", float("inf"), spec)
    Traceback (most recent call last):
    ...
    dialogue_gym.core.validation.InvalidArgument: SimConfig.success_threshold = inf: must be a finite number in [0, 100]
    >>> check("Env", "max_turns", True, integer(1, 1000))
    Traceback (most recent call last):
    ...
    dialogue_gym.core.validation.InvalidArgument: Env.max_turns = True: must be an integer in [1, 1000] (a bool is not a number)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import reprlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

__all__ = [
    "InvalidArgument",
    "Spec",
    "anything",
    "boolean",
    "check",
    "check_all",
    "choice",
    "integer",
    "mapping",
    "number",
    "registered",
    "sequence",
    "show",
    "text",
]

# How a value is shown in a message: long containers and strings are cut (fuzzed values can be
# huge, and a message is one line).
_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlevel = 3
_SHOW_LIMIT = 80


def show(value: Any) -> str:
    """``repr(value)``, cut to one short line (huge ints by their size: their repr may fail).

    Example:
        >>> show("x" * 500)[:12], len(show("x" * 500)) <= 80
        ("'xxxxxxxxxxx", True)
        >>> show(10**5000)
        '<an int of 5001 digits>'
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1000:
        # Python refuses str() of an int past 4300 digits; the size is what matters here.
        return f"<an int of {_digits(value)} digits>"
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"<a {type(value).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _digits(value: int) -> int:
    """The number of decimal digits of ``value``, without str() (limited to 4300 digits)."""
    value = abs(value)
    estimate = int(value.bit_length() * math.log10(2))
    # The estimate is exact or one short: compare with a power of ten to know which.
    return estimate + 1 if value >= 10**estimate else estimate


class InvalidArgument(ValueError):
    """A bad argument: the one error type the validator raises.

    A ``ValueError`` (not also a ``TypeError``, although a wrong type is one of its causes:
    ``gym.make`` rebuilds every ``TypeError`` an env's constructor raises from a one-string
    message with all the keyword arguments appended, which would lose the fields below and
    print a huge value whole). The message is one line, ``"{owner}.{field} = {value}:
    {allowed}"`` (``"{field} = ..."`` without an owner), and the value is shown cut short.

    Attributes:
        owner: What the argument belongs to: ``"SimConfig"``, ``"EmpathyDialogueEnv"``,
            ``"EmpathyDialogueEnv.reset"``, a reward wrapper's class name...
        field: The argument, with the path into it: ``"noise"``,
            ``"volatility['open']"``, ``"resolvers['validation'][0]"``, ``"options['card']"``.
        value: The value at fault (``None`` after unpickling: only its text travels).
        allowed: What would be allowed, as the message says it: ``"must be ..."`` or another
            reason (``"unknown SimConfig parameter; valid: ..."``).

    Example:
        >>> err = InvalidArgument("SimConfig", "noise", -1.0, "must be a finite number >= 0")
        >>> str(err)
        'SimConfig.noise = -1.0: must be a finite number >= 0'
        >>> isinstance(err, ValueError)
        True
    """

    def __init__(
        self, owner: str, field: str, value: Any, allowed: str, shown: str | None = None
    ) -> None:
        self.owner = owner
        self.field = field
        self.value = value
        self.allowed = allowed
        self.shown = show(value) if shown is None else shown
        where = f"{owner}.{field}" if owner else field
        super().__init__(f"{where} = {self.shown}: {allowed}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The value may not pickle (a policy holding a lock); its text always does.
        return (type(self), (self.owner, self.field, None, self.allowed, self.shown))


@dataclasses.dataclass(frozen=True)
class Spec:
    """What one argument may be. Build one with the functions below, not directly.

    Attributes:
        kind: ``"float"``, ``"int"``, ``"bool"``, ``"choice"``, ``"str"``, ``"mapping"``,
            ``"tuple"``, ``"registered"`` or ``"object"``.
        low: Lower bound of a number or integer (``None``: none).
        high: Upper bound (``None``: none).
        low_open: Whether ``low`` itself is excluded.
        high_open: Whether ``high`` itself is excluded.
        finite: Numbers: whether infinities are refused (NaN always is).
        options: Choices: the allowed values.
        keys: Mappings: the keys (``None``: any string keys).
        exact: Mappings with ``keys``: every key required (else: a subset allowed).
        item: Mappings: the spec of each value; tuples: of each item.
        min_len: Mappings and tuples: fewest entries; strings: shortest length.
        forbid: Strings: characters not allowed.
        optional: Whether ``None`` is allowed too.
        predicate: Objects: accepts the value (``None``: anything).
        names: Registered names: the registry's names, read at each check (so a plugin
            registered later counts).
        what: Objects and registered names: what is allowed, in words.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True
    options: tuple[Any, ...] = ()
    keys: tuple[str, ...] | None = None
    exact: bool = True
    item: Spec | None = None
    min_len: int = 0
    forbid: str = ""
    optional: bool = False
    predicate: Callable[[Any], bool] | None = None
    names: Callable[[], Iterable[str]] | None = None
    what: str = ""

    def describe(self) -> str:
        """What the spec allows, in words: the message says ``"must be " + describe()``.

        Example:
            >>> mapping(number(0, 1), keys=("easy", "hard")).describe()
            "a mapping with the keys 'easy', 'hard' (each a finite number in [0, 1])"
        """
        text = self._describe()
        return f"{text} or None" if self.optional and self.kind != "choice" else text

    def _describe(self) -> str:
        kind = self.kind
        if kind == "float":
            base = "a finite number" if self.finite else "a number (inf allowed, not NaN)"
            return base + self._range()
        if kind == "int":
            return "an integer" + self._range()
        if kind == "bool":
            return "True or False"
        if kind == "choice":
            return "one of " + ", ".join(map(repr, self.options))
        if kind == "str":
            text = "a non-empty string" if self.min_len else "a string"
            return text + (f" without {', '.join(map(repr, self.forbid))}" if self.forbid else "")
        item = f" (each {self.item.describe()})" if self.item is not None else ""
        if kind == "mapping":
            if self.keys is None:
                size = f" of at least {self.min_len} string key(s)" if self.min_len else ""
                return f"a mapping{size} with string keys{item}"
            listed = ", ".join(map(repr, self.keys))
            which = "the keys" if self.exact else "some of the keys"
            return f"a mapping with {which} {listed}{item}"
        if kind == "tuple":
            size = f" of at least {self.min_len} item(s)" if self.min_len else ""
            return f"a tuple or list{size}{item}"
        if kind == "registered":
            return f"a {self.what} name ({self._names()}) or a spec {{'name': ..., ...}}"
        return self.what or "anything"

    def _names(self) -> str:
        return ", ".join(map(repr, self.names())) if self.names is not None else ""

    def _range(self) -> str:
        low, high = self.low, self.high
        if low is not None and high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f" in {left}{_num(low)}, {_num(high)}{right}"
        if low is not None:
            return f" {'>' if self.low_open else '>='} {_num(low)}"
        if high is not None:
            return f" {'<' if self.high_open else '<='} {_num(high)}"
        return ""


def _num(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


# -- building specs -----------------------------------------------------------------------------


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    optional: bool = False,
) -> Spec:
    """A real number (int, float, numpy scalar; never a bool), in a range.

    Example:
        >>> number(0, 100, low_open=True).describe()
        'a finite number in (0, 100]'
    """
    return Spec("float", low, high, low_open, high_open, finite, optional=optional)


def integer(low: int | None = None, high: int | None = None, *, optional: bool = False) -> Spec:
    """An integer (int or numpy integer; never a bool or a float), in a closed range.

    Example:
        >>> integer(1, 1000).describe()
        'an integer in [1, 1000]'
    """
    return Spec("int", low, high, optional=optional)


def boolean() -> Spec:
    """``True`` or ``False`` (or numpy's bool)."""
    return Spec("bool")


def choice(*options: Any) -> Spec:
    """One of ``options`` (compared by equality; a bool never matches 0 or 1).

    Example:
        >>> choice("value", "advantage").describe()
        "one of 'value', 'advantage'"
    """
    return Spec("choice", options=options, optional=None in options)


def text(*, non_empty: bool = True, forbid: str = "", optional: bool = False) -> Spec:
    """A string, non-empty by default, without the characters in ``forbid``."""
    return Spec("str", min_len=int(non_empty), forbid=forbid, optional=optional)


def mapping(
    item: Spec,
    *,
    keys: tuple[str, ...] | None = None,
    exact: bool = True,
    min_len: int = 0,
    optional: bool = False,
) -> Spec:
    """A mapping whose values each match ``item``.

    Args:
        item: The spec of every value.
        keys: The allowed keys (``None``: any string keys).
        exact: With ``keys``: every key is required (``False``: a subset will do).
        min_len: Fewest entries.
        optional: Whether ``None`` is allowed too.
    """
    return Spec("mapping", keys=keys, exact=exact, item=item, min_len=min_len, optional=optional)


def sequence(item: Spec, *, min_len: int = 0) -> Spec:
    """A tuple or list (never a string) whose items each match ``item``."""
    return Spec("tuple", item=item, min_len=min_len)


def registered(names: Callable[[], Iterable[str]], kind: str, *, optional: bool = False) -> Spec:
    """A name in a registry, or a spec ``{"name": name, **kwargs}`` naming one.

    The message on failure reads as the registry's own: ``unknown {kind}; valid: ...``.

    Args:
        names: Returns the registry's names (``Registry.names``), read at each check.
        kind: What the names stand for, as the registry says it (``Registry.kind``).
        optional: Whether ``None`` is allowed too.

    Example:
        >>> voices = registered(lambda: ("llm", "template"), "user voice")
        >>> check("Env", "voice", {"name": "template"}, voices)
        >>> check("Env", "voice", "shout", voices)
        Traceback (most recent call last):
        ...
        dialogue_gym.core.validation.InvalidArgument: Env.voice = 'shout': unknown user voice; valid: 'llm', 'template', or a spec {'name': one of them, ...}
    """
    return Spec("registered", names=names, what=kind, optional=optional)


def anything(what: str, predicate: Callable[[Any], bool] | None = None) -> Spec:
    """An object ``predicate`` accepts (``None``: anything; checked where it is used).

    For arguments another validator owns (a registry's names, ``load_scenarios``'s specs,
    ``SimConfig.coerce``): ``what`` documents them.
    """
    return Spec("object", predicate=predicate, what=what)


# -- the validator -------------------------------------------------------------------------------


def _is_bool(value: Any) -> bool:
    # numpy's bool is no numbers.Integral, but name it as a bool all the same.
    return isinstance(value, bool) or type(value).__name__ in ("bool_", "bool")


def check(owner: str, field: str, value: Any, spec: Spec) -> None:
    """Hold ``value`` to ``spec``.

    Args:
        owner: What the argument belongs to (a class name), for the message.
        field: The argument's name (with the path into it, for entries).
        value: The value.
        spec: What is allowed.

    Raises:
        InvalidArgument: The value does not match; the message names ``owner``, ``field``,
            the value and what is allowed.
    """
    if value is None and spec.optional:
        return
    kind = spec.kind
    if kind == "float":
        _check_number(owner, field, value, spec)
    elif kind == "int":
        ok = isinstance(value, numbers.Integral) and not _is_bool(value)
        if not (ok and _in_range(value, spec)):
            _fail(owner, field, value, spec)
    elif kind == "bool":
        if not _is_bool(value):
            _fail(owner, field, value, spec)
    elif kind == "choice":
        # By type as well as equality: True == 1, and a bool is never a choice of numbers.
        if _is_bool(value) or not any(
            value is option or (isinstance(value, type(option)) and value == option)
            for option in spec.options
        ):
            _fail(owner, field, value, spec)
    elif kind == "str":
        if not isinstance(value, str) or len(value.strip()) < spec.min_len:
            _fail(owner, field, value, spec)
        if any(ch in value for ch in spec.forbid):
            _fail(owner, field, value, spec)
    elif kind == "mapping":
        _check_mapping(owner, field, value, spec)
    elif kind == "tuple":
        if not isinstance(value, tuple | list) or len(value) < spec.min_len:
            _fail(owner, field, value, spec)
        if spec.item is not None:
            for i, item in enumerate(value):
                check(owner, f"{field}[{i}]", item, spec.item)
    elif kind == "registered":
        name = value.get("name") if isinstance(value, Mapping) else value
        if not (isinstance(name, str) and spec.names is not None and name in spec.names()):
            _fail(owner, field, value, spec)
    elif spec.predicate is not None and not spec.predicate(value):
        _fail(owner, field, value, spec)


def check_all(owner: str, specs: Mapping[str, Spec], values: Mapping[str, Any]) -> None:
    """Check each named value against its spec, in ``values``' order.

    Raises:
        InvalidArgument: The first value that does not match.
        KeyError: A value without a spec (a programming error: every argument declares one).

    Example:
        >>> check_all("Env", {"max_turns": integer(1, 1000)}, {"max_turns": 0})
        Traceback (most recent call last):
        ...
        dialogue_gym.core.validation.InvalidArgument: Env.max_turns = 0: must be an integer in [1, 1000]
    """
    for name, value in values.items():
        check(owner, name, value, specs[name])


def _fail(owner: str, field: str, value: Any, spec: Spec) -> NoReturn:
    allowed = f"must be {spec.describe()}"
    if spec.kind == "registered":  # worded as the registry words it
        allowed = (
            f"unknown {spec.what}; valid: {spec._names()}, or a spec {{'name': one of them, ...}}"
        )
    if spec.kind in ("float", "int") and _is_bool(value):
        allowed += " (a bool is not a number)"
    raise InvalidArgument(owner, field, value, allowed)


def _check_number(owner: str, field: str, value: Any, spec: Spec) -> None:
    if _is_bool(value) or not isinstance(value, numbers.Real):
        _fail(owner, field, value, spec)
    if isinstance(value, numbers.Integral):
        # An int is exact, but one past the largest float would overflow where it is used.
        finite = abs(int(value)) <= sys.float_info.max
    else:
        if value != value:  # NaN: in no range, whatever the spec
            _fail(owner, field, value, spec)
        finite = math.isfinite(value)
    if (spec.finite and not finite) or not _in_range(value, spec):
        _fail(owner, field, value, spec)


def _in_range(value: Any, spec: Spec) -> bool:
    low, high = spec.low, spec.high
    if low is not None and (value <= low if spec.low_open else value < low):
        return False
    return not (high is not None and (value >= high if spec.high_open else value > high))


def _check_mapping(owner: str, field: str, value: Any, spec: Spec) -> None:
    if not isinstance(value, Mapping) or len(value) < spec.min_len:
        _fail(owner, field, value, spec)
    if spec.keys is None:
        for key in value:
            if not isinstance(key, str):
                raise InvalidArgument(owner, field, value, f"keys must be strings, got {show(key)}")
    else:
        if spec.exact:
            missing = [key for key in spec.keys if key not in value]
            if missing:
                raise InvalidArgument(
                    owner,
                    field,
                    value,
                    f"lacks {', '.join(map(repr, missing))}; must be {spec.describe()}",
                )
        for key in value:
            if key not in spec.keys:
                raise InvalidArgument(
                    owner,
                    f"{field}[{show(key)}]",
                    value[key],
                    f"unknown key; valid: {', '.join(map(repr, spec.keys))}",
                )
    if spec.item is not None:
        for key, item in value.items():
            check(owner, f"{field}[{show(key)}]", item, spec.item)
