"""The words of an utterance, and the places where it says one of the lexical recogniser's cues.

Example:
    >>> words_of("It\u2019s OK, I\u2019m here.")
    ["it's", 'ok', "i'm", 'here']
"""

from __future__ import annotations

import re
import unicodedata

from dialogue_gym.user.recognise.lexical import cue_hits, normalise

__all__ = ["WORD_RE", "cue_phrases", "words_of"]

#: A word: letters and digits, with inner apostrophes ("it's", "don't").
WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def words_of(text: str) -> list[str]:
    """The words of ``text``: NFKC-normalised, case-folded, curly apostrophes straightened."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    return WORD_RE.findall(text)


def cue_phrases(text: str) -> list[str]:
    """The lexical recogniser's cue phrases in ``text``, overlapping matches merged into one.

    Two cues that match the same words ("sounds like" is a cue of two strategies; "you feel
    alone" and "alone") count as one phrase: what is counted is the places where the text
    says a cue, not the patterns that fire.

    Example:
        >>> cue_phrases("It sounds like you feel alone. You could try a walk.")
        ['sounds like', 'you feel alone', 'you could']
    """
    spans: list[list[int]] = []
    for _, _, phrase, start in sorted(cue_hits(text), key=lambda h: h[3]):
        end = start + len(phrase)
        if spans and start < spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], end)
        else:
            spans.append([start, end])
    norm = normalise(text)
    return [norm[a:b] for a, b in spans]
