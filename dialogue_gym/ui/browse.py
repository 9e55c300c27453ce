"""The Browse and Compare tabs' logic: episode logs read, filtered and shown, no browser needed.

Episode logs are the JSONL files that :class:`~dialogue_gym.evaluation.episode_log.EpisodeLogger`
writes: ``dialogue-gym episode --out``, ``dialogue-gym play --log`` and the study's
``<results>/episodes/<run>.jsonl``. :func:`load_logs` reads files and folders of them into a
:class:`LogSet`; each episode is an :class:`Entry` labelled with its run (the ``run`` field the
study writes, else the file's name), reward, learner (``learner``, else ``policy`` or
``player``), card and outcome, which the page filters on. :func:`episode_view` is one episode
as the page shows it: the chat with each turn's emotion and the strategy as the env read it,
the per-turn table with the reward components, and the emotion trajectory. :func:`compare`
puts two runs' episodes on the same card side by side.

Example:
    >>> import gymnasium as gym, os, tempfile
    >>> import dialogue_gym
    >>> from dialogue_gym.evaluation.episode_log import EpisodeLogger
    >>> path = os.path.join(tempfile.mkdtemp(), "always-question.jsonl")
    >>> env = EpisodeLogger(gym.make("EmpathyDialogue-v0", voice="template", scenarios="test"),
    ...                     path, extra={"policy": "always-question", "reward": "sparse"})
    >>> for seed in (0, 1):
    ...     _ = env.reset(seed=seed, options={"card": 0})
    ...     done = False
    ...     while not done:
    ...         _, _, terminated, truncated, _ = env.step(0)
    ...         done = terminated or truncated
    >>> env.close()
    >>> logs = load_logs(path)
    >>> [(e.run, e.learner, e.outcome) for e in logs.entries]
    [('always-question', 'always-question', 'ran out of turns'), ('always-question', 'always-question', 'ran out of turns')]
    >>> view = episode_view(logs.entries[0])
    >>> len(view.trajectory) == view.entry.episode["turns"] + 1
    True
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogue_gym.evaluation.episode_log import read_episodes

__all__ = [
    "ALL",
    "FILTERS",
    "Comparison",
    "Entry",
    "EpisodeView",
    "LogError",
    "LogSet",
    "compare",
    "episode_outcome",
    "episode_view",
    "load_logs",
    "return_label",
    "return_reward",
]

#: The filter value that keeps everything.
ALL = "all"
#: The fields the page filters on, as :class:`Entry` attributes.
FILTERS = ("run", "reward", "learner", "card", "outcome")
#: Log files larger than this are refused (a browser tab holds every episode it shows).
MAX_LOG_BYTES = 200 * 2**20


class LogError(ValueError):
    """A log that cannot be shown; the message says which file and why, for the page."""


def episode_outcome(episode: dict[str, Any]) -> str:
    """How a logged episode ended: ``"resolved"``, ``"user left"``, ``"ran out of turns"``,
    or ``"incomplete"`` (cut off by a reset, a close or Ctrl-C).

    Example:
        >>> episode_outcome({"complete": True, "success": False, "user_left": True})
        'user left'
    """
    if not episode.get("complete", True):
        return "incomplete"
    if episode.get("success"):
        return "resolved"
    if episode.get("user_left"):
        return "user left"
    return "ran out of turns"


@dataclass(frozen=True)
class Entry:
    """One logged episode and the labels the page filters on.

    Attributes:
        key: Unique within its :class:`LogSet`: ``"<file>#<line's episode index>"``.
        run: The study's ``run`` field, else the file's name without ``.jsonl``.
        reward: The reward the agent was trained or played with (``reward``), else ``"?"``.
        learner: ``learner``, else ``policy``, else ``player``, else ``"?"``.
        card: The card id (it names the hidden need: this is analysis, not play).
        outcome: :func:`episode_outcome`.
        episode: The logged line, as :func:`~dialogue_gym.evaluation.episode_log.read_episodes`
            reads it.
    """

    key: str
    run: str
    reward: str
    learner: str
    card: str
    outcome: str
    episode: dict[str, Any] = field(repr=False)

    @property
    def label(self) -> str:
        """A line for a picker: run, card, outcome, final emotion, return (and of what)."""
        e = self.episode
        return (
            f"{self.run} · {self.card} · {self.outcome} · emotion {_num(e.get('final_emotion'))}"
            f" · {return_label(self.episode)} {_num(e.get('episode_return'), 2)}"
        )


#: How the page names a reward a logged return was paid in (the others by their own name).
_REWARD_WORDS = {"sparse": "sparse bonus"}


def return_reward(episode: dict[str, Any]) -> str | None:
    """The reward whose return the log's ``episode_return`` is, or ``None`` when the log
    does not say.

    The logger sums the reward of the env it wraps, which is not always the one the agent was
    trained on: a study's evaluation episodes are played in the bare env, whose reward is the
    coarse bonus ``sparse``, whatever the run's ``reward``. The reward is found as the one
    whose component (``reward_components``) equals the logged reward at every step; the run's
    own reward is preferred when several do.

    Example:
        >>> steps = [{"reward": 0.0, "reward_components": {"sparse": 0.0, "final_emotion": 0.0}},
        ...          {"reward": 0.0, "reward_components": {"sparse": 0.0, "final_emotion": 0.5}}]
        >>> return_reward({"reward": "final_emotion", "steps": steps})
        'sparse'
        >>> return_reward({"steps": [{"reward": 1.0}]}) is None
        True
    """
    steps = [s for s in episode.get("steps") or [] if isinstance(s, dict)]
    names: list[str] | None = None
    for s in steps:
        components = s.get("reward_components") or {}
        reward = s.get("reward")
        if not _is_num(reward):
            return None
        fits = [
            k
            for k, v in components.items()
            if "/" not in k and _is_num(v) and math.isclose(v, reward, abs_tol=1e-9)
        ]
        names = fits if names is None else [k for k in names if k in fits]
    if not names:
        return None
    trained = episode.get("reward")
    return trained if trained in names else ("sparse" if "sparse" in names else names[0])


def return_label(episode: dict[str, Any]) -> str:
    """How the page labels a logged episode's return: what reward it is the return of.

    Example:
        >>> steps = [{"reward": 1.0, "reward_components": {"sparse": 1.0, "next_turn": 0.5}}]
        >>> return_label({"reward": "next_turn", "learner": "ppo", "steps": steps})
        'evaluation return (sparse bonus)'
    """
    name = return_reward(episode)
    played = episode.get("player") and not (episode.get("learner") or episode.get("policy"))
    kind = "return" if played else "evaluation return"
    if name is None:
        return f"{kind} (the logged env's reward)"
    return f"{kind} ({_REWARD_WORDS.get(name, name)})"


def _num(value: Any, digits: int = 0) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "?"


def _entry(source: str, index: int, run: str, episode: Any) -> Entry:
    if not isinstance(episode, dict) or not isinstance(episode.get("steps"), list):
        raise LogError(f"{source}: episode {index} is not an episode log line (no 'steps' list)")
    learner = episode.get("learner") or episode.get("policy") or episode.get("player") or "?"
    return Entry(
        key=f"{source}#{index}",
        run=str(episode.get("run") or run),
        reward=str(episode.get("reward") or "?"),
        learner=str(learner),
        card=str(episode.get("card_id") or "?"),
        outcome=episode_outcome(episode),
        episode=episode,
    )


@dataclass
class LogSet:
    """Episodes read from one or more logs, with the notes the page shows about them.

    Attributes:
        entries: Every episode, file by file, in the order written.
        sources: The files read.
        notes: What was skipped and why (lines cut short by a crash).
    """

    entries: list[Entry] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        """The distinct values of one filter field, in first-seen order."""
        return list(dict.fromkeys(getattr(e, name) for e in self.entries))

    def filter(self, **chosen: str | None) -> list[Entry]:
        """The entries whose fields equal the chosen values (``ALL``/``None``: any).

        Raises:
            TypeError: A keyword that is not one of ``FILTERS``.
        """
        unknown = set(chosen) - set(FILTERS)
        if unknown:
            raise TypeError(f"unknown filter(s) {sorted(unknown)}; valid: {FILTERS}")
        wanted = {k: v for k, v in chosen.items() if v not in (None, "", ALL)}
        return [e for e in self.entries if all(getattr(e, k) == v for k, v in wanted.items())]

    def get(self, key: str) -> Entry:
        """The entry with this key.

        Raises:
            LogError: No such entry (the page's logs were reloaded under it).
        """
        for e in self.entries:
            if e.key == key:
                return e
        raise LogError(f"No episode {key!r} in the logs loaded: load them again.")

    def describe(self) -> str:
        """One line: how many episodes of how many runs from how many files."""
        runs = len(self.values("run"))
        text = f"{len(self.entries)} episode(s) of {runs} run(s) from {len(self.sources)} file(s)."
        return " ".join([text, *self.notes])


def _files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        text = os.fspath(raw).strip()
        if not text:
            continue
        path = Path(text).expanduser()
        if path.is_dir():
            inside = sorted(path.glob("*.jsonl")) or sorted(path.glob("episodes/*.jsonl"))
            if not inside:
                raise LogError(
                    f"No episode logs (*.jsonl) in {path}: give a log file, a folder of them, "
                    "or a study results folder (its episodes/)."
                )
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise LogError(f"No such file or folder: {path}")
    if not found:
        raise LogError("Give an episode log (.jsonl), a folder of them, or a study results folder.")
    return found


def load_logs(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> LogSet:
    """Read episode logs: files, folders of ``*.jsonl``, or a study results folder.

    Args:
        paths: One path or several (a study's results folder reads its ``episodes/``).

    Returns:
        The episodes, labelled for filtering.

    Raises:
        LogError: A path that does not exist, a folder without logs, a file that is not an
            episode log (not JSON lines, or lines that are not episodes), or one too large.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    logs = LogSet()
    for path in _files(paths):
        try:
            size = path.stat().st_size
        except OSError as err:
            raise LogError(f"Cannot read {path}: {err.strerror or err}") from None
        if size > MAX_LOG_BYTES:
            raise LogError(f"{path} is {size / 2**20:.0f} MiB; the most the page reads is 200 MiB.")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                episodes = read_episodes(path)
        except UnicodeDecodeError:
            raise LogError(f"{path} is not a text file: is it an episode log (.jsonl)?") from None
        except (ValueError, OSError) as err:
            raise LogError(f"{path.name} is not an episode log: {err}") from None
        logs.notes += [f"Note: {w.message}" for w in caught]
        if not episodes:
            logs.notes.append(f"Note: {path.name} holds no episodes.")
        run = path.stem
        for index, episode in enumerate(episodes):
            logs.entries.append(_entry(path.name, index, run, episode))
        logs.sources.append(str(path))
    return logs


@dataclass(frozen=True)
class EpisodeView:
    """One logged episode as the page shows it.

    Attributes:
        entry: The episode.
        chat: Messages for a chat widget (the agent as ``"user"``, on the right; the
            simulated user as ``"assistant"``, with the emotion after each answer).
        headers: The per-turn table's headers.
        rows: Its rows: strategy as read, every act heard, the user's act, emotion, change,
            reward and each reward component.
        trajectory: The emotion score before the first turn and after each.
        summary: A Markdown paragraph: run, learner, reward, card, need, outcome, numbers.
    """

    entry: Entry
    chat: list[dict[str, str]]
    headers: list[str]
    rows: list[list[Any]]
    trajectory: list[float]
    summary: str

    def trajectory_rows(self, series: str = "emotion") -> list[dict[str, Any]]:
        """Plot rows ``{turn, value, series}`` of the emotion trajectory."""
        return [{"turn": i, "value": v, "series": series} for i, v in enumerate(self.trajectory)]


def _value(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3) if math.isfinite(value) else ""
    return "" if value is None else value


def _opening(episode: dict[str, Any]) -> str | None:
    messages = episode.get("messages") or []
    first = messages[0] if messages else None
    if isinstance(first, dict) and first.get("role") == "user":
        return str(first.get("content", ""))
    return None


def episode_view(entry: Entry) -> EpisodeView:
    """The chat, the per-turn table and the emotion trajectory of one logged episode."""
    e = entry.episode
    steps = [s for s in e.get("steps", []) if isinstance(s, dict)]
    chat: list[dict[str, str]] = []
    start = e.get("initial_emotion")
    opening = _opening(e)
    if opening is not None:
        chat.append({"role": "assistant", "content": f"**user** ({_num(start)}): {opening}"})
    for s in steps:
        acts = s.get("acts") or ([s["strategy"]] if s.get("strategy") else [])
        heard = ", ".join(str(a) for a in acts)
        chat.append({"role": "user", "content": f"{s.get('agent') or ''}\n\n*[{heard}]*"})
        change = s.get("change")
        shown = f", {_signed(change)}" if _is_num(change) else ""
        chat.append(
            {
                "role": "assistant",
                "content": f"**user** ({_num(s.get('emotion'))}{shown}): {s.get('user') or ''}",
            }
        )
    names = list(dict.fromkeys(k for s in steps for k in (s.get("reward_components") or {})))
    paid = return_reward(e)
    headers = [
        "turn",
        "strategy (as read)",
        "acts heard",
        "user act",
        "emotion",
        "change",
        f"reward ({_REWARD_WORDS.get(paid, paid)})" if paid else "reward",
        *names,
    ]
    rows = [
        [
            _value(s.get("turn")),
            _value(s.get("strategy")),
            ", ".join(str(a) for a in (s.get("acts") or [])),
            _value(s.get("user_act")),
            _value(s.get("emotion")),
            _value(s.get("change")),
            _value(s.get("reward")),
            *[_value((s.get("reward_components") or {}).get(n)) for n in names],
        ]
        for s in steps
    ]
    trajectory = [float(v) for v in [start, *(s.get("emotion") for s in steps)] if _is_num(v)]
    strategies = Counter(str(s.get("strategy")) for s in steps)
    used = ", ".join(f"{name} x{n}" for name, n in strategies.most_common())
    summary = (
        f"**{entry.run}** — learner `{entry.learner}`, reward `{entry.reward}`, card "
        f"`{entry.card}` (hidden need: **{str(e.get('need') or '?').replace('_', ' ')}**). "
        f"Outcome: **{entry.outcome}** after {e.get('turns', len(steps))} turn(s); emotion "
        f"{_num(start)} → {_num(e.get('final_emotion'))}; {return_label(e)} "
        f"{_num(e.get('episode_return'), 3)}; seed {e.get('seed')}. Strategies: {used or 'none'}."
    )
    return EpisodeView(entry, chat, headers, rows, trajectory, summary)


def _signed(value: float) -> str:
    """A change as the page shows it: ``+2``, ``-3``, and ``+0`` (never ``-0``)."""
    return f"{round(value):+d}"


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass(frozen=True)
class Comparison:
    """Two runs' episodes on the same card.

    Attributes:
        card: The card id.
        left: Run A's episode.
        right: Run B's episode.
        verdict: One sentence on what differs (outcome, final emotion, strategies).
    """

    card: str
    left: EpisodeView
    right: EpisodeView
    verdict: str

    def trajectory_rows(self) -> list[dict[str, Any]]:
        """Both emotion trajectories as plot rows, one series per run."""
        left, right = self.left.entry.run, self.right.entry.run
        if left == right:
            left, right = f"A: {left}", f"B: {right}"
        return self.left.trajectory_rows(left) + self.right.trajectory_rows(right)


def common_cards(logs: LogSet, run_a: str, run_b: str) -> list[str]:
    """The cards both runs played, in run A's order."""
    b_cards = {e.card for e in logs.entries if e.run == run_b}
    return [
        c for c in dict.fromkeys(e.card for e in logs.entries if e.run == run_a) if c in b_cards
    ]


def _main_strategy(view: EpisodeView) -> str:
    steps = view.entry.episode.get("steps") or []
    counts = Counter(str(s.get("strategy")) for s in steps if isinstance(s, dict))
    if not counts:
        return "nothing"
    name, n = counts.most_common(1)[0]
    return f"{name} ({n} of {len(steps)} turns)"


def compare(logs: LogSet, run_a: str, run_b: str, card: str | None = None) -> Comparison:
    """Run A's and run B's first episodes on ``card`` (default: the first card both played).

    Raises:
        LogError: A run that is not loaded, or no card both runs played.
    """
    runs = logs.values("run")
    for run in (run_a, run_b):
        if run not in runs:
            raise LogError(f"No run {run!r} in the logs loaded; runs: {', '.join(runs) or 'none'}.")
    cards = common_cards(logs, run_a, run_b)
    if not cards:
        raise LogError(f"{run_a} and {run_b} played no card in common.")
    card = card or cards[0]
    if card not in cards:
        raise LogError(f"Both runs did not play card {card!r}; cards in common: {len(cards)}.")
    a = episode_view(logs.filter(run=run_a, card=card)[0])
    b = episode_view(logs.filter(run=run_b, card=card)[0])
    ea, eb = a.entry.episode, b.entry.episode
    verdict = (
        f"On `{card}`: **{run_a}** — {a.entry.outcome}, final emotion "
        f"{_num(ea.get('final_emotion'))}, mostly {_main_strategy(a)}; **{run_b}** — "
        f"{b.entry.outcome}, final emotion {_num(eb.get('final_emotion'))}, mostly "
        f"{_main_strategy(b)}."
    )
    if a.entry.outcome != b.entry.outcome and "resolved" in (a.entry.outcome, b.entry.outcome):
        other = b if a.entry.outcome == "resolved" else a
        verdict += (
            f" {other.entry.run} never met the hidden need: whatever emotion it gained came "
            "from comfort alone."
        )
    return Comparison(card, a, b, verdict)
