"""Scenario cards: who the simulated user is and what would really help them.

A card is data (YAML under ``envs/scenarios/``). This module defines its typed form;
loading and validation live below the dataclasses.
"""

from __future__ import annotations

import functools
import hashlib
import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn, TypeAlias, Union

import yaml

from dialogue_gym.core.vocabulary import (
    CHARACTER_TYPES,
    DIFFICULTIES,
    EMOTION_TYPES,
    NEEDS,
    PROBLEM_TYPES,
)


@dataclass(frozen=True)
class Persona:
    """The simulated user's identity and manner (RLVER's profile fields).

    Attributes:
        name: First name the user goes by.
        age: Age in years.
        gender: Free text (``"female"``, ``"male"``, ``"non-binary"``...).
        occupation: Job or role.
        traits: Three or so personality traits, free text.
        speaking_style: How the user talks, for the voice.
        character_type: One of ``CHARACTER_TYPES`` (RLVER's negative/passive/avoidant, plus open).
    """

    name: str
    age: int
    gender: str
    occupation: str
    traits: tuple[str, ...]
    speaking_style: str
    character_type: str


@dataclass(frozen=True)
class NeedCue:
    """Something the user reveals once the agent understands enough.

    Attributes:
        need: The need this cue is evidence for (one of ``NEEDS``). Cues for needs other
            than the hidden one are red herrings.
        text: What the user says when revealing it.
        reveal_at: Understanding level in [0, 1] at which the user reveals it.
        strength: How much evidence it adds to ``need`` in the ``need_cues`` observation, in (0, 1].
    """

    need: str
    text: str
    reveal_at: float
    strength: float


@dataclass(frozen=True)
class Fact:
    """A question/answer pair the simulated user must keep consistent."""

    question: str
    answer: str


@dataclass(frozen=True)
class ScenarioCard:
    """One simulated user in one situation with one hidden need.

    Attributes:
        id: Unique id, e.g. ``"train-job-03-practical_suggestions"``.
        split: ``"train"`` or ``"test"``; the splits share no situation.
        situation_id: Id of the authored situation the card was built from.
        persona: Who the user is.
        situation: The backstory, in the third person.
        topic: A short noun phrase for the problem ("losing my job"), used by the voices.
        problem_type: One of ESConv's ``PROBLEM_TYPES``.
        emotion_type: One of ESConv's ``EMOTION_TYPES``.
        initial_emotion: Emotion score at the start, in [0, 100].
        hidden_need: What would really help, one of ``NEEDS``.
        need_cues: What the user reveals as understanding grows, in ``reveal_at`` order.
        facts: Question/answer pairs for consistency checks.
        difficulty: One of ``DIFFICULTIES``.
    """

    id: str
    split: str
    situation_id: str
    persona: Persona
    situation: str
    topic: str
    problem_type: str
    emotion_type: str
    initial_emotion: float
    hidden_need: str
    need_cues: tuple[NeedCue, ...]
    facts: tuple[Fact, ...]
    difficulty: str

    def __deepcopy__(self, memo: dict) -> ScenarioCard:
        # Cards are immutable; sharing them keeps fork() and gym.make's deep copies cheap.
        return self

    @property
    def key(self) -> str:
        """An opaque id of the card, for what an agent or an offline learner can read.

        The card's ``id`` spells its hidden need (``...-be_heard``); ``info["card_id"]`` on
        every step of ``EmpathyDialogueText-v1`` is this key instead, and the full ``id`` is only
        in the terminal info (``info["card"]``). ``reset(options={"card": key})`` takes it.

        Example:
            >>> card = load_scenarios("test")[0]
            >>> card.key.startswith("card-") and card.hidden_need not in card.key
            True
        """
        return card_key(self.id)


@functools.cache  # one per card: the env reads it on every step
def card_key(card_id: str) -> str:
    """The opaque key of the card ``card_id`` (see :attr:`ScenarioCard.key`)."""
    return "card-" + hashlib.sha256(card_id.encode("utf-8")).hexdigest()[:12]


# --- Loading and validation ----------------------------------------------------------------
# Cards are hand-edited data, so every problem surfaces as a ScenarioError that names the
# file and the field; nothing else escapes card_from_dict or load_card.

