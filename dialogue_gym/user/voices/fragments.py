"""The authored text both template voices draw on, and the LLM prompts' word lists.

``dialogue_gym/user/data/fragments.yaml`` holds the user's lines per act and emotion band, the
agent's lines per strategy, and the phrases the LLM prompts use (band words, act and strategy
instructions, the supporter's greeting). :func:`load_fragments` validates it once per process.

Example:
    >>> frags = load_fragments()
    >>> frags is load_fragments(), len(frags.agent_plain), BANDS[0]
    (True, 8, 'top')
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialogue_gym.core.vocabulary import EMOTION_BANDS, STRATEGIES, USER_ACTS

__all__ = ["BANDS", "Fragments", "load_fragments"]

#: The emotion bands, highest first (``core.vocabulary.EMOTION_BANDS``' names).
BANDS: tuple[str, ...] = tuple(name for _, name in EMOTION_BANDS)

_DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "fragments.yaml"
OPENING = "opening"  # the user-table key for the first line of a conversation


@dataclass(frozen=True)
class Fragments:
    """The authored text of ``fragments.yaml``, indexed for constant-time lookup.

    Attributes:
        user: ``(act, band) -> fragments``; the act ``"opening"`` holds first lines.
        agent_plain: Per strategy index, the lines that fit any turn.
        agent_cue: Per strategy index, the pool once a cue is known (plain + cue lines).
        feelings: Emotion type -> adjective, for ``{feeling}``.
        greeting: The supporter's first line shown to the LLM user voice.
        band_words: Band -> how the user feels, for the LLM user prompt.
        act_lines: Act -> instruction, for the LLM user prompt.
        strategy_lines: Per strategy index, its instruction for the LLM realiser prompt.
    """

    user: Mapping[tuple[str, str], tuple[str, ...]]
    agent_plain: tuple[tuple[str, ...], ...]
    agent_cue: tuple[tuple[str, ...], ...]
    feelings: Mapping[str, str]
    greeting: str
    band_words: Mapping[str, str]
    act_lines: Mapping[str, str]
    strategy_lines: tuple[str, ...]


_FRAGMENTS: Fragments | None = None
_LOAD_LOCK = threading.Lock()
_PLACEHOLDERS = {"name": "N", "topic": "T", "feeling": "F", "cue": "C"}


def load_fragments(path: str | Path | None = None) -> Fragments:
    """Load and validate the fragments file (the packaged one is cached per process).

    Args:
        path: A fragments YAML file; ``None`` means the packaged
            ``dialogue_gym/user/data/fragments.yaml`` (loaded once, then cached).

    Raises:
        ValueError: A required section, act, band or strategy is missing, or a fragment
            uses an unknown placeholder; the message names the file and the key.
    """
    global _FRAGMENTS
    if path is None:
        if _FRAGMENTS is None:
            with _LOAD_LOCK:
                if _FRAGMENTS is None:
                    _FRAGMENTS = _parse_fragments(_DATA_FILE)
        return _FRAGMENTS
    return _parse_fragments(Path(path))


def _parse_fragments(path: Path) -> Fragments:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)

    def fail(key: str, why: str) -> ValueError:
        return ValueError(f"{path}: {key}: {why}")

    def texts(value: Any, key: str, placeholders: Mapping[str, str]) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise fail(key, "expected a non-empty list of strings")
        for text in value:
            if not isinstance(text, str) or not text.strip():
                raise fail(key, f"expected a non-empty string, got {text!r}")
            try:
                text.format(**placeholders)
            except (KeyError, IndexError, ValueError) as exc:
                raise fail(key, f"bad placeholder in {text!r} ({exc!r})") from None
        return tuple(t.strip() for t in value)

    def section(mapping: Any, key: str) -> Mapping[str, Any]:
        value = mapping.get(key) if isinstance(mapping, Mapping) else None
        if not isinstance(value, Mapping):
            raise fail(key, "missing section (expected a mapping)")
        return value

    user_ph = {k: v for k, v in _PLACEHOLDERS.items() if k in ("name", "topic")}
    agent_ph = {k: v for k, v in _PLACEHOLDERS.items() if k != "cue"}

    user = section(raw, "user")
    table: dict[tuple[str, str], tuple[str, ...]] = {}
    by_act = {OPENING: section(user, OPENING), **section(user, "acts")}
    for act in (OPENING, *USER_ACTS):
        if act not in by_act:
            raise fail(f"user.acts.{act}", "missing act")
        for bands, value in section({act: by_act[act]}, act).items():
            for band in str(bands).split():
                if band not in BANDS:
                    raise fail(f"user.{act}.{bands}", f"unknown band {band!r}; bands: {BANDS}")
                table[(act, band)] = texts(value, f"user.{act}.{bands}", user_ph)
        missing = [band for band in BANDS if (act, band) not in table]
        if missing:
            raise fail(f"user.{act}", f"no fragments for band(s) {missing}")

    agent = section(raw, "agent")
    plain: list[tuple[str, ...]] = []
    cue: list[tuple[str, ...]] = []
    for name in STRATEGIES:
        entry = section(agent, name)
        lines = texts(entry.get("plain"), f"agent.{name}.plain", agent_ph)
        cue_lines = (
            texts(entry["cue"], f"agent.{name}.cue", _PLACEHOLDERS) if "cue" in entry else ()
        )
        plain.append(lines)
        cue.append(lines + cue_lines)

    llm = section(raw, "llm")
    band_words = dict(section(llm, "bands"))
    act_lines = dict(section(llm, "acts"))
    strategy_words = section(llm, "strategies")
    for keys, found, where in (
        (BANDS, band_words, "llm.bands"),
        (USER_ACTS, act_lines, "llm.acts"),
        (STRATEGIES, strategy_words, "llm.strategies"),
    ):
        missing = [k for k in keys if not isinstance(found.get(k), str)]
        if missing:
            raise fail(where, f"missing entries {missing}")
    greeting = llm.get("greeting")
    if not isinstance(greeting, str) or not greeting.strip():
        raise fail("llm.greeting", "expected a non-empty string")
    return Fragments(
        user=table,
        agent_plain=tuple(plain),
        agent_cue=tuple(cue),
        feelings={str(k): str(v) for k, v in section(raw, "feelings").items()},
        greeting=greeting.strip(),
        band_words=band_words,
        act_lines=act_lines,
        strategy_lines=tuple(str(strategy_words[s]) for s in STRATEGIES),
    )
