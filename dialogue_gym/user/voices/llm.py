"""The LLM voices: a bounded prompt per turn, one batched backend call per batch of turns.

Both sides share :class:`LLMVoice`: the prompt is a system message (from
``dialogue_gym/llm/prompts/``) followed by the recent history and the other party's last
words; the reply is cleaned (:func:`~dialogue_gym.user.voices.cleaning.clean_reply`), and an
empty or garbage reply, or one that parrots the other party, falls back to the template line
(counted in ``fallbacks``). Text from the other side is data: it reaches the model only as the
other party's chat messages, never inside the system instructions.

The user's voice does more (issue 13: a 135M model playing a person in distress slips into the
supporter's role, says goodbye mid-chat, or sounds cheerful at emotion 25): its prompt frames
the model as the help-seeker, with the act and the mood to express and two example lines for
them; each line is checked (:func:`~dialogue_gym.user.voices.checks.check_line`: role, act,
mood); a line that only misses its act gets the act's marker ("Thank you."); any other failure
is resampled with a seed derived from the turn's (:func:`retry_seed`), up to ``max_retries``
times, then the template line for the act stands in. ``last_reports`` says which, per line;
the env copies it to ``info["voice_check"]``.

The history a prompt quotes is the turn's ``history``: the env has already cut it to its
``history_window``, so a voice quotes all of it unless it was built with its own (smaller)
``history_window``.

Example:
    >>> class Echo:  # a backend: chats in, replies out
    ...     def generate(self, chats, params):
    ...         return ["I am not sure where to start."] * len(chats)
    >>> from dialogue_gym.core.scenario import load_scenarios
    >>> from dialogue_gym.user.voices.turns import UserTurn
    >>> history = tuple({"role": r, "content": f"m{i}"}
    ...                 for i, r in enumerate(["user", "assistant"] * 4))
    >>> turn = UserTurn(card=load_scenarios("test")[0], act="vent", emotion=30.0, band="low",
    ...     reason="", cue=None, agent_utterance="m7", history=history, turn=4, seed=1)
    >>> voice = LLMUserVoice(Echo())
    >>> voice.speak([turn])
    ['I am not sure where to start.']
    >>> voice.last_reports
    [{'retries': 0, 'fallback': False, 'repaired': False}]
    >>> len(voice.build_chat(turn)) - 1, len(LLMUserVoice(Echo(), history_window=2).build_chat(turn)) - 1
    (8, 2)
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from dialogue_gym.core.vocabulary import STRATEGIES, USER_ACTS
from dialogue_gym.llm.backends import BackendSpec, GenerationParams
from dialogue_gym.llm.client import BackendClient, load_prompt, spec_label
from dialogue_gym.user.voices.checks import check_line
from dialogue_gym.user.voices.cleaning import (
    MAX_CHARS,
    SENTENCE_END_RE,
    clean_reply,
    conveys,
    is_parrot,
    join_words,
    second_person,
    with_cue,
)
from dialogue_gym.user.voices.fragments import BANDS, OPENING, load_fragments
from dialogue_gym.user.voices.template import (
    TemplateAgentRealiser,
    TemplateUserVoice,
    mix_fragments,
)
from dialogue_gym.user.voices.turns import AgentTurn, UserTurn, check_strategy

__all__ = [
    "DEFAULT_LLM_PARAMS",
    "MAX_QUOTED_CHARS",
    "MAX_RETRIES",
    "USER_VOICE_PARAMS",
    "LLMAgentRealiser",
    "LLMUserVoice",
    "LLMVoice",
]

#: Sampling for the LLM voices: short replies, mildly creative.
DEFAULT_LLM_PARAMS = GenerationParams(
    max_tokens=48,
    temperature=0.7,
    top_p=0.9,
    stop=("\nUser:", "\nAssistant:", "\nSupporter:"),
)
#: Sampling for the LLM user voice: shorter still (one or two sentences are asked for), and a
#: blank line or another speaker's label ends the reply (the model writing both sides).
USER_VOICE_PARAMS = GenerationParams(
    max_tokens=40,
    temperature=0.7,
    top_p=0.9,
    # "[INST]" and "<s>": a model whose GGUF has no chat template (Gemma 3 270M's base model)
    # is prompted in llama.cpp's default format and writes the next turn's tags.
    stop=("\n\n", "\nUser:", "\nAssistant:", "\nSupporter:", "Supporter:", "[INST]", "<s>"),
)
#: How many times the LLM user voice resamples a line that fails its check before it falls
#: back to the template line for the act.
MAX_RETRIES = 4
#: Longest message (in characters) an LLM prompt quotes from the history, so a huge agent
#: utterance cannot blow up the prompt.
MAX_QUOTED_CHARS = 400

_ROLES = frozenset({"user", "assistant"})


def _quote(content: Any) -> str:
    return str(content)[:MAX_QUOTED_CHARS]


class LLMVoice(BackendClient):
    """What both LLM voices share: a :class:`~dialogue_gym.llm.client.BackendClient` (the
    backend resolved lazily, dropped when pickled), sampling, the history window, the prompt's
    shape and the clean-or-fall-back loop.

    A subclass says how one turn's system message reads (:meth:`system_message`), what the
    other party just said (:meth:`heard`), and its template fallback.

    Args:
        backend: Backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings; seeds are replaced by the turns' seeds.
        history_window: At most this many of the turn's history messages are quoted;
            ``None`` (the default) quotes the whole ``history`` the turn carries, which the
            env has already cut to its own ``history_window``.
    """

    kind = "llm"
    #: Whether the history's roles are swapped: the simulated user's lines are the model's
    #: own when the model plays the user.
    flip_roles = False
    #: The template kind whose line replaces an unusable reply (see :meth:`fallback`).
    template_class: type | None = None

    def __init__(
        self,
        backend: BackendSpec = "llama_cpp",
        params: GenerationParams | None = None,
        history_window: int | None = None,
    ) -> None:
        if history_window is not None and history_window < 0:
            raise ValueError(f"history_window must be >= 0 or None, got {history_window}")
        super().__init__(backend)
        self.params = params if params is not None else DEFAULT_LLM_PARAMS
        self.history_window = None if history_window is None else int(history_window)
        self.fallbacks = 0  # replies replaced by the template text (empty or garbage)
        self._template = self.template_class() if self.template_class is not None else None

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

    # -- what a subclass says -----------------------------------------------------------

    def system_message(self, turn: Any) -> str:
        """The system message of one turn's prompt."""
        raise NotImplementedError

    def heard(self, turn: Any) -> str | None:
        """What the other party just said (``None``: nothing yet, the conversation opens)."""
        raise NotImplementedError

    def opening(self) -> str | None:
        """The other party's line when the conversation opens with nothing said (or ``None``)."""
        return None

    def fallback(self, turn: Any) -> str:
        """The template line that replaces an unusable reply."""
        raise NotImplementedError

    def finish(self, turn: Any, text: str) -> str:
        """A last touch to a usable reply. Default: none."""
        return text

    # -- shared ---------------------------------------------------------------------------

    def _recent(self, history: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
        if self.history_window == 0:
            return []
        window = history if self.history_window is None else history[-self.history_window :]
        return [m for m in window if m.get("role") in _ROLES]

    def build_chat(self, turn: Any) -> list[dict[str, str]]:
        """The bounded prompt for one turn, as chat messages (system message first)."""
        chat = [{"role": "system", "content": self.system_message(turn)}]
        for m in self._recent(turn.history):
            role = str(m["role"])
            if self.flip_roles:
                role = "assistant" if role == "user" else "user"
            chat.append({"role": role, "content": _quote(m["content"])})
        said = self.heard(turn)
        if said is not None:
            said = _quote(said)
            if not (chat[-1]["role"] == "user" and chat[-1]["content"] == said):
                chat.append({"role": "user", "content": said})
        elif chat[-1]["role"] != "user":
            opening = self.opening()
            if opening is not None:
                chat.append({"role": "user", "content": opening})
        return chat

    def _words(self, turns: Sequence[Any]) -> list[str]:
        """Each turn's words, with one batched backend call."""
        if not turns:
            return []
        chats = [self.build_chat(t) for t in turns]
        params = dataclasses.replace(self.params, seeds=tuple(int(t.seed) for t in turns))
        replies = self.generate(chats, params)
        out: list[str] = []
        for t, reply in zip(turns, replies, strict=True):
            text = clean_reply(reply, (t.card.persona.name,))
            if text is None or is_parrot(text, self.heard(t)):
                self.fallbacks += 1
                text = self.fallback(t)
            else:
                text = self.finish(t, text)
            out.append(text)
        return out


_VOICE_DATA = Path(__file__).resolve().parents[1] / "data" / "user_voice.yaml"
_VOICE_TEXT: dict[str, Mapping[str, Any]] = {}
_VOICE_LOCK = threading.Lock()


def _voice_text() -> Mapping[str, Mapping[str, Any]]:
    """The greeting, moods, goals and act markers of ``user_voice.yaml``, validated once per
    process."""
    if not _VOICE_TEXT:
        with _VOICE_LOCK:
            if not _VOICE_TEXT:
                _VOICE_TEXT.update(_parse_voice_text(_VOICE_DATA))
    return _VOICE_TEXT


def _parse_voice_text(path: Path) -> dict[str, Mapping[str, Any]]:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, Mapping[str, Any]] = {}
    for section, keys in (("moods", BANDS), ("goals", USER_ACTS)):
        found = raw.get(section) or {}
        missing = [k for k in keys if not isinstance(found.get(k), str)]
        if missing:
            raise ValueError(f"{path}: {section}: missing {missing}")
        out[section] = {k: str(found[k]).strip() for k in keys}
    markers: dict[str, Any] = {}
    for act, where in (raw.get("markers") or {}).items():
        if act not in USER_ACTS or not isinstance(where, Mapping) or len(where) != 1:
            raise ValueError(f"{path}: markers: bad entry {act!r}")
        ((side, words),) = where.items()
        if side not in ("before", "after") or not words:
            raise ValueError(f"{path}: markers.{act}: expected before or after, with a list")
        markers[act] = (side, tuple(str(w) for w in words))
    out["markers"] = markers
    greeting = raw.get("greeting")
    if not isinstance(greeting, str) or not greeting.strip():
        raise ValueError(f"{path}: greeting: expected a non-empty string")
    out["greeting"] = {"text": greeting.strip()}
    return out


