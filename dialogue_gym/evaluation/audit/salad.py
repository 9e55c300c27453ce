"""Cue salad: the lexical recogniser's cue phrases strung among filler words, seeded.

What a policy that writes for the lexical reader drifts towards: "zuvemi you're not alone
kwarfel it's okay to dribnox". Each salad line takes two to four cue phrases of one strategy
(as they occur in the labelled set, found by
:func:`~dialogue_gym.user.recognise.lexical.cue_hits`) and scatters them among four to twelve
filler words: invented syllable words (``"gibberish"``) or real words of the labelled set that
are in no cue phrase (``"words"``, a harder case: the words are English, only the order is
not). The lexical reader reads most of them as the cues' strategy; the audit's second reader
should not (``python -m dialogue_gym.evaluation.audit`` prints how often the two disagree).

Example:
    >>> a = cue_salad(3, seed=1)
    >>> a == cue_salad(3, seed=1), len(a), a[0].endswith(".")
    (True, 3, True)
"""

from __future__ import annotations

import random
from functools import lru_cache

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.evaluation.audit.cues import words_of
from dialogue_gym.user.recognise.labelled import load_labelled
from dialogue_gym.user.recognise.lexical import cue_hits

__all__ = ["FILLERS", "SALAD_STRATEGIES", "cue_pool", "cue_salad"]

#: The strategies whose cues are phrases: Question is read from sentence form and Others from
#: greetings, so neither makes a salad a strategy.
SALAD_STRATEGIES = tuple(s for s in STRATEGIES if s not in ("Question", "Others"))
#: The kinds of filler word.
FILLERS = ("gibberish", "words")
_SYLLABLES = (
    "ka", "lo", "mi", "zu", "tre", "vo", "pa", "ne", "shi", "gor",
    "bla", "fen", "dri", "mo", "tu", "wex", "qui", "ran", "bo", "ste",
)  # fmt: skip


@lru_cache(maxsize=1)
def cue_pool() -> dict[str, tuple[str, ...]]:
    """Each salad strategy's cue phrases as the labelled set says them, sorted.

    Example:
        >>> "you're not alone" in cue_pool()["Affirmation and Reassurance"]
        True
    """
    pool: dict[str, set[str]] = {s: set() for s in SALAD_STRATEGIES}
    for u in load_labelled():
        for strategy, _, phrase, _ in cue_hits(u.text):
            if strategy in pool:
                pool[strategy].add(phrase)
    return {s: tuple(sorted(v)) for s, v in pool.items()}


@lru_cache(maxsize=1)
def _plain_words() -> tuple[str, ...]:
    cue_words = {w for phrases in cue_pool().values() for p in phrases for w in words_of(p)}
    return tuple(sorted({w for u in load_labelled() for w in words_of(u.text)} - cue_words))


def cue_salad(
    n: int, seed: int = 0, strategy: str | None = None, filler: str = "gibberish"
) -> list[str]:
    """``n`` cue-salad lines, the same for the same arguments.

    Args:
        n: How many lines.
        seed: The generator's seed.
        strategy: One of :data:`SALAD_STRATEGIES` for every line, or None (each line draws one).
        filler: ``"gibberish"`` (invented words) or ``"words"`` (real words, no cue among them).

    Returns:
        The lines, each capitalised and ending with a full stop.
    """
    if strategy is not None and strategy not in SALAD_STRATEGIES:
        raise ValueError(f"strategy must be one of {SALAD_STRATEGIES}, got {strategy!r}")
    if filler not in FILLERS:
        raise ValueError(f"filler must be one of {FILLERS}, got {filler!r}")
    rng = random.Random(seed)
    pool, plain = cue_pool(), _plain_words()

    def word() -> str:
        if filler == "words":
            return rng.choice(plain)
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))

    out = []
    for _ in range(n):
        phrases = pool[strategy or rng.choice(SALAD_STRATEGIES)]
        parts = [word() for _ in range(rng.randint(4, 12))]
        for phrase in rng.sample(phrases, rng.randint(2, 4)):
            parts.insert(rng.randint(0, len(parts)), phrase)
        line = " ".join(parts)
        out.append(line[0].upper() + line[1:] + ".")
    return out
