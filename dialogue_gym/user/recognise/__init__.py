"""Act recognition: which of ESConv's eight strategies a free-text agent utterance uses.

``EmpathyDialogueText-v0`` appraises the agent's words through a recogniser. Two kinds share
one batched protocol, ``recognise(texts) -> list[Recognition]``:

- :class:`LexicalRecogniser` (``"lexical"``, the default): weighted cue patterns ("it sounds
  like you feel", "I went through", "you could try", "research shows", interrogative syntax...)
  scored per strategy; microseconds per utterance, deterministic.
- :class:`LLMRecogniser` (``"llm"``): asks a backend to name the strategy, the utterance quoted
  as data between per-call markers; a reply that names no strategy falls back to the lexical
  reading (counted in ``fallbacks``).
- :class:`~dialogue_gym.user.recognise.classifier.ClassifierRecogniser` (``"classifier"``): a
  second reader, built independently of the lexical cues — a softmax regression over word and
  character n-grams fitted on the labelled set at first use (numpy only, deterministic); the
  reward-hacking audit (``dialogue_gym.evaluation.audit``) compares it with the lexical reading.

Multi-label: a :class:`Recognition` carries every strategy whose cues are strong enough
(``labels``), primary first; the affective core is appraised on the **primary** act only, the
other labels are reported (``info["acts"]``) for metrics such as the grounding-act rate.

Two readings come before any cue: silence (empty or whitespace-only text) is *Others*
("the agent said nothing"), and text that addresses the simulator rather than the user
(:func:`dialogue_gym.user.injection.screen`) is *Others* whatever else it says. Random characters
(text mostly not made of word-like tokens) are *Others* too ("not recognisable as language").

Modules: :mod:`~dialogue_gym.user.recognise.base` (:class:`Recognition`, the readings before any
cue), :mod:`~dialogue_gym.user.recognise.lexical`, :mod:`~dialogue_gym.user.recognise.llm`, and
:mod:`~dialogue_gym.user.recognise.labelled` (the labelled set
``dialogue_gym/user/data/labelled_utterances.yaml`` and the accuracy figures, printed by
``python -m dialogue_gym.user.recognise`` and recorded in ``docs/text.md``).

Example:
    >>> rec = LexicalRecogniser()
    >>> [r.strategy for r in rec.recognise(["It sounds like you feel really alone.",
    ...                                      "You could try writing it down tonight."])]
    ['Reflection of feelings', 'Providing Suggestions']
    >>> rec.recognise(["   "])[0].reason
    'the agent said nothing'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dialogue_gym.llm.backends import BackendSpec
from dialogue_gym.registry import Registry
from dialogue_gym.user.recognise.base import Recognition
from dialogue_gym.user.recognise.classifier import ClassifierRecogniser
from dialogue_gym.user.recognise.labelled import (
    LABELLED_FILE,
    LabelledUtterance,
    confusion_matrix,
    evaluate,
    format_report,
    load_labelled,
    read_all,
    summarise,
)
from dialogue_gym.user.recognise.lexical import LexicalRecogniser
from dialogue_gym.user.recognise.llm import LLMRecogniser, parse_label

__all__ = [
    "LABELLED_FILE",
    "RECOGNISERS",
    "RECOGNISER_KINDS",
    "ClassifierRecogniser",
    "LLMRecogniser",
    "LabelledUtterance",
    "LexicalRecogniser",
    "Recognition",
    "Recogniser",
    "confusion_matrix",
    "evaluate",
    "format_report",
    "load_labelled",
    "make_recogniser",
    "parse_label",
    "read_all",
    "register_recogniser",
    "summarise",
]

Recogniser = LexicalRecogniser | LLMRecogniser | ClassifierRecogniser

#: Recognisers by name: ``gym.make("EmpathyDialogueText-v0", recogniser=name)``. A factory is
#: called as ``factory(backend=..., **kwargs)`` when it takes ``backend`` (or ``**kwargs``).
RECOGNISERS: Registry[Any] = Registry("recogniser")


def register_recogniser(
    name: str, factory: Callable[..., Any] | None = None, **options: Any
) -> Any:
    """Register a recogniser (an object with ``kind``, ``recognise(texts, seeds=None)`` and
    ``describe()``): ``gym.make("EmpathyDialogueText-v0", recogniser=name)`` then builds it."""
    return RECOGNISERS.register(name, factory, **options)


def make_recogniser(
    kind: str | Mapping[str, Any], backend: BackendSpec = "llama_cpp", **kwargs: Any
) -> Recogniser:
    """Build a recogniser by name (or from a spec ``{"name": ..., **kwargs}``).

    Args:
        kind: A name in :data:`RECOGNISERS`: ``"lexical"``, ``"llm"``, ``"classifier"`` or a
            registered one.
        backend: Backend spec, for recognisers that take one (``"lexical"`` ignores it).
        **kwargs: Passed to the factory (:class:`LLMRecogniser`'s ``params``...).

    Raises:
        ValueError: Unknown name (the message names the valid ones).

    Example:
        >>> make_recogniser("lexical").kind
        'lexical'
        >>> make_recogniser("vibes")
        Traceback (most recent call last):
        ...
        ValueError: unknown recogniser 'vibes'; valid: 'lexical', 'llm', 'classifier', 'embedding'
    """
    return RECOGNISERS.build(kind, offered={"backend": backend}, **kwargs)


def _embedding(**kwargs: Any) -> Any:
    # Imported when built: the model loads only for envs that read with it.
    from dialogue_gym.user.recognise.embedding import EmbeddingRecogniser

    kwargs.pop("backend", None)
    return EmbeddingRecogniser(**kwargs)


def _lexical(backend: BackendSpec = None, **_: Any) -> LexicalRecogniser:
    """Weighted cue patterns per strategy: microseconds an utterance, deterministic."""
    return LexicalRecogniser()


RECOGNISERS.register("lexical", _lexical)
RECOGNISERS.register("llm", LLMRecogniser, doc="a backend names the strategy (lexical fallback)")
RECOGNISERS.register(
    "classifier", ClassifierRecogniser, doc="n-gram classifier fitted on the labelled set"
)


RECOGNISERS.register(
    "embedding",
    _embedding,
    doc="sentence embeddings and cue scores (the default reader of EmpathyDialogueText-v1)",
)


def __getattr__(name: str) -> Any:
    if name == "RECOGNISER_KINDS":  # read when asked: a recogniser registered later is listed
        return RECOGNISERS.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