#: The two built-in splits; they share no situation.
SPLITS: tuple[str, ...] = ("train", "test")
#: Names ``load_scenarios`` accepts besides paths and cards.
SCENARIO_SETS: tuple[str, ...] = (*SPLITS, "all")

#: Anything ``load_scenarios`` accepts.
ScenarioSpec: TypeAlias = Union[str, "os.PathLike[str]", ScenarioCard, Sequence[Any]]

_CARD_KEYS = tuple(f.name for f in fields(ScenarioCard))
_PERSONA_KEYS = tuple(f.name for f in fields(Persona))
_CUE_KEYS = tuple(f.name for f in fields(NeedCue))
_FACT_KEYS = tuple(f.name for f in fields(Fact))
_YAML_SUFFIXES = (".yaml", ".yml")
# libyaml's loader is several times faster; the pure-Python one gives the same result.
_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class OversizedInt:
    """An integer literal too long for Python's ``int()`` (over 4300 digits), as parsed.

    The safe loader would raise a bare ``ValueError`` naming neither the file nor the field;
    this stands in for it instead, so the field's own check refuses it by name.
    """

    def __init__(self, literal: str) -> None:
        self.digits = sum(ch.isdigit() for ch in literal)

    def __repr__(self) -> str:
        return f"<an integer of {self.digits} digits>"