def retry_seed(seed: int, attempt: int) -> int:
    """The seed of a line's ``attempt``-th sample (0: the turn's own seed).

    Derived from the turn's seed alone, so a replay resamples exactly as the first run did,
    and spread (SplitMix64) so that it does not land on another turn's seed (the env's turn
    seeds are consecutive integers).

    Example:
        >>> retry_seed(41, 0), retry_seed(41, 1) == retry_seed(41, 1), retry_seed(41, 1) != 42
        (41, True, True)
    """
    if attempt == 0:
        return int(seed)
    return mix_fragments(int(seed) * 0x100 + attempt) % (2**31 - 1)


def _cue_line(turn: UserTurn) -> str:
    """What the user must convey this turn: the need cue, the answer to a fact question."""
    line = f' Make sure you tell them this: "{turn.cue}"' if turn.cue else ""
    if turn.answer:
        line += f' They asked you something you know: answer "{turn.answer}"'
    return line


class LLMUserVoice(LLMVoice):
    """The user's words from an LLM, checked, resampled when wrong, one batched call per round.

    The system message makes the model the persona talking to a supporter: persona, situation,
    the card's facts, the mood of the emotion band, the appraisal's reason, what the next
    message must do (the act), the cue to convey, and two example lines for the act and band
    (the template fragments, picked by the turn's seed); it tells the model never to comfort
    or advise the supporter and that the supporter's messages are never instructions. The
    history follows with the roles seen from the persona's side (the simulated user's past
    lines are the model's own, ``"assistant"``; the agent's are the other party's,
    ``"user"``), and the agent's last words come last, as the other party's message: data.

    The words, the moods, the goals, the act markers and the opening greeting are data:
    ``dialogue_gym/user/data/user_voice.yaml``; the system message is
    ``dialogue_gym/llm/prompts/user_voice.txt``. Sampling (:data:`USER_VOICE_PARAMS`) stops at
    a blank line or another speaker's label and keeps replies short.

    Each reply is cleaned; a reply that fails to convey a revealed cue gets the cue's own
    words appended. Then :func:`~dialogue_gym.user.voices.checks.check_line` reads it (role,
    act, mood). A line that fails only its act gets the act's marker (:meth:`mark`: "Thank
    you." before it, "I'm going to go now." after it) if that makes it pass; the other lines
    that fail are resampled together, each with a seed derived from its turn's seed
    (:func:`retry_seed`), up to ``max_retries`` times, then replaced by the template line for
    the act. :attr:`last_reports` says, per line of the last ``speak``, how many retries it
    took, whether it fell back and whether it was mended (the env copies it to
    ``info["voice_check"]``); :attr:`fallbacks` and :attr:`retries` count them over the
    voice's life.

    Args:
        backend: Backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings (default :data:`USER_VOICE_PARAMS`); seeds are replaced by
            the turns' seeds.
        history_window: See :class:`LLMVoice`.
        max_retries: Resamples of a line that fails its check (0: fall back at once).
        check: With ``False``, only unusable replies (empty, garbage, parroting) are replaced,
            as before the check existed (they are still resampled first).
    """

    flip_roles = True
    template_class = TemplateUserVoice

    def __init__(
        self,
        backend: BackendSpec = "llama_cpp",
        params: GenerationParams | None = None,
        history_window: int | None = None,
        max_retries: int = MAX_RETRIES,
        check: bool = True,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        super().__init__(
            backend, params if params is not None else USER_VOICE_PARAMS, history_window
        )
        self.max_retries = int(max_retries)
        self.check = bool(check)
        self.retries = 0  # resamples over the voice's life
        self.last_reports: list[dict[str, Any]] = []

    def describe(self) -> dict[str, Any]:
        """What produced the words, for ``info``: kind, backend, sampling and the check."""
        return {**super().describe(), "check": self.check, "max_retries": self.max_retries}

    def system_message(self, turn: UserTurn) -> str:
        card = turn.card
        persona = card.persona
        text = _voice_text()
        try:
            mood = text["moods"][turn.band]
            goal = text["goals"][turn.act]
        except KeyError:
            raise ValueError(
                f"unknown band {turn.band!r} or act {turn.act!r}; bands: {BANDS}, acts: {USER_ACTS}"
            ) from None
        topic = second_person(card.topic)
        example_a, example_b = self.examples(turn)
        return load_prompt("user_voice.txt").format(
            name=persona.name,
            age=persona.age,
            gender=persona.gender,
            occupation=persona.occupation,
            traits=join_words(persona.traits),
            speaking_style=persona.speaking_style.rstrip(". "),
            situation=card.situation,
            # The card's facts are what Q&A consistency checks: a voice never told them can
            # only invent answers (SmolLM2 matched 1 in 18 without them).
            facts=" ".join(f"{fact.question} {fact.answer}" for fact in card.facts),
            topic=topic,
            mood=mood,
            reason_line=f" What you think of their last message: {turn.reason}"
            if turn.reason
            else "",
            goal=goal.format(topic=topic),
            cue_line=_cue_line(turn),
            example_a=example_a,
            example_b=example_b,
        )

    def examples(self, turn: UserTurn) -> tuple[str, str]:
        """Two different template lines for the turn's act and band, picked by its seed: the
        few-shot examples of the persona's next line."""
        key = (OPENING if turn.agent_utterance is None else turn.act, turn.band)
        options = load_fragments().user.get(key)
        if not options:
            raise ValueError(
                f"unknown band {turn.band!r} or act {turn.act!r}; bands: {BANDS}, acts: {USER_ACTS}"
            )
        first = mix_fragments(turn.seed) % len(options)
        second = (first + 1 + mix_fragments(turn.seed + 1) % max(len(options) - 1, 1)) % len(
            options
        )
        names = {"name": turn.card.persona.name, "topic": turn.card.topic}
        return options[first].format(**names), options[second].format(**names)

    def heard(self, turn: UserTurn) -> str | None:
        return turn.agent_utterance

    def opening(self) -> str:
        return str(_voice_text()["greeting"]["text"])

    def fallback(self, turn: UserTurn) -> str:
        return self._template.speak([turn])[0]

    def finish(self, turn: UserTurn, text: str) -> str:
        if turn.cue and not conveys(text, turn.cue):
            text = with_cue(text, turn.cue)
        # The hearing user answers a question their facts answer (the Q&A the card promises).
        if turn.answer and not conveys(text, turn.answer):
            text = with_cue(text, turn.answer)
        return text

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        """Say each turn: one batched backend call, then one per round of resamples.

        :attr:`last_reports` then holds one ``{"retries": k, "fallback": bool}`` per turn
        (``"failed"`` adds the checks the last rejected sample failed, when there was one).
        """
        n = len(turns)
        if not n:
            self.last_reports = []
            return []
        texts: list[str | None] = [None] * n
        failed: list[tuple[str, ...]] = [()] * n
        tries = [0] * n
        repaired = [False] * n
        pending = list(range(n))
        chats = [self.build_chat(t) for t in turns]
        for attempt in range(self.max_retries + 1):
            seeds = tuple(retry_seed(turns[i].seed, attempt) for i in pending)
            replies = self.generate(
                [chats[i] for i in pending], dataclasses.replace(self.params, seeds=seeds)
            )
            still = []
            for i, reply in zip(pending, replies, strict=True):
                tries[i] = attempt
                text, problems, repaired[i] = self._read(turns[i], reply)
                if problems:
                    failed[i] = problems
                    still.append(i)
                else:
                    texts[i] = text
            pending = still
            if not pending:
                break
        reports = []
        for i, turn in enumerate(turns):
            fell_back = texts[i] is None
            if fell_back:
                self.fallbacks += 1
                texts[i] = self.fallback(turn)
            self.retries += tries[i]
            report: dict[str, Any] = {
                "retries": tries[i],
                "fallback": fell_back,
                "repaired": repaired[i] and not fell_back,
            }
            if failed[i]:
                report["failed"] = list(failed[i])
            reports.append(report)
        self.last_reports = reports
        return [t for t in texts if t is not None]

    def _read(self, turn: UserTurn, reply: str) -> tuple[str | None, tuple[str, ...], bool]:
        """A reply cleaned and finished, what is wrong with it (empty: it will do), and
        whether the act's marker was added to make it perform the act."""
        text = clean_reply(reply, (turn.card.persona.name,))
        if text is None:
            return None, ("garbage",), False
        if is_parrot(text, self.heard(turn)):
            return None, ("parrot",), False
        if self.check and any(
            is_parrot(text, str(m.get("content", "")))
            for m in turn.history
            if m.get("role") == "user"
        ):
            # The model saying its own last line again (it reads its past lines as examples):
            # a user stuck in a loop, whatever the act.
            return None, ("repeat",), False
        text = self.finish(turn, text)
        if not self.check:
            return text, (), False
        problems = check_line(text, turn)
        if problems == ("act",):
            marked = self.mark(turn, text)
            if marked is not None and not check_line(marked, turn):
                return marked, (), True
        return text, problems, False

    def mark(self, turn: UserTurn, text: str) -> str | None:
        """``text`` with the act's marker (``user_voice.yaml``'s ``markers``, picked by the
        turn's seed) before or after it, or ``None`` for an act without markers.

        A line in role and in mood that only fails to perform its act is mended this way
        rather than resampled: a small model asked to thank, agree or leave often just talks
        on, and "Thank you." before its words is the act.

        Example:
            >>> from dialogue_gym.core.scenario import load_scenarios
            >>> turn = UserTurn(card=load_scenarios("test")[0], act="thank", emotion=80.0,
            ...     band="good", reason="", cue=None, agent_utterance="You did well.",
            ...     history=(), turn=5, seed=2)
            >>> LLMUserVoice(None).mark(turn, "It has been a long month.").endswith("long month.")
            True
        """
        entry = _voice_text()["markers"].get(turn.act)
        if entry is None:
            return None
        side, words = entry
        marker = words[mix_fragments(turn.seed + 7) % len(words)]
        # Room for the marker: the reply shortened by whole sentences (at least one kept).
        sentences = SENTENCE_END_RE.split(text)
        while len(sentences) > 1 and len(" ".join(sentences)) + len(marker) + 1 > MAX_CHARS:
            sentences.pop()
        body = " ".join(sentences)
        return f"{marker} {body}" if side == "before" else f"{body} {marker}"


class LLMAgentRealiser(LLMVoice):
    """The agent's words from an LLM told which strategy to use (PPDPP's realiser).

    The system message names the strategy and its meaning; the user's words arrive as the
    other party's chat messages.

    Args:
        backend: Backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings; seeds are replaced by the turns' seeds.
        history_window: See :class:`LLMVoice`.
    """

    template_class = TemplateAgentRealiser

    def system_message(self, turn: AgentTurn) -> str:
        strategy = check_strategy(turn.strategy)
        card = turn.card
        return load_prompt("agent_realiser.txt").format(
            name=card.persona.name,
            topic=second_person(card.topic),
            strategy=STRATEGIES[strategy],
            strategy_instruction=load_fragments().strategy_lines[strategy],
            cue_line=f' Earlier they told you: "{turn.cue}"' if turn.cue else "",
        )

    def heard(self, turn: AgentTurn) -> str:
        return turn.user_utterance

    def fallback(self, turn: AgentTurn) -> str:
        return self._template.say([turn])[0]

    def say(self, turns: Sequence[AgentTurn]) -> list[str]:
        """Say each turn's strategy, with one batched backend call."""
        return self._words(turns)
