"""The role reader: is a line the help-seeker's?

A violation consoles the other party ("I'm so sorry to hear that"), gives them advice ("You
should try..."), speaks as the listener ("How can I support you today?", "I'm listening"),
speaks of the persona in the third person ("Maya feels...") or steps out of the fiction ("As an
AI..."). The phrases are data (:mod:`~dialogue_gym.evaluation.metrics.fidelity.lexicon`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from dialogue_gym.evaluation.metrics.fidelity.lexicon import (
    ADVISES,
    CONSOLES,
    META,
    OKAY_TO_FEEL,
    SAYS,
    SUPPORTER,
    THIRD_PERSON_VERBS,
)
from dialogue_gym.evaluation.metrics.fidelity.text import SENTENCE_RE, norm

__all__ = ["ROLE_VIOLATIONS", "RoleReading", "read_role"]

#: The kinds of role violation :func:`read_role` names.
ROLE_VIOLATIONS: tuple[str, ...] = ("consoles", "advises", "supporter", "third_person", "meta")


@dataclass(frozen=True)
class RoleReading:
    """Whether a line is the help-seeker's, and if not, which kinds of violation it shows.

    Attributes:
        ok: No violation found.
        why: The kinds found, in :data:`ROLE_VIOLATIONS` order.
    """

    ok: bool
    why: tuple[str, ...] = ()


@lru_cache(maxsize=256)
def _name_patterns(name: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    first = re.escape(norm(name.split()[0])) if name.strip() else "\x00"
    verbs = "|".join(THIRD_PERSON_VERBS)
    third = re.compile(rf"\b{first}(?:'s\b| (?:{verbs})\b)")
    # "I'm Maya", "my name is Maya", "this is Maya": the speaker naming themselves is fine.
    claimed = re.compile(rf"\b(?:i'm|i am|name is|name's|call me|this is|it's|it is) {first}\b")
    # "..., Frank." / "Frank, ...": the persona addressed by its own name (the speaker has
    # taken the other role); "As Frank, I...": the fiction announced.
    vocative = re.compile(rf"(?:, {first}[.!?]?$|^{first}, |\bas {first}\b)")
    return third, claimed, vocative


def read_role(line: str, name: str | None = None) -> RoleReading:
    """Read whether ``line`` is said by the help-seeker (the simulated user).

    Args:
        line: The user's line.
        name: The persona's name (its first word is used): "Maya feels..." in Maya's own line
            is third-person self-reference; without it that check is skipped.

    Returns:
        A :class:`RoleReading`: ``ok`` and the kinds of violation found.

    Example:
        >>> read_role("You should try talking to someone you trust.").why
        ('advises',)
        >>> read_role("Maya has been so tired since the layoff.", "Maya").why
        ('third_person',)
        >>> read_role("My sister says it's normal to feel this way.").ok
        True
    """
    text = norm(line)
    found: set[str] = set()
    for sentence in SENTENCE_RE.split(text):
        if not sentence:
            continue
        # Reported speech ("my sister says it's normal to feel this way") is the user's own.
        for pattern in (CONSOLES, OKAY_TO_FEEL):
            match = pattern.search(sentence)
            if match and not SAYS.search(sentence[: match.start()]):
                found.add("consoles")
        found.update(
            kind
            for kind, pattern in (("advises", ADVISES), ("supporter", SUPPORTER), ("meta", META))
            if pattern.search(sentence)
        )
        if name:
            third, claimed, vocative = _name_patterns(name)
            if vocative.search(sentence):
                found.add("supporter" if not sentence.startswith("as ") else "meta")
            elif third.search(sentence) and not claimed.search(sentence):
                found.add("third_person")
    why = tuple(kind for kind in ROLE_VIOLATIONS if kind in found)
    return RoleReading(ok=not why, why=why)
