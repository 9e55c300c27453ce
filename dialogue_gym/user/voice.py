"""The words of both sides: the simulated user's voice and the agent's realiser.

The dynamics never depend on the voice. The affective core decides what happens (the user's
act, emotion, reason, revealed need cue; the agent's strategy); a voice only turns those
decisions into text:

- a *user voice* says a :class:`UserTurn` (``speak``);
- an *agent realiser* says a strategy as a :class:`AgentTurn` (``say``), PPDPP-style.

Each comes in two kinds:

- ``"template"``: authored fragments from ``dialogue_gym/user/data/fragments.yaml``, picked by
  the turn's seed; deterministic and a few microseconds a turn, for RL at scale and tests;
- ``"llm"``: a bounded prompt (persona, situation, emotion band, reason, cue, the last
  ``history_window`` messages) from ``dialogue_gym/llm/prompts/`` sent to a backend in one batched
  call; seeded per turn. Agent text is data: it reaches the user model only as the other
  party's chat messages, never inside the system instructions.

Both kinds take batches (lists of turns) and return one string per turn.

Example:
    >>> from dialogue_gym.core.scenario import Persona, ScenarioCard
    >>> card = ScenarioCard(
    ...     id="doc", split="train", situation_id="doc", situation="Maya was laid off.",
    ...     persona=Persona("Maya", 29, "female", "nurse", ("proud",), "short", "open"),
    ...     topic="losing my job", problem_type="job crisis", emotion_type="anxiety",
    ...     initial_emotion=30.0, hidden_need="be_heard", need_cues=(), facts=(),
    ...     difficulty="easy")
    >>> turn = UserTurn(card=card, act="vent", emotion=30.0, band="low", reason="",
    ...     cue=None, agent_utterance=None, history=(), turn=0, seed=3)
    >>> voice = make_user_voice("template")
    >>> voice.speak([turn]) == voice.speak([turn])
    True
    >>> realiser = make_agent_realiser("template")
    >>> print(realiser.say([AgentTurn(card=card, strategy=0, user_utterance="I lost my job.",
    ...     cue=None, history=(), turn=0, seed=11)])[0])
    Is there someone close to you who knows what you're going through?
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import EMOTION_BANDS, STRATEGIES, USER_ACTS
from dialogue_gym.llm.backends import BackendSpec, GenerationParams
from dialogue_gym.llm.client import BackendClient, load_prompt, spec_label

__all__ = [
    "AGENT_REALISER_KINDS",
    "BANDS",
    "DEFAULT_LLM_PARAMS",
    "USER_VOICE_KINDS",
    "AgentTurn",
    "Fragments",
    "LLMAgentRealiser",
    "LLMUserVoice",
    "SILENT_AGENT",
    "SILENT_USER",
    "SilentVoice",
    "TemplateAgentRealiser",
    "TemplateUserVoice",
    "UserTurn",
    "clean_reply",
    "load_fragments",
    "make_agent_realiser",
    "make_user_voice",
    "second_person",
]

#: The emotion bands, highest first (``constants.EMOTION_BANDS``' names).
BANDS: tuple[str, ...] = tuple(name for _, name in EMOTION_BANDS)
#: The kinds :func:`make_user_voice` and :func:`make_agent_realiser` accept.
USER_VOICE_KINDS: tuple[str, ...] = ("llm", "template")
AGENT_REALISER_KINDS: tuple[str, ...] = ("llm", "template")

#: Sampling for the LLM voices: short replies, mildly creative.
DEFAULT_LLM_PARAMS = GenerationParams(
    max_tokens=48,
    temperature=0.7,
    top_p=0.9,
    stop=("\nUser:", "\nAssistant:", "\nSupporter:"),
)
#: Bounds on an LLM reply after post-processing.
MAX_SENTENCES = 3
MAX_CHARS = 300
#: Longest message (in characters) an LLM prompt quotes from the history, so a huge agent
#: utterance cannot blow up the prompt.
MAX_QUOTED_CHARS = 400

_DATA_FILE = Path(__file__).parent / "data" / "fragments.yaml"
_OPENING = "opening"  # the user-table key for the first line of a conversation


# Not frozen: a frozen dataclass costs microseconds to build, and one is built per turn
# in RL loops. Treat it as read-only.
@dataclass(slots=True)
class UserTurn:
    """What the user voice must say this turn (decided by the affective core).

    Attributes:
        card: The scenario card (persona, situation, topic).
        act: The user's act, one of ``USER_ACTS``.
        emotion: Emotion score in [0, 100] after this turn's appraisal.
        band: ``constants.emotion_band(emotion)``.
        reason: The appraisal's short first-person reason ("They jumped to advice before
            listening."); empty at the opening turn.
        cue: The need-cue text revealed this turn, if any; the user must convey it.
        agent_utterance: What the agent just said; ``None`` at the opening turn.
        history: The last few messages, roles ``"user"`` (the simulated user) and
            ``"assistant"`` (the agent); extra keys are ignored.
        turn: The turn index (0 at the opening).
        seed: Seed for this turn's wording.
    """

    card: ScenarioCard
    act: str
    emotion: float
    band: str
    reason: str
    cue: str | None
    agent_utterance: str | None
    history: tuple[Mapping[str, str], ...]
    turn: int
    seed: int


# Not frozen: a frozen dataclass costs microseconds to build, and one is built per turn
# in RL loops. Treat it as read-only.
@dataclass(slots=True)
class AgentTurn:
    """What the agent realiser must say: one strategy, in words.

    Attributes:
        card: The scenario card (the realiser may use the topic and the user's name).
        strategy: Index into ``STRATEGIES``.
        user_utterance: The user's last words.
        cue: The latest need-cue text the user has revealed, if any (restatements and
            reflections can echo it).
        history: The last few messages, roles ``"user"`` (the simulated user) and
            ``"assistant"`` (the agent).
        turn: The turn index.
        seed: Seed for this turn's wording.
    """

    card: ScenarioCard
    strategy: int
    user_utterance: str
    cue: str | None
    history: tuple[Mapping[str, str], ...]
    turn: int
    seed: int


# --------------------------------------------------------------------------- fragments


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
    by_act = {_OPENING: section(user, _OPENING), **section(user, "acts")}
    for act in (_OPENING, *USER_ACTS):
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


# --------------------------------------------------------------------------- helpers

_M64 = (1 << 64) - 1


def _mix(seed: int) -> int:
    """SplitMix64's finaliser: nearby seeds (the env's turn seeds step by 2) spread evenly."""
    z = (seed + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


_FIRST_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "am": "are",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
}
_WORD_RE = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?")
_I_WAS_RE = re.compile(r"\bI was\b")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
# Words that may lose their capital when a cue is quoted mid-sentence.
_STARTER_WORDS = (
    "you your yours yourself you're you've you'd you'll it it's the that this there they "
    "what when all everything nothing nobody no just maybe sometimes honestly really even "
    "and but so if because part a an most every some people everyone being not to how why "
    "deep lately now still"
)
_COMMON_STARTERS = frozenset(_STARTER_WORDS.split())


@lru_cache(maxsize=4096)
def second_person(text: str) -> str:
    """Turn a first-person phrase into the second person, for the agent to echo it.

    Approximate (a word map, cached per string): ``I``/``me`` -> ``you``, ``my`` -> ``your``,
    ``I'm`` -> ``you're``, ``I was`` -> ``you were``...

    Example:
        >>> second_person("I keep thinking my boss was right about me")
        'you keep thinking your boss was right about you'
    """
    text = _I_WAS_RE.sub("you were", text)

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        low = word.lower().replace("\u2019", "'")
        if low not in _FIRST_PERSON or (low == "us" and word == "US"):
            return word
        return _FIRST_PERSON[low]

    return _WORD_RE.sub(swap, text)


_SECOND_PERSON_RE = re.compile(r"\byou(?:r|rs|rself|'re|'ve|'d|'ll)?\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def _echo(cue: str) -> str | None:
    """A cue as the agent quotes it mid-sentence: first sentence, second person, no final stop.

    ``None`` when the cue cannot be echoed as a statement: a question ("Did I do the right
    thing?") or a line that already addresses the listener ("What would you do?").
    """
    first = _SENTENCE_END_RE.split(cue.strip(), maxsplit=1)[0].strip()
    if not first or first.endswith("?") or _SECOND_PERSON_RE.search(first):
        return None
    echoed = second_person(first.rstrip(" .!;:,"))
    head = echoed.split(" ", 1)[0].lower().rstrip(",")
    if head in _COMMON_STARTERS:
        echoed = echoed[:1].lower() + echoed[1:]
    return echoed


def _join_words(words: Sequence[str]) -> str:
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _check_strategy(strategy: int) -> int:
    index = int(strategy)
    if not 0 <= index < len(STRATEGIES):
        raise ValueError(f"strategy must be in [0, {len(STRATEGIES)}), got {strategy!r}")
    return index


# --------------------------------------------------------------------------- templates


class TemplateUserVoice:
    """The user's words from authored fragments: deterministic and fast.

    The line is a fragment chosen by act and band (the opening table at the first turn),
    picked by the turn's seed, with ``{name}`` and ``{topic}`` filled, followed by the need
    cue's own text when one is revealed.
    """

    kind = "template"

    def __init__(self) -> None:
        self._table: Mapping[tuple[str, str], tuple[str, ...]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_table": None}  # reloaded (once per process) on first use

    def describe(self) -> dict[str, Any]:
        """What produced the words, for ``info``."""
        return {"voice": self.kind}

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        """Say each turn.

        Raises:
            ValueError: A turn's act or band is unknown.
        """
        table = self._table
        if table is None:
            table = self._table = load_fragments().user
        out: list[str] = []
        for t in turns:
            key = (_OPENING if t.agent_utterance is None else t.act, t.band)
            options = table.get(key)
            if options is None:
                raise ValueError(
                    f"no user fragments for act {t.act!r} and band {t.band!r}; "
                    f"acts: {USER_ACTS}, bands: {BANDS}"
                )
            text = options[_mix(t.seed) % len(options)]
            if "{" in text:
                text = text.format(name=t.card.persona.name, topic=t.card.topic)
            out.append(f"{text} {t.cue}" if t.cue else text)
        return out


class TemplateAgentRealiser:
    """The agent's words from authored fragments, one pool per strategy.

    Restatement and Reflection echo the latest need cue (in the second person) once the
    user has revealed one, or the topic; the other strategies stay generic but fit the topic.
    """

    kind = "template"

    def __init__(self) -> None:
        self._frags: Fragments | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"_frags": None}

    def describe(self) -> dict[str, Any]:
        """What produced the words, for ``info``."""
        return {"agent_voice": self.kind}

    def say(self, turns: Sequence[AgentTurn]) -> list[str]:
        """Say each turn's strategy.

        Raises:
            ValueError: A strategy index is out of range.
        """
        frags = self._frags
        if frags is None:
            frags = self._frags = load_fragments()
        out: list[str] = []
        for t in turns:
            strategy = _check_strategy(t.strategy)
            echo = _echo(t.cue) if t.cue else None
            pool = frags.agent_plain[strategy] if echo is None else frags.agent_cue[strategy]
            text = pool[_mix(t.seed) % len(pool)]
            if "{" in text:
                card = t.card
                text = text.format(
                    name=card.persona.name,
                    topic=second_person(card.topic),
                    feeling=frags.feelings.get(card.emotion_type, "upset"),
                    cue=echo or "",
                )
            out.append(text)
        return out


# --------------------------------------------------------------------------- LLM voices

_ROLE_WORDS = (
    "assistant",
    "user",
    "supporter",
    "listener",
    "agent",
    "therapist",
    "counsel+or",
    "seeker",
    "human",
    "ai",
    "me",
)
_SPECIAL_TOKEN_RE = re.compile(r"<\|[^|>]*\|>|</?s>")
# Stage directions the small models like to add: "(pauses)", "*sighs*", "[smiling]".
_STAGE_RE = re.compile(r"\([^()\n]{0,60}\)|(?<!\*)\*[^*\n]{1,60}\*(?!\*)|\[[^\[\]\n]{0,60}\]")
_LETTER_RE = re.compile(r"[^\W\d_]")


@lru_cache(maxsize=1024)
def _role_patterns(names: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    alternatives = "|".join((*_ROLE_WORDS, *(re.escape(n) for n in names if n)))
    label = rf"[*_\s]*(?:{alternatives})[*_\s]*:"
    leading = re.compile(rf"^\s*{label}\s*", re.IGNORECASE)
    # A later line (or sentence) that starts another speaker's turn: cut the reply there.
    later = re.compile(rf"(?:\n|(?<=[.!?])\s)\s*{label}", re.IGNORECASE)
    return leading, later


def clean_reply(
    text: str,
    names: Sequence[str] = (),
    max_sentences: int = MAX_SENTENCES,
    max_chars: int = MAX_CHARS,
) -> str | None:
    """Post-process a generated reply; ``None`` when nothing usable is left.

    Strips whitespace, quotes, special tokens and stage directions (``"(sighs)"``,
    ``"*smiles*"``), drops a leading role label (``"User:"``, ``"Assistant:"``, one of
    ``names`` + ``":"``), cuts where the model starts writing another speaker's turn, and keeps at most ``max_sentences`` sentences and
    ``max_chars`` characters (dropping a trailing half sentence when a whole one precedes it).

    Example:
        >>> clean_reply("Maya: I feel lost. I don't know. Really. Truly.\\nUser: ok", ("Maya",))
        "I feel lost. I don't know. Really."
        >>> clean_reply(" ... ") is None
        True
    """
    leading, later = _role_patterns(tuple(names))
    text = _SPECIAL_TOKEN_RE.sub(" ", text).strip()
    for _ in range(3):  # "Maya: **User:** ..." and the like
        stripped = leading.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    match = later.search(text)
    if match:
        text = text[: match.start()]
    text = _STAGE_RE.sub(" ", text).replace("*", "")
    text = " ".join(text.split()).strip(" \"'\u201c\u201d")
    if not _LETTER_RE.search(text):
        return None
    sentences = _SENTENCE_END_RE.split(text)
    if len(sentences) > 1 and not sentences[-1].rstrip("\"')\u201d").endswith((".", "!", "?")):
        sentences = sentences[:-1]  # a reply cut off by max_tokens
    kept: list[str] = []
    length = 0
    for sentence in sentences[:max_sentences]:
        extra = len(sentence) + (1 if kept else 0)
        if length + extra > max_chars:
            break
        kept.append(sentence)
        length += extra
    if not kept:  # one over-long sentence: cut at a word boundary
        cut = text[:max_chars]
        kept = [cut.rsplit(" ", 1)[0] if " " in cut else cut]
    out = " ".join(kept).strip()
    return out if _LETTER_RE.search(out) else None


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if len(w) > 3}


def _conveys(text: str, cue: str) -> bool:
    """Whether ``text`` carries most of the cue's content words."""
    wanted = _content_words(cue)
    if not wanted:
        return True
    return len(wanted & _content_words(text)) >= 0.5 * len(wanted)


def _parrots(reply: str, other: str | None) -> bool:
    """Whether ``reply`` copies the other party's last message (small models often do).

    True when both open with the same five words or share most of their content words.
    """
    if not other:
        return False
    head = [w.lower() for w in _WORD_RE.findall(reply)[:5]]
    if len(head) == 5 and head == [w.lower() for w in _WORD_RE.findall(other)[:5]]:
        return True
    mine, theirs = _content_words(reply), _content_words(other)
    return len(mine) >= 4 and len(mine & theirs) >= 0.7 * len(mine | theirs)


def _with_cue(text: str, cue: str, max_chars: int = MAX_CHARS) -> str:
    """Append the cue's own words, shortening ``text`` (by whole sentences) to make room."""
    room = max_chars - len(cue) - 1
    sentences = _SENTENCE_END_RE.split(text)
    while sentences and len(" ".join(sentences)) > room:
        sentences.pop()
    head = " ".join(sentences)
    return f"{head} {cue}" if head else cue


def _quote(content: Any) -> str:
    return str(content)[:MAX_QUOTED_CHARS]


class _LLMVoiceBase(BackendClient):
    """Shared plumbing of the LLM voices: a :class:`~dialogue_gym.llm.client.BackendClient`
    (the backend resolved lazily, dropped when pickled) with sampling and a history window."""

    kind = "llm"

    def __init__(
        self,
        backend: BackendSpec = "llama_cpp",
        params: GenerationParams | None = None,
        history_window: int = 4,
    ) -> None:
        if history_window < 0:
            raise ValueError(f"history_window must be >= 0, got {history_window}")
        super().__init__(backend)
        self.params = params if params is not None else DEFAULT_LLM_PARAMS
        self.history_window = int(history_window)
        self.fallbacks = 0  # replies replaced by the template text (empty or garbage)

    @property
    def backend_spec(self) -> BackendSpec:
        """The backend spec (``spec``, under the name the voices have always used)."""
        return self.spec

    def describe(self) -> dict[str, Any]:
        """What produced the words, for ``info``: kind, backend spec and sampling."""
        return {
            "voice": self.kind,
            "backend": spec_label(self.spec),
            "temperature": self.params.temperature,
            "top_p": self.params.top_p,
            "max_tokens": self.params.max_tokens,
        }

    def _recent(self, history: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
        if not self.history_window:
            return []
        recent = [m for m in history[-self.history_window :] if m.get("role") in _ROLES]
        return recent

    def _generate(self, chats: list[list[dict[str, str]]], seeds: tuple[int, ...]) -> list[str]:
        return self.generate(chats, dataclasses.replace(self.params, seeds=seeds))


_ROLES = frozenset({"user", "assistant"})


class LLMUserVoice(_LLMVoiceBase):
    """The user's words from an LLM, one batched backend call per ``speak``.

    The system message makes the model the persona talking to a supporter (persona,
    situation, emotion band, the appraisal's reason, the act to perform, the cue to convey);
    the last ``history_window`` messages follow with the roles seen from the persona's side:
    the simulated user's past lines are the model's own (``"assistant"``) and the agent's
    are the other party's (``"user"``). Agent text never enters the system message. Replies
    are cleaned (:func:`clean_reply`); an empty or garbage reply, or one that parrots the
    agent's last message, falls back to the template line (counted in ``fallbacks``), and a reply that fails to convey a revealed cue gets the cue's own words appended.

    Args:
        backend: Backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings; seeds are replaced by the turns' seeds.
        history_window: How many recent messages the prompt quotes (``k``).
    """

    def __init__(
        self,
        backend: BackendSpec = "llama_cpp",
        params: GenerationParams | None = None,
        history_window: int = 4,
    ) -> None:
        super().__init__(backend, params, history_window)
        self._template = TemplateUserVoice()

    def build_chat(self, turn: UserTurn) -> list[dict[str, str]]:
        """The bounded prompt for one turn, as chat messages (system message first)."""
        frags = load_fragments()
        card = turn.card
        persona = card.persona
        try:
            band_words = frags.band_words[turn.band]
            act_line = frags.act_lines[turn.act]
        except KeyError:
            raise ValueError(
                f"unknown band {turn.band!r} or act {turn.act!r}; bands: {BANDS}, acts: {USER_ACTS}"
            ) from None
        system = load_prompt("user_voice.txt").format(
            name=persona.name,
            age=persona.age,
            gender=persona.gender,
            occupation=persona.occupation,
            traits=_join_words(persona.traits),
            speaking_style=persona.speaking_style,
            situation=card.situation,
            # The card's facts are what Q&A consistency checks: a voice never told them can
            # only invent answers (SmolLM2 matched 1 in 18 without them).
            facts=" ".join(f"{fact.question} {fact.answer}" for fact in card.facts),
            topic=second_person(card.topic),
            band_words=band_words,
            reason_line=f" What you think of their last message: {turn.reason}"
            if turn.reason
            else "",
            act_line=act_line,
            cue_line=f' Make sure you tell them this: "{turn.cue}"' if turn.cue else "",
        )
        chat = [{"role": "system", "content": system}]
        for m in self._recent(turn.history):
            role = "assistant" if m["role"] == "user" else "user"
            chat.append({"role": role, "content": _quote(m["content"])})
        if turn.agent_utterance is not None:
            said = _quote(turn.agent_utterance)
            if not (chat[-1]["role"] == "user" and chat[-1]["content"] == said):
                chat.append({"role": "user", "content": said})
        elif chat[-1]["role"] != "user":
            chat.append({"role": "user", "content": frags.greeting})
        return chat

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        """Say each turn, with one batched backend call."""
        if not turns:
            return []
        chats = [self.build_chat(t) for t in turns]
        replies = self._generate(chats, tuple(int(t.seed) for t in turns))
        out: list[str] = []
        for t, reply in zip(turns, replies, strict=True):
            text = clean_reply(reply, (t.card.persona.name,))
            if text is None or _parrots(text, t.agent_utterance):
                self.fallbacks += 1
                text = self._template.speak([t])[0]
            elif t.cue and not _conveys(text, t.cue):
                text = _with_cue(text, t.cue)
            out.append(text)
        return out


class LLMAgentRealiser(_LLMVoiceBase):
    """The agent's words from an LLM told which strategy to use (PPDPP's realiser).

    The system message names the strategy and its meaning; the user's words arrive as the
    other party's chat messages. Cleaned like the user voice; an empty or garbage reply, or one
    that parrots the user's last message, falls back to the template line.

    Args:
        backend: Backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings; seeds are replaced by the turns' seeds.
        history_window: How many recent messages the prompt quotes (``k``).
    """

    def __init__(
        self,
        backend: BackendSpec = "llama_cpp",
        params: GenerationParams | None = None,
        history_window: int = 4,
    ) -> None:
        super().__init__(backend, params, history_window)
        self._template = TemplateAgentRealiser()

    def build_chat(self, turn: AgentTurn) -> list[dict[str, str]]:
        """The bounded prompt for one turn, as chat messages (system message first)."""
        frags = load_fragments()
        strategy = _check_strategy(turn.strategy)
        card = turn.card
        system = load_prompt("agent_realiser.txt").format(
            name=card.persona.name,
            topic=second_person(card.topic),
            strategy=STRATEGIES[strategy],
            strategy_instruction=frags.strategy_lines[strategy],
            cue_line=f' Earlier they told you: "{turn.cue}"' if turn.cue else "",
        )
        chat = [{"role": "system", "content": system}]
        for m in self._recent(turn.history):
            chat.append({"role": str(m["role"]), "content": _quote(m["content"])})
        said = _quote(turn.user_utterance)
        if not (chat[-1]["role"] == "user" and chat[-1]["content"] == said):
            chat.append({"role": "user", "content": said})
        return chat

    def say(self, turns: Sequence[AgentTurn]) -> list[str]:
        """Say each turn's strategy, with one batched backend call."""
        if not turns:
            return []
        chats = [self.build_chat(t) for t in turns]
        replies = self._generate(chats, tuple(int(t.seed) for t in turns))
        out: list[str] = []
        for t, reply in zip(turns, replies, strict=True):
            text = clean_reply(reply, (t.card.persona.name,))
            if text is None or _parrots(text, t.user_utterance):
                self.fallbacks += 1
                text = self._template.say([t])[0]
            out.append(text)
        return out


# --------------------------------------------------------------------------- factories

UserVoice = TemplateUserVoice | LLMUserVoice
AgentRealiser = TemplateAgentRealiser | LLMAgentRealiser


class SilentVoice:
    """Says nothing: for look-ahead forks (``env.fork(voice=False)``), where only the
    dynamics matter. Works as both a user voice and an agent realiser."""

    kind = "silent"

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        return [""] * len(turns)

    def say(self, turns: Sequence[AgentTurn]) -> list[str]:
        return [""] * len(turns)

    def describe(self) -> dict[str, Any]:
        return {"voice": self.kind}


SILENT_USER = SILENT_AGENT = SilentVoice()


def make_user_voice(kind: str, backend: BackendSpec = "llama_cpp", **kwargs: Any) -> UserVoice:
    """Build a user voice by kind.

    Args:
        kind: ``"llm"`` or ``"template"``.
        backend: Backend spec for the ``"llm"`` kind (ignored by ``"template"``).
        **kwargs: Passed to :class:`LLMUserVoice` (``params``, ``history_window``).

    Raises:
        ValueError: Unknown kind (the message names the valid ones).
    """
    if kind == "template":
        return TemplateUserVoice()
    if kind == "llm":
        return LLMUserVoice(backend, **kwargs)
    raise ValueError(f"unknown user voice {kind!r}; valid kinds: {', '.join(USER_VOICE_KINDS)}")


def make_agent_realiser(
    kind: str, backend: BackendSpec = "llama_cpp", **kwargs: Any
) -> AgentRealiser:
    """Build an agent realiser by kind.

    Args:
        kind: ``"llm"`` or ``"template"``.
        backend: Backend spec for the ``"llm"`` kind (ignored by ``"template"``).
        **kwargs: Passed to :class:`LLMAgentRealiser` (``params``, ``history_window``).

    Raises:
        ValueError: Unknown kind (the message names the valid ones).
    """
    if kind == "template":
        return TemplateAgentRealiser()
    if kind == "llm":
        return LLMAgentRealiser(backend, **kwargs)
    raise ValueError(
        f"unknown agent realiser {kind!r}; valid kinds: {', '.join(AGENT_REALISER_KINDS)}"
    )
