"""The LLM voices: a bounded prompt per turn, one batched backend call per batch of turns.

Both sides share :class:`LLMVoice`: the prompt is a system message (from
``dialogue_gym/llm/prompts/``) followed by the recent history and the other party's last
words; the reply is cleaned (:func:`~dialogue_gym.user.voices.cleaning.clean_reply`), and an
empty or garbage reply, or one that parrots the other party, falls back to the template line
(counted in ``fallbacks``). Text from the other side is data: it reaches the model only as the
other party's chat messages, never inside the system instructions.

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
    >>> len(voice.build_chat(turn)) - 1, len(LLMUserVoice(Echo(), history_window=2).build_chat(turn)) - 1
    (8, 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from dialogue_gym.core.vocabulary import STRATEGIES, USER_ACTS
from dialogue_gym.llm.backends import BackendSpec, GenerationParams
from dialogue_gym.llm.client import BackendClient, load_prompt, spec_label
from dialogue_gym.user.voices.cleaning import (
    _conveys,
    _join_words,
    _parrots,
    _with_cue,
    clean_reply,
    second_person,
)
from dialogue_gym.user.voices.fragments import BANDS, load_fragments
from dialogue_gym.user.voices.template import TemplateAgentRealiser, TemplateUserVoice
from dialogue_gym.user.voices.turns import AgentTurn, UserTurn, _check_strategy

__all__ = [
    "DEFAULT_LLM_PARAMS",
    "MAX_QUOTED_CHARS",
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
            if text is None or _parrots(text, self.heard(t)):
                self.fallbacks += 1
                text = self.fallback(t)
            else:
                text = self.finish(t, text)
            out.append(text)
        return out


class LLMUserVoice(LLMVoice):
    """The user's words from an LLM, one batched backend call per ``speak``.

    The system message makes the model the persona talking to a supporter (persona,
    situation, the card's facts, emotion band, the appraisal's reason, the act to perform,
    the cue to convey); the history follows with the roles seen from the persona's side: the
    simulated user's past lines are the model's own (``"assistant"``) and the agent's are the
    other party's (``"user"``). A reply that fails to convey a revealed cue gets the cue's own
    words appended.

    Args:
        backend: Backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings; seeds are replaced by the turns' seeds.
        history_window: See :class:`LLMVoice`.
    """

    flip_roles = True
    template_class = TemplateUserVoice

    def system_message(self, turn: UserTurn) -> str:
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
        return load_prompt("user_voice.txt").format(
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

    def heard(self, turn: UserTurn) -> str | None:
        return turn.agent_utterance

    def opening(self) -> str:
        return load_fragments().greeting

    def fallback(self, turn: UserTurn) -> str:
        return self._template.speak([turn])[0]

    def finish(self, turn: UserTurn, text: str) -> str:
        if turn.cue and not _conveys(text, turn.cue):
            return _with_cue(text, turn.cue)
        return text

    def speak(self, turns: Sequence[UserTurn]) -> list[str]:
        """Say each turn, with one batched backend call."""
        return self._words(turns)


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
        strategy = _check_strategy(turn.strategy)
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
