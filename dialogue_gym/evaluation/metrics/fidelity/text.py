"""How the fidelity readers cut a line: normalised text, words, sentences, content words.

Example:
    >>> norm("I\u2019m  FINE\u2026")
    "i'm fine..."
    >>> sorted(content_words("My dad hasn't spoken to me since Christmas."))
    ['christma', 'dad', 'hasn', 'spoken']
"""

from __future__ import annotations

import re

from dialogue_gym.evaluation.metrics.fidelity.lexicon import FUNCTION_WORDS

__all__ = ["SENTENCE_RE", "WORD_RE", "content_words", "norm", "stem"]

#: A word of normalised text, with one inner apostrophe ("don't", "i'm").
WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
#: Where a sentence ends: after ``.``, ``!`` or ``?`` and white space, or at a line break.
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTENT_RE = re.compile(r"[a-z]+")


def norm(text: str) -> str:
    """Lower case, straight apostrophes, single spaces."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2026", "...")
    return " ".join(text.lower().split())


def stem(word: str) -> str:
    """``word`` without one of the endings ``ing``, ``ed``, ``es``, ``s`` (a crude stem).

    Example:
        >>> stem("worries"), stem("talking"), stem("was")
        ('worri', 'talk', 'was')
    """
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> set[str]:
    """The stems of ``text``'s content words: no function word, three letters or more."""
    return {
        stem(w) for w in _CONTENT_RE.findall(norm(text)) if w not in FUNCTION_WORDS and len(w) > 2
    }
