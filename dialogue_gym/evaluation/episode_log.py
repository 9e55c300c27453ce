"""Episode logs: one JSON line per conversation, written the moment it ends.

:class:`EpisodeLogger` wraps an env and records every step it sees: the agent's strategy and
words, the user's act and answer, the emotion before and after, the reward and its components
(``info["reward_components"]``), and whether the step ended the episode. When the episode ends
it appends **one JSON line** with the whole conversation and flushes it, so a crash loses at
most the episode in flight. An episode cut off by ``reset()`` or ``close()`` is written too,
marked ``"complete": false``. :func:`read_episodes` reads a log back. The fields are listed in
``docs/cli.md``.

Example:
    >>> import os, tempfile
    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> path = os.path.join(tempfile.mkdtemp(), "episodes.jsonl")
    >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    >>> env = EpisodeLogger(env, path, extra={"policy": "always-question"})
    >>> _ = env.reset(seed=0)
    >>> done = False
    >>> while not done:
    ...     _, _, terminated, truncated, _ = env.step(0)
    ...     done = terminated or truncated
    >>> [episode] = read_episodes(path)  # on disk before the env is closed
    >>> episode["policy"], episode["complete"], episode["turns"] == len(episode["steps"])
    ('always-question', True, True)
    >>> first = episode["steps"][0]
    >>> first["strategy"], "sparse" in first["reward_components"]  # gym.make's default reward
    ('Question', True)
    >>> env.close()
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import gymnasium as gym
import numpy as np

from dialogue_gym.rewards.base import COMPONENTS_KEY

__all__ = ["EPISODE_FIELDS", "SCHEMA_VERSION", "STEP_FIELDS", "EpisodeLogger", "read_episodes"]

#: The version of the line format; bumped when a field changes meaning or disappears.
SCHEMA_VERSION = 1

#: The fields every episode line has (``extra`` fields are added beside them).
EPISODE_FIELDS: tuple[str, ...] = (
    "schema",
    "episode",
    "env_id",
    "card_id",
    "need",
    "seed",
    "voice",
    "voice_seed",
    "complete",
    "success",
    "user_left",
    "turns",
    "initial_emotion",
    "final_emotion",
    "episode_return",
    "messages",
    "steps",
)

#: The fields of each per-turn record in an episode's ``steps``.
STEP_FIELDS: tuple[str, ...] = (
    "turn",
    "strategy",
    "acts",
    "agent",
    "user_act",
    "user",
    "emotion_before",
    "emotion",
    "change",
    "reason",
    "cue",
    "premature",
    "resolved",
    "reward",
    "reward_components",
    "terminated",
    "truncated",
)


def _jsonable(value: Any) -> Any:
    """The encoder's fallback: numpy scalars and arrays, mappings, sets, paths; else the text."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


# One encoder for every line (``json.dumps`` with options builds one per call). A record is a
# tree of fresh containers, so the circular-reference check would be pure cost.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":"), default=_jsonable
)


def _messages(value: Any) -> list[Any]:
    # The messages themselves are dicts (read-only ``Message``s in a ``Transcript``): encoded as
    # they are, not copied.
    return [] if value is None else list(value)


class _Episode:
    """What the logger keeps of the episode in flight: references and small dicts, no copies."""

    __slots__ = ("card_id", "need", "seed", "voice", "voice_seed", "emotion0", "ret", "steps")

    def __init__(self, seed: int | None, info: Mapping[str, Any], need: str | None) -> None:
        self.seed = seed
        self.card_id = info.get("card_id")
        self.need = need
        self.voice = info.get("voice")
        self.voice_seed = info.get("voice_seed")
        self.emotion0 = info.get("emotion")
        self.ret = 0.0
        self.steps: list[dict[str, Any]] = []


