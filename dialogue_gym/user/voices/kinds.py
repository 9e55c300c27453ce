"""The voice registries: ``gym.make(..., voice=name, agent_voice=name)`` builds from these.

:data:`USER_VOICES` and :data:`AGENT_REALISERS` are :class:`~dialogue_gym.registry.Registry`
objects. A factory is called as ``factory(backend=..., **kwargs)`` when it takes a ``backend``
argument (or ``**kwargs``), else as ``factory(**kwargs)``; so a plain class with no arguments
registers as is. One line adds a voice the env accepts::

    register_user_voice("calm", CalmVoice)
    env = gym.make("EmpathyDialogue-v0", voice="calm")

Example:
    >>> USER_VOICES.names(), AGENT_REALISERS.names()
    (('llm', 'template'), ('llm', 'template'))
    >>> make_user_voice("template").kind
    'template'
    >>> make_user_voice({"name": "llm", "history_window": 2}, backend="llama_cpp").history_window
    2
    >>> make_user_voice("shout")
    Traceback (most recent call last):
    ...
    ValueError: unknown user voice 'shout'; valid: 'llm', 'template'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dialogue_gym.llm.backends import BackendSpec
from dialogue_gym.registry import Registry
from dialogue_gym.user.voices.llm import LLMAgentRealiser, LLMUserVoice
from dialogue_gym.user.voices.template import TemplateAgentRealiser, TemplateUserVoice
from dialogue_gym.user.voices.turns import AgentRealiser, AgentTurn, UserTurn, UserVoice

__all__ = [
    "AGENT_REALISERS",
    "SILENT_AGENT",
    "SILENT_USER",
    "USER_VOICES",
    "SilentVoice",
    "make_agent_realiser",
    "make_user_voice",
    "register_agent_realiser",
    "register_user_voice",
]

#: User voices by name: ``gym.make(..., voice=name)``.
USER_VOICES: Registry[UserVoice] = Registry("user voice")
#: Agent realisers by name: ``gym.make(..., agent_voice=name)``.
AGENT_REALISERS: Registry[AgentRealiser] = Registry("agent realiser")


def register_user_voice(
    name: str, factory: Callable[..., UserVoice] | None = None, **options: Any
) -> Any:
    """Register a user voice: ``gym.make(..., voice=name)`` then builds it.

    Args:
        name: The voice's name.
        factory: Builds the voice (a class, usually); without it, a decorator.
        **options: :meth:`~dialogue_gym.registry.Registry.register`'s ``doc``, ``replace``
            and metadata.
    """
    return USER_VOICES.register(name, factory, **options)


def register_agent_realiser(
    name: str, factory: Callable[..., AgentRealiser] | None = None, **options: Any
) -> Any:
    """Register an agent realiser: ``gym.make(..., agent_voice=name)`` then builds it."""
    return AGENT_REALISERS.register(name, factory, **options)


def make_user_voice(
    kind: str | Mapping[str, Any], backend: BackendSpec = "llama_cpp", **kwargs: Any
) -> UserVoice:
    """Build a user voice by name (or from a spec ``{"name": ..., **kwargs}``).

    Args:
        kind: A name in :data:`USER_VOICES` (``"llm"``, ``"template"``, or a registered one).
        backend: Backend spec, for voices that take one (the template voice ignores it).
        **kwargs: Passed to the voice's factory (``params``, ``history_window`` for ``"llm"``).

    Raises:
        ValueError: Unknown name (the message names the valid ones).
    """
    return USER_VOICES.build(kind, offered={"backend": backend}, **kwargs)


def make_agent_realiser(
    kind: str | Mapping[str, Any], backend: BackendSpec = "llama_cpp", **kwargs: Any
) -> AgentRealiser:
    """Build an agent realiser by name (or from a spec ``{"name": ..., **kwargs}``).

    Args:
        kind: A name in :data:`AGENT_REALISERS` (``"llm"``, ``"template"``, or a registered one).
        backend: Backend spec, for realisers that take one (the template one ignores it).
        **kwargs: Passed to the realiser's factory (``params``, ``history_window`` for ``"llm"``).

    Raises:
        ValueError: Unknown name (the message names the valid ones).
    """
    return AGENT_REALISERS.build(kind, offered={"backend": backend}, **kwargs)


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


def _template_user(backend: BackendSpec = None, **_: Any) -> TemplateUserVoice:
    """Authored fragments by act and emotion band: deterministic, microseconds a turn."""
    return TemplateUserVoice()


def _template_agent(backend: BackendSpec = None, **_: Any) -> TemplateAgentRealiser:
    """Authored fragments by strategy, echoing the user's cue: deterministic, fast."""
    return TemplateAgentRealiser()


# "llm" first: the order the kinds have always been listed in.
register_user_voice("llm", LLMUserVoice, doc="an LLM plays the persona (one batched call a step)")
register_user_voice("template", _template_user)
register_agent_realiser("llm", LLMAgentRealiser, doc="an LLM says the strategy (PPDPP)")
register_agent_realiser("template", _template_agent)
