"""The LLM recogniser: a backend names the strategy; the lexical reading backs it up.

Example:
    >>> parse_label("I'd say: Reflection of feelings."), parse_label("no idea")
    (2, None)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    INFORMATION,
    OTHERS,
    QUESTION,
    REFLECTION,
    RESTATEMENT,
    SELF_DISCLOSURE,
    STRATEGIES,
    SUGGESTION,
)
from dialogue_gym.llm.backends import BackendSpec, GenerationParams
from dialogue_gym.llm.client import BackendClient, load_prompt, spec_label
from dialogue_gym.user.injection import quote_as_data
from dialogue_gym.user.recognise.base import Recognition, pre_read
from dialogue_gym.user.recognise.lexical import LexicalRecogniser, normalise

__all__ = ["DEFAULT_RECOGNISER_PARAMS", "LLMRecogniser", "parse_label"]

#: What the model may answer, lower-case, longest first: alias -> strategy index.
_ALIASES: tuple[tuple[str, int], ...] = tuple(
    sorted(
        {
            **{name.lower(): i for i, name in enumerate(STRATEGIES)},
            "restatement": RESTATEMENT,
            "paraphrasing": RESTATEMENT,
            "paraphrase": RESTATEMENT,
            "reflection": REFLECTION,
            "self disclosure": SELF_DISCLOSURE,
            "disclosure": SELF_DISCLOSURE,
            "affirmation": AFFIRMATION,
            "reassurance": AFFIRMATION,
            "suggestion": SUGGESTION,
            "suggestions": SUGGESTION,
            "providing suggestion": SUGGESTION,
            "info": INFORMATION,
            "other": OTHERS,
            "questions": QUESTION,
        }.items(),
        key=lambda kv: -len(kv[0]),
    )
)
_ALIAS_RE = re.compile(r"\b(" + "|".join(re.escape(a) for a, _ in _ALIASES) + r")\b")
_ALIAS_INDEX = dict(_ALIASES)
_NUMBER_RE = re.compile(r"^\s*\(?([1-8])\s*[).:\-]?(?:\s|$)")


def parse_label(reply: str) -> int | None:
    """The strategy a model's reply names, or ``None`` when it names none.

    Accepts a strategy name or a common short form ("reflection", "suggestion") anywhere in
    the reply (the earliest wins), or a leading number 1–8 in ``STRATEGIES`` order.

    Example:
        >>> parse_label("Strategy: Reflection of feelings."), parse_label("6) ..."), parse_label("uh")
        (2, 5, None)
    """
    if not isinstance(reply, str):
        return None
    text = normalise(reply).replace("-", " ").replace("_", " ")
    match = _ALIAS_RE.search(text)
    if match:
        return _ALIAS_INDEX[match.group(1)]
    number = _NUMBER_RE.match(text)
    return int(number.group(1)) - 1 if number else None


#: Greedy and short: the label is a few tokens.
DEFAULT_RECOGNISER_PARAMS = GenerationParams(max_tokens=12, temperature=0.0, top_p=1.0)


class LLMRecogniser:
    """Read the primary act with a backend; the lexical reading backs it up.

    Silence and screened text are read without a call. Otherwise one batched call asks the
    model to name the strategy (prompts ``recognise_system.txt`` and ``recognise_user.txt``;
    the utterance quoted as data between per-call markers, which it cannot close). A reply
    that names no strategy is replaced by the lexical reading (``source="llm-fallback"``,
    counted in ``fallbacks``). The lexical reading's other labels are kept as secondary labels.

    Args:
        backend: A backend spec (see :mod:`dialogue_gym.llm.backends`); resolved lazily.
        params: Sampling settings (default greedy, 12 tokens).
        max_quoted_chars: The longest utterance the prompt quotes (longer ones are cut).

    Attributes:
        calls: Utterances sent to the model.
        fallbacks: Replies that named no strategy.
    """

    kind = "llm"

    def __init__(
        self,
        backend: BackendSpec = "llama_cpp",
        params: GenerationParams | None = None,
        max_quoted_chars: int = 1000,
    ) -> None:
        self.client = BackendClient(backend)
        self.params = params if params is not None else DEFAULT_RECOGNISER_PARAMS
        self.max_quoted_chars = int(max_quoted_chars)
        self.lexical = LexicalRecogniser()
        self.calls = 0
        self.fallbacks = 0

    def describe(self) -> dict[str, Any]:
        """What reads the acts, for ``info``."""
        return {
            "recogniser": self.kind,
            "backend": spec_label(self.client.spec),
            "temperature": self.params.temperature,
        }

    def build_chat(self, text: str, nonce: str) -> list[dict[str, str]]:
        """The prompt for one utterance, as chat messages."""
        quoted = quote_as_data(text[: self.max_quoted_chars], nonce)
        return [
            {"role": "system", "content": load_prompt("recognise_system.txt")},
            {"role": "user", "content": load_prompt("recognise_user.txt").format(message=quoted)},
        ]

    def recognise(
        self, texts: Sequence[str], seeds: Sequence[int] | None = None
    ) -> list[Recognition]:
        """Recognise a batch of utterances with at most one backend call.

        Args:
            texts: The utterances.
            seeds: One seed per utterance (sampling seeds and quote markers); defaults to
                the utterances' positions.
        """
        seeds = list(seeds) if seeds is not None else list(range(len(texts)))
        if len(seeds) != len(texts):
            raise ValueError(f"got {len(seeds)} seeds for {len(texts)} texts")
        out: list[Recognition | None] = [pre_read(t) for t in texts]
        todo = [i for i, r in enumerate(out) if r is None]
        if todo:
            chats = [self.build_chat(texts[i], _nonce(seeds[i])) for i in todo]
            params = dataclasses.replace(self.params, seeds=tuple(int(seeds[i]) for i in todo))
            replies = self.client.generate(chats, params)
            self.calls += len(todo)
            for i, reply in zip(todo, replies, strict=True):
                out[i] = self._combine(parse_label(reply), self.lexical._read_cues(texts[i]))
        return [r for r in out if r is not None]

    def read(self, text: str) -> Recognition:
        """Recognise one utterance."""
        return self.recognise([text])[0]

    def _combine(self, label: int | None, lexical: Recognition) -> Recognition:
        if label is None:
            self.fallbacks += 1
            return dataclasses.replace(
                lexical, source="llm-fallback", reason=f"model named no strategy; {lexical.reason}"
            )
        others = tuple(s for s in lexical.labels if s != label and s != OTHERS)
        return Recognition(label, (label, *others), "named by the model", "llm")


def _nonce(seed: int) -> str:
    """An 8-hex-digit marker name from a seed (SplitMix64-style mixing)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return f"{(z ^ (z >> 31)) & 0xFFFFFFFF:08x}"