class EpisodeLogger(gym.Wrapper):
    """Append one JSON line per episode to a file, flushed as each episode ends.

    Wrap the env at the level whose reward you want logged (outside the reward wrapper under
    study: the logged ``reward`` is the one this wrapper sees). Under Stable-Baselines3 put it
    inside the vector env, with or without ``Monitor``, e.g.
    ``DummyVecEnv([lambda: Monitor(EpisodeLogger(gym.make(...), "log.jsonl"))])``. A step costs
    one small dict; the conversation's messages are read once, when the line is written.

    The file is opened in append mode with no buffering, and each line goes out in one
    ``write``, so several loggers (one per sub-process env) may share one path on a local disk.
    A pickled logger drops its file handle and reopens the path, appending, on its next write.

    Args:
        env: The env (``info`` as ``EmpathyDialogue-v0``'s; other envs log what they have).
        path_or_file: A path (its folder is created), or an open, writable file object (text or
            binary), which is flushed after each line and never closed by the logger.
        extra: Fields added to every line, e.g. ``{"policy": "ppo", "reward": "sparse"}``. The
            dict is kept, not copied: change it to label later episodes.
        append: ``False`` empties the file first (a path only).
        fsync: Also ``os.fsync`` after each line, so a power cut loses nothing written
            either (slower: a disk round trip per episode).

    Raises:
        ValueError: If an ``extra`` key is one of the logger's own fields (``EPISODE_FIELDS``).
        OSError: If the path cannot be opened for writing.
    """

    def __init__(
        self,
        env: gym.Env,
        path_or_file: str | os.PathLike[str] | IO[Any],
        extra: dict[str, Any] | None = None,
        append: bool = True,
        fsync: bool = False,
    ) -> None:
        super().__init__(env)
        self.extra: dict[str, Any] = extra if extra is not None else {}
        clash = sorted(set(self.extra) & set(EPISODE_FIELDS))
        if clash:
            raise ValueError(
                f"extra field(s) {clash} clash with the logger's own fields; rename them "
                f"(e.g. {clash[0]!r} -> 'run_{clash[0]}')"
            )
        self.fsync = bool(fsync)
        self.episodes_written = 0
        self._episode: _Episode | None = None
        self._last_info: Mapping[str, Any] = {}  # the latest step's, for an episode cut off
        self._file: IO[Any] | None = None
        if isinstance(path_or_file, str | os.PathLike):
            self.path: Path | None = Path(path_or_file)
            self._owned = True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = _open_log(self.path, append)
        elif hasattr(path_or_file, "write"):
            self.path = None
            self._owned = False
            self._file = path_or_file
        else:
            raise TypeError(
                "path_or_file must be a path or a writable file object, "
                f"got {type(path_or_file).__name__}"
            )
        spec = getattr(env.unwrapped, "spec", None)  # the bare env's: no deep copy of a spec
        self.env_id: str | None = spec.id if spec is not None else None

    # -- Gymnasium API ----------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Write the episode in flight (incomplete), if any, then start recording a new one."""
        self._flush_in_flight()
        obs, info = self.env.reset(seed=seed, options=options)
        self._episode = _Episode(seed, info, self._hidden_need())
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the env, record the turn, and write the episode if it ended."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        episode = self._episode
        if episode is None:  # the env was reset before it was wrapped
            episode = self._episode = _Episode(None, info, self._hidden_need())
        get = info.get
        components = get(COMPONENTS_KEY)
        acts = get("acts")
        episode.ret += float(reward)
        episode.steps.append(
            {
                "turn": get("turn"),
                "strategy": get("strategy"),
                "acts": list(acts) if acts is not None else None,
                "agent": get("agent_utterance"),
                "user_act": get("user_act"),
                "user": get("user_utterance"),
                "emotion_before": get("emotion_before"),
                "emotion": get("emotion"),
                "change": get("change"),
                "reason": get("reason"),
                "cue": get("cue"),
                "premature": get("premature"),
                "resolved": get("resolved"),
                "reward": float(reward),
                # Copied: the dict is shared by the reward stack and rebuilt each step anyway.
                "reward_components": dict(components) if components else {},
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            }
        )
        if terminated or truncated:
            self._write(episode, info, complete=True)
            self._episode = None
        else:
            self._last_info = info  # a reference: its transcript is immutable
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Write the episode in flight (incomplete), if any, close the file, then the env."""
        try:
            self._flush_in_flight()
        finally:
            if self._owned and self._file is not None:
                self._file.close()
            self._file = None
            super().close()

    # -- pickling ---------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        if not self._owned:
            raise TypeError(
                "an EpisodeLogger writing to a file object cannot be pickled; give it a path"
            )
        state = self.__dict__.copy()
        state["_file"] = None  # reopened, appending, on the next write
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # -- internals --------------------------------------------------------------------

    def _hidden_need(self) -> str | None:
        try:
            return self.env.unwrapped.hidden_need
        except (AttributeError, RuntimeError):
            return None

    def _flush_in_flight(self) -> None:
        episode = self._episode
        self._episode = None
        if episode is not None and episode.steps:  # a reset with no step taken is no episode
            self._write(episode, self._last_info, complete=False)

    def _write(self, episode: _Episode, info: Mapping[str, Any], complete: bool) -> None:
        steps = episode.steps
        record: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "episode": self.episodes_written,
            "env_id": self.env_id,
            # The card's full id, from the terminal info (each step shows an opaque key).
            "card_id": info.get("card", info.get("card_id", episode.card_id)),
            "need": info.get("need", episode.need),
            "seed": episode.seed,
            "voice": episode.voice,
            "voice_seed": episode.voice_seed,
            "complete": complete,
            "success": bool(info.get("success", False)) if complete else False,
            "user_left": bool(info.get("user_left", False)) if complete else False,
            "turns": len(steps),
            "initial_emotion": episode.emotion0,
            "final_emotion": steps[-1]["emotion"] if steps else episode.emotion0,
            "episode_return": episode.ret,
            "messages": _messages(info.get("messages")),
            "steps": steps,
            **self.extra,
        }
        line = _ENCODER.encode(record) + "\n"
        self._last_info = {}
        self._emit(line)
        self.episodes_written += 1

    def _emit(self, line: str) -> None:
        if self._file is None:
            if self.path is None:
                raise ValueError("this EpisodeLogger's file object is gone; give it a path")
            self._file = _open_log(self.path, append=True)
        f = self._file
        if isinstance(f, io.TextIOBase):
            f.write(line)
        else:
            data = memoryview(line.encode("utf-8"))
            while data:  # an unbuffered write may be partial; each line is one write if it can be
                written = f.write(data)
                data = data[written if written is not None else len(data) :]
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())


_NUMBER_PREFIX = re.compile(r"-?\d*(?:\.\d*)?(?:[eE][+-]?\d*)?")


def _open_log(path: Path, append: bool) -> IO[bytes]:
    """Open ``path`` for unbuffered writing; when appending after a line that a crash cut
    short, end that line first, so the next episode starts on a line of its own (the cut
    line stays, and :func:`read_episodes` skips it)."""
    f = open(path, "ab" if append else "wb", buffering=0)  # noqa: SIM115
    if append and os.fstat(f.fileno()).st_size > 0:
        with open(path, "rb") as tail:
            tail.seek(-1, os.SEEK_END)
            if tail.read(1) != b"\n":
                f.write(b"\n")
    return f


def _cut_short(line: str, err: json.JSONDecodeError) -> bool:
    """A line that is the start of an episode's JSON, cut off by a crash mid-write."""
    if not line.lstrip().startswith("{"):
        return False
    if err.msg.startswith("Unterminated string"):
        return True
    # Cut anywhere else, the parser fails at the text's end or inside its last literal.
    rest = line[err.pos :].rstrip()
    return (
        not rest
        or any(word.startswith(rest) for word in ("true", "false", "null"))
        or _NUMBER_PREFIX.fullmatch(rest) is not None
    )


def read_episodes(path: str | os.PathLike[str], complete_only: bool = False) -> list[dict]:
    """Read an episode log written by :class:`EpisodeLogger`.

    A line cut short (the process died while writing it: the last line, or one that a later
    logger, appending, ended before writing its own) is skipped with a warning; any other line
    that is not JSON raises.

    Args:
        path: The ``.jsonl`` file.
        complete_only: Leave out the episodes cut off by a ``reset`` or ``close``.

    Returns:
        One dict per episode, in the order written.

    Raises:
        ValueError: A line other than the last is not valid JSON (its line number is given).
    """
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    episodes = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            episode = json.loads(line)
        except json.JSONDecodeError as err:
            last = number == len(lines) and not text.endswith("\n")
            if last or _cut_short(line, err):
                warnings.warn(
                    f"{path}: skipped line {number}, cut short ({len(line)} characters)",
                    stacklevel=2,
                )
                continue
            raise ValueError(f"{path}, line {number}: not a JSON episode ({err})") from err
        if not complete_only or episode.get("complete", True):
            episodes.append(episode)
    return episodes
