"""The words of both sides: the simulated user's voice and the agent's realiser.

The dynamics never depend on the voice. The affective core decides what happens (the user's
act, emotion, reason, revealed need cue; the agent's strategy); a voice only turns those
decisions into text:

- a *user voice* says a :class:`UserTurn` (``speak``);
- an *agent realiser* says a strategy as a :class:`AgentTurn` (``say``), PPDPP-style.

Each comes in two kinds:

- ``"template"``: authored fragments from ``dialogue_gym/user/data/fragments.yaml``, picked by
  the turn's seed; deterministic and a few microseconds a turn, for RL at scale and tests;
- ``"llm"``: a bounded prompt (persona, situation, emotion band, reason, cue, the recent
  messages, as many as the env's ``history_window``) from ``dialogue_gym/llm/prompts/``,
  sent to a backend in one batched call; seeded per turn. Agent text is data: it reaches the
  user model only as the other party's chat messages, never inside the system instructions.
  The user voice checks each line (:mod:`~dialogue_gym.user.voices.checks`: in role, the
  act performed, the mood not contradicted), resamples a failing one with seeds derived from
  the turn's, and falls back to the template line after ``max_retries``.

Both kinds take batches (lists of turns) and return one string per turn. More kinds plug in
by name: ``register_user_voice(name, factory)`` (or ``register_agent_realiser``) and
``gym.make(..., voice=name)`` speaks with it.

Modules: :mod:`~dialogue_gym.user.voices.turns` (the turn records and the voice protocols),
:mod:`~dialogue_gym.user.voices.fragments` (the authored text),
:mod:`~dialogue_gym.user.voices.cleaning` (second person, cleaning LLM replies),
:mod:`~dialogue_gym.user.voices.checks` (the LLM user voice's own check of a line),
:mod:`~dialogue_gym.user.voices.template`, :mod:`~dialogue_gym.user.voices.llm`, and
:mod:`~dialogue_gym.user.voices.kinds` (the registries and the factories).

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

from typing import Any

from dialogue_gym.user.voices.checks import CHECKS, check_line
from dialogue_gym.user.voices.cleaning import MAX_CHARS, MAX_SENTENCES, clean_reply, second_person
from dialogue_gym.user.voices.fragments import BANDS, Fragments, load_fragments
from dialogue_gym.user.voices.kinds import (
    AGENT_REALISERS,
    SILENT_AGENT,
    SILENT_USER,
    USER_VOICES,
    SilentVoice,
    make_agent_realiser,
    make_user_voice,
    register_agent_realiser,
    register_user_voice,
)
from dialogue_gym.user.voices.llm import (
    DEFAULT_LLM_PARAMS,
    MAX_QUOTED_CHARS,
    MAX_RETRIES,
    USER_VOICE_PARAMS,
    LLMAgentRealiser,
    LLMUserVoice,
    LLMVoice,
    retry_seed,
)
from dialogue_gym.user.voices.template import TemplateAgentRealiser, TemplateUserVoice
from dialogue_gym.user.voices.turns import AgentRealiser, AgentTurn, UserTurn, UserVoice

__all__ = [
    "AGENT_REALISERS",
    "AGENT_REALISER_KINDS",
    "BANDS",
    "CHECKS",
    "DEFAULT_LLM_PARAMS",
    "MAX_CHARS",
    "MAX_QUOTED_CHARS",
    "MAX_RETRIES",
    "MAX_SENTENCES",
    "USER_VOICES",
    "USER_VOICE_PARAMS",
    "USER_VOICE_KINDS",
    "AgentRealiser",
    "AgentTurn",
    "Fragments",
    "LLMAgentRealiser",
    "LLMUserVoice",
    "LLMVoice",
    "SILENT_AGENT",
    "SILENT_USER",
    "SilentVoice",
    "TemplateAgentRealiser",
    "TemplateUserVoice",
    "UserTurn",
    "UserVoice",
    "check_line",
    "clean_reply",
    "load_fragments",
    "make_agent_realiser",
    "make_user_voice",
    "register_agent_realiser",
    "register_user_voice",
    "retry_seed",
    "second_person",
]


def __getattr__(name: str) -> Any:
    # The kinds are read from the registries when asked for, so a voice registered later
    # is listed too.
    if name == "USER_VOICE_KINDS":
        return USER_VOICES.names()
    if name == "AGENT_REALISER_KINDS":
        return AGENT_REALISERS.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