class _CardLoader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, with integers too long for ``int()`` kept as :class:`OversizedInt`."""


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int | OversizedInt:
    try:
        return loader.construct_yaml_int(node)
    except ValueError:  # Python's int() digit limit: the only way a resolved int can fail
        return OversizedInt(str(node.value))


_CardLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_YAML_LOADER = _CardLoader


class ScenarioError(ValueError):
    """An invalid scenario card, or a scenario set that cannot be loaded.

    The message always starts with the file (``"<dict>"`` for in-memory data) and, when one
    field is at fault, its path, e.g.
    ``"bad.yaml: field 'need_cues[1].reveal_at': must be a number in [0, 1], got 'high'"``.

    Attributes:
        source: The file (or other origin) at fault.
        field: Path of the faulty field (``"persona.age"``, ``"facts[0].answer"``), or
            ``None`` when the problem is the whole file or set.
        reason: What is wrong, without the location.
    """

    def __init__(self, source: str, reason: str, field: str | None = None) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        where = f"{source}: field '{field}'" if field else source
        super().__init__(f"{where}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The default would re-call __init__ with the formatted message alone.
        return (type(self), (self.source, self.reason, self.field))


def _show(value: Any, limit: int = 60) -> str:
    """A short repr for error messages (fuzzed or hand-edited values can be huge)."""
    try:
        text = repr(value)
    except ValueError:  # e.g. an int past Python's 4300-digit str() limit
        return f"<a very large {type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    """How to name a wrong value in a message: containers by type, scalars by value."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return _show(value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class FieldReader:
    """Reads typed values out of parsed YAML, failing with the source and field path.

    Public because the authoring tool (``tools/scenario_builder.py``) validates the authored
    parts the same way.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str | None, reason: str) -> NoReturn:
        raise ScenarioError(self.source, reason, path or None)

    def mapping(self, value: Any, path: str, keys: Sequence[str]) -> Mapping[str, Any]:
        """Check ``value`` is a mapping with exactly ``keys``."""
        if not isinstance(value, Mapping):
            what = "a scenario card" if not path else "this field"
            self.fail(
                path, f"{what} must be a mapping with fields {', '.join(keys)}; got {_kind(value)}"
            )
        unknown = [key if isinstance(key, str) else _show(key) for key in value if key not in keys]
        for key in keys:
            if key not in value:
                # A misspelt field shows up as missing + unknown; name both to make it obvious.
                hint = (
                    f" (unknown fields present: {', '.join(map(repr, unknown))})" if unknown else ""
                )
                self.fail(_join(path, key), f"missing required field{hint}")
        if unknown:
            self.fail(
                _join(path, unknown[0]),
                f"unknown field(s) {', '.join(map(repr, unknown))}; expected only {', '.join(keys)}",
            )
        return value

    def sequence(self, value: Any, path: str, *, min_len: int = 1) -> Sequence[Any]:
        """Check ``value`` is a list (or tuple) with at least ``min_len`` items."""
        if not isinstance(value, (list, tuple)):
            self.fail(path, f"must be a list, got {_kind(value)}")
        if len(value) < min_len:
            self.fail(path, f"must have at least {min_len} item(s), got {len(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        """Check ``value`` is a non-blank string."""
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_kind(value)}")
        if not value.strip():
            self.fail(path, "must be a non-empty string")
        return value

    def choice(self, value: Any, path: str, options: Sequence[str]) -> str:
        """Check ``value`` is one of ``options``."""
        if not isinstance(value, str) or value not in options:
            listed = ", ".join(repr(option) for option in options)
            self.fail(path, f"must be one of {listed}; got {_kind(value)}")
        return value

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        """Check ``value`` is an integer in [low, high] (booleans are not integers here)."""
        if (
            not isinstance(value, numbers.Integral)
            or isinstance(value, bool)
            or not (low <= value <= high)
        ):
            self.fail(path, f"must be an integer in [{low}, {high}], got {_kind(value)}")
        return int(value)

    def number(
        self, value: Any, path: str, low: float, high: float, *, open_low: bool = False
    ) -> float:
        """Check ``value`` is a finite number in [low, high] (or (low, high] if ``open_low``)."""
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        # Compare before float(): a huge int would overflow, and NaN fails every comparison.
        ok = ok and (low < value if open_low else low <= value) and value <= high
        if not ok:
            interval = f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]"
            self.fail(path, f"must be a number in {interval}, got {_kind(value)}")
        result = float(value)
        if not math.isfinite(result):  # pragma: no cover - excluded by the range check
            self.fail(path, f"must be finite, got {_kind(value)}")
        return result

    def persona(self, value: Any, path: str) -> Persona:
        data = self.mapping(value, path, _PERSONA_KEYS)
        traits = self.sequence(data["traits"], _join(path, "traits"))
        return Persona(
            name=self.string(data["name"], _join(path, "name")),
            age=self.integer(data["age"], _join(path, "age"), 1, 120),
            gender=self.string(data["gender"], _join(path, "gender")),
            occupation=self.string(data["occupation"], _join(path, "occupation")),
            traits=tuple(
                self.string(trait, _join(_join(path, "traits"), i))
                for i, trait in enumerate(traits)
            ),
            speaking_style=self.string(data["speaking_style"], _join(path, "speaking_style")),
            character_type=self.choice(
                data["character_type"], _join(path, "character_type"), CHARACTER_TYPES
            ),
        )

    def cue(self, value: Any, path: str) -> NeedCue:
        data = self.mapping(value, path, _CUE_KEYS)
        return NeedCue(
            need=self.choice(data["need"], _join(path, "need"), NEEDS),
            text=self.string(data["text"], _join(path, "text")),
            reveal_at=self.number(data["reveal_at"], _join(path, "reveal_at"), 0.0, 1.0),
            strength=self.number(
                data["strength"], _join(path, "strength"), 0.0, 1.0, open_low=True
            ),
        )

    def facts(self, value: Any, path: str) -> tuple[Fact, ...]:
        result = []
        for i, item in enumerate(self.sequence(value, path)):
            item_path = _join(path, i)
            data = self.mapping(item, item_path, _FACT_KEYS)
            result.append(
                Fact(
                    question=self.string(data["question"], _join(item_path, "question")),
                    answer=self.string(data["answer"], _join(item_path, "answer")),
                )
            )
        return tuple(result)


def card_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ScenarioCard:
    """Validate a parsed card and build its typed form.

    Every field is checked: required and unknown keys, types, the vocabularies of
    ``dialogue_gym.core.vocabulary``, ranges (``initial_emotion`` in [0, 100], ``reveal_at`` in
    [0, 1], ``strength`` in (0, 1]), non-empty strings, at least one cue for the hidden need
    and at least one fact. Lists become tuples; cues are sorted by ``reveal_at``.

    Args:
        data: The card as parsed from YAML (field names as in ``ScenarioCard``).
        source: Where the data came from, for error messages (usually the file path).

    Returns:
        The validated card.

    Raises:
        ScenarioError: On any problem, naming ``source`` and the field path.

    Example:
        >>> card_from_dict({"id": "x"}, source="bad.yaml")
        Traceback (most recent call last):
        ...
        dialogue_gym.core.scenario.ScenarioError: bad.yaml: field 'split': missing required field
    """
    read = FieldReader(source)
    card = read.mapping(data, "", _CARD_KEYS)
    cues = tuple(
        read.cue(item, _join("need_cues", i))
        for i, item in enumerate(read.sequence(card["need_cues"], "need_cues"))
    )
    result = ScenarioCard(
        id=read.string(card["id"], "id"),
        split=read.choice(card["split"], "split", SPLITS),
        situation_id=read.string(card["situation_id"], "situation_id"),
        persona=read.persona(card["persona"], "persona"),
        situation=read.string(card["situation"], "situation"),
        topic=read.string(card["topic"], "topic"),
        problem_type=read.choice(card["problem_type"], "problem_type", PROBLEM_TYPES),
        emotion_type=read.choice(card["emotion_type"], "emotion_type", EMOTION_TYPES),
        initial_emotion=read.number(card["initial_emotion"], "initial_emotion", 0.0, 100.0),
        hidden_need=read.choice(card["hidden_need"], "hidden_need", NEEDS),
        # Stable sort: cues revealed at the same level keep their authored order.
        need_cues=tuple(sorted(cues, key=lambda cue: cue.reveal_at)),
        facts=read.facts(card["facts"], "facts"),
        difficulty=read.choice(card["difficulty"], "difficulty", DIFFICULTIES),
    )
    if not any(cue.need == result.hidden_need for cue in result.need_cues):
        read.fail("need_cues", f"needs at least one cue for the hidden need {result.hidden_need!r}")
    return result


def card_to_dict(card: ScenarioCard) -> dict[str, Any]:
    """The plain-data form of a card (lists, not tuples), as written to YAML.

    ``card_from_dict(card_to_dict(card)) == card`` for every valid card.

    Example:
        >>> card = load_scenarios("test")[0]
        >>> card_from_dict(card_to_dict(card)) == card
        True
    """
    persona = card.persona
    return {
        "id": card.id,
        "split": card.split,
        "situation_id": card.situation_id,
        "persona": {
            "name": persona.name,
            "age": persona.age,
            "gender": persona.gender,
            "occupation": persona.occupation,
            "traits": list(persona.traits),
            "speaking_style": persona.speaking_style,
            "character_type": persona.character_type,
        },
        "situation": card.situation,
        "topic": card.topic,
        "problem_type": card.problem_type,
        "emotion_type": card.emotion_type,
        "initial_emotion": card.initial_emotion,
        "hidden_need": card.hidden_need,
        "need_cues": [
            {"need": c.need, "text": c.text, "reveal_at": c.reveal_at, "strength": c.strength}
            for c in card.need_cues
        ],
        "facts": [{"question": f.question, "answer": f.answer} for f in card.facts],
        "difficulty": card.difficulty,
    }


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse one YAML file safely, turning every read or syntax problem into a ScenarioError.

    Args:
        path: The file.

    Returns:
        The parsed document (never ``None``: an empty file is an error).

    Raises:
        ScenarioError: If the file cannot be read, is not UTF-8, is not valid YAML, or is empty.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ScenarioError(source, f"cannot read file: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # one line: the mark says where
        raise ScenarioError(source, f"invalid YAML: {detail}") from exc
    if data is None:
        raise ScenarioError(source, "file is empty; expected a scenario card mapping")
    return data


def load_card(path: str | os.PathLike[str]) -> ScenarioCard:
    """Load and validate one card from a YAML file.

    Args:
        path: The ``.yaml`` file.

    Returns:
        The validated card.

    Raises:
        ScenarioError: If the file is missing, unreadable, not YAML, empty, or not a valid
            card; the message names the file and the field.

    Example:
        >>> path = sorted((builtin_root() / "scenarios" / "test").glob("*.yaml"))[0]
        >>> load_card(path).id == path.stem
        True
    """
    return card_from_dict(read_yaml(path), source=str(path))


@lru_cache(maxsize=8192)
def _load_card_cached(path: str, mtime_ns: int, size: int) -> ScenarioCard:
    # mtime and size are in the key only so that an edited file is parsed again.
    return load_card(path)


def _cached_card(path: Path) -> ScenarioCard:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ScenarioError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    return _load_card_cached(str(path), stat.st_mtime_ns, stat.st_size)


#: How deep below the folder given as ``scenarios`` cards are looked for, and how many entries
#: one scan may visit: ``scenarios="/"`` (a slip, or a fuzzer) fails fast, naming the folder,
#: instead of walking the whole filesystem.
MAX_SCAN_DEPTH = 8
MAX_SCAN_ENTRIES = 100_000


def _scan(root: str, depth: int = 0, budget: list[int] | None = None) -> list[tuple[str, int, int]]:
    """``(path, mtime_ns, size)`` of every card file under ``root``, recursively.

    Hidden entries (editor backups, ``.ipynb_checkpoints``) are skipped and symlinked folders
    are not followed (no loops). ``os.scandir`` is several times faster than ``Path.rglob``
    here, which matters because every ``gym.make`` lists its cards.
    """
    budget = [MAX_SCAN_ENTRIES] if budget is None else budget
    if depth > MAX_SCAN_DEPTH:
        raise ScenarioError(
            root,
            f"cards nest deeper than {MAX_SCAN_DEPTH} folders below the scenarios folder: "
            "point scenarios= at the folder that holds the cards",
        )
    found = []
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                budget[0] -= 1
                if budget[0] < 0:
                    raise ScenarioError(
                        root,
                        f"more than {MAX_SCAN_ENTRIES} entries under the scenarios folder: "
                        "point scenarios= at the folder that holds the cards",
                    )
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    found += _scan(entry.path, depth + 1, budget)
                elif entry.name.endswith(_YAML_SUFFIXES):
                    # One bad entry (a symlink looping on itself, a dangling one) is named,
                    # not the folder that holds it.
                    try:
                        if entry.is_file():
                            stat = entry.stat()
                            found.append((entry.path, stat.st_mtime_ns, stat.st_size))
                    except OSError as exc:
                        raise ScenarioError(
                            entry.path, f"cannot read file: {exc.strerror or exc}"
                        ) from exc
    except OSError as exc:
        raise ScenarioError(root, f"cannot list folder: {exc.strerror or exc}") from exc
    return found


@lru_cache(maxsize=64)
def _load_files(
    signature: tuple[tuple[str, int, int], ...],
) -> tuple[tuple[ScenarioCard, str], ...]:
    # Keyed on every file's (path, mtime, size): an edited, added or removed card
    # changes the key, an unchanged folder costs one scan and one lookup.
    return tuple((_load_card_cached(*entry), entry[0]) for entry in signature)


def _cards_in_dir(root: Path) -> tuple[tuple[ScenarioCard, str], ...]:
    return _load_files(tuple(sorted(_scan(str(root)))))


_BUILTIN_ROOT: Path | None = None


def set_builtin_root(path: str | os.PathLike[str]) -> None:
    """Where the built-in card sets live (``scenarios/train``, ``scenarios/test``): set by
    ``dialogue_gym.envs``, which carries them, when it is imported."""
    global _BUILTIN_ROOT
    _BUILTIN_ROOT = Path(path)


def builtin_root() -> Path:
    """The folder :func:`set_builtin_root` named (``dialogue_gym.envs``'s, once imported).

    Raises:
        ScenarioError: Nothing named one yet (``import dialogue_gym`` does).
    """
    if _BUILTIN_ROOT is None:
        raise ScenarioError(
            "scenarios", "no built-in card folder is known: import dialogue_gym first"
        )
    return _BUILTIN_ROOT


def _builtin_split(split: str) -> Iterator[tuple[ScenarioCard, str]]:
    root = builtin_root() / "scenarios" / split
    if not root.is_dir():
        raise ScenarioError(
            str(root),
            "built-in scenario folder is missing; is the package installed with its data?",
        )
    for card, source in _cards_in_dir(root):
        # A card copied into the wrong folder would silently leak across the splits.
        if card.split != split:
            raise ScenarioError(
                source, f"card is in the {split!r} folder but says {card.split!r}", "split"
            )
        yield card, source


def _from_path(spec: str | os.PathLike[str]) -> Iterator[tuple[ScenarioCard, str]]:
    if isinstance(spec, str) and not spec.strip():
        # Path("") is the current folder: an empty name (an unset option) must not scan it.
        names = ", ".join(repr(name) for name in SCENARIO_SETS)
        raise ScenarioError(
            f"scenarios={spec!r}",
            f'empty name; expected one of {names}, a directory of .yaml cards ("." for the '
            "current one), a .yaml file, or a sequence of cards and paths",
        )
    if isinstance(spec, str) and spec in SCENARIO_SETS:
        for split in SPLITS if spec == "all" else (spec,):
            yield from _builtin_split(split)
        return
    path = Path(spec)
    if path.is_dir():
        yield from _cards_in_dir(path)
    elif path.is_file():
        if path.suffix not in _YAML_SUFFIXES:
            raise ScenarioError(str(path), "not a scenario card: expected a .yaml file")
        yield _cached_card(path), str(path)
    elif isinstance(spec, str) and os.sep not in spec and "/" not in spec and not path.suffix:
        names = ", ".join(repr(name) for name in SCENARIO_SETS)
        raise ScenarioError(
            f"scenarios={spec!r}",
            f"unknown scenario set; expected one of {names}, a directory of .yaml cards, "
            "a .yaml file, or a sequence of cards and paths",
        )
    else:
        raise ScenarioError(str(path), "no such file or directory")


def _collect(spec: ScenarioSpec) -> Iterator[tuple[ScenarioCard, str]]:
    if isinstance(spec, ScenarioCard):
        yield spec, f"<card {spec.id}>"
    elif isinstance(spec, (str, os.PathLike)):
        yield from _from_path(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, (bytes, bytearray)):
        for item in spec:
            if not isinstance(item, (ScenarioCard, str, os.PathLike)):
                raise TypeError(
                    f"a scenario sequence holds ScenarioCard objects or paths, got {type(item).__name__}"
                )
            yield from _collect(item)
    else:
        raise TypeError(
            "scenarios must be 'train', 'test', 'all', a path, or a sequence of cards and paths; "
            f"got {type(spec).__name__}"
        )


def load_scenarios(spec: ScenarioSpec) -> tuple[ScenarioCard, ...]:
    """Load a set of scenario cards.

    Parsed files are cached per process (keyed on path, modification time and size), so
    making many environments from the same set is cheap and an edited card is reloaded.

    Args:
        spec: ``"train"``, ``"test"`` or ``"all"`` (the built-in cards); a directory (every
            ``*.yaml`` under it, recursively); a single ``.yaml`` file; or a sequence of
            ``ScenarioCard`` objects and paths.

    Returns:
        The cards, sorted by id, as an immutable tuple.

    Raises:
        ScenarioError: If a card is invalid, two cards share an id (both files are named),
            nothing was found, or ``spec`` names no known set or existing path.
        TypeError: If ``spec`` is of an unsupported type.

    Example:
        >>> cards = load_scenarios("test"); len(cards) > 0
        True
        >>> {card.split for card in cards}
        {'test'}
    """
    pairs = list(_collect(spec))
    if not pairs:
        raise ScenarioError(_describe(spec), "no scenario cards found")
    seen: dict[str, str] = {}
    for card, source in pairs:
        if card.id in seen:
            raise ScenarioError(
                source, f"duplicate card id {card.id!r}, also used by {seen[card.id]}", "id"
            )
        seen[card.id] = source
    return tuple(sorted((card for card, _ in pairs), key=lambda card: card.id))


def _describe(spec: ScenarioSpec) -> str:
    if isinstance(spec, str) and spec in SCENARIO_SETS:
        return f"built-in scenarios {spec!r} ({builtin_root() / 'scenarios'})"
    if isinstance(spec, (str, os.PathLike)):
        return str(spec)
    # Named as the argument it came from: an in-memory set has no file to name.
    return (
        f"scenarios=<{type(spec).__name__} of {len(spec)} item(s)>"
        if isinstance(spec, Sequence)
        else f"scenarios={_show(spec)}"
    )
