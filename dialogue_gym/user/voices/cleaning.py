"""Text handling shared by the voices: echoing the user in the second person, and cleaning
what a small LLM writes (role labels, stage directions, parroting, over-long replies).

Example:
    >>> second_person("I lost my job")
    'you lost your job'
    >>> clean_reply("Maya: (sighs) I feel lost.", ("Maya",))
    'I feel lost.'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["MAX_CHARS", "MAX_SENTENCES", "clean_reply", "second_person"]

#: Bounds on an LLM reply after post-processing.
MAX_SENTENCES = 3
MAX_CHARS = 300

_FIRST_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "i'm": "you're",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "am": "are",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
}
_WORD_RE = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?")
_I_WAS_RE = re.compile(r"\bI was\b")
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
# Words that may lose their capital when a cue is quoted mid-sentence.
_STARTER_WORDS = (
    "you your yours yourself you're you've you'd you'll it it's the that this there they "
    "what when all everything nothing nobody no just maybe sometimes honestly really even "
    "and but so if because part a an most every some people everyone being not to how why "
    "deep lately now still"
)
_COMMON_STARTERS = frozenset(_STARTER_WORDS.split())


@lru_cache(maxsize=4096)
def second_person(text: str) -> str:
    """Turn a first-person phrase into the second person, for the agent to echo it.

    Approximate (a word map, cached per string): ``I``/``me`` -> ``you``, ``my`` -> ``your``,
    ``I'm`` -> ``you're``, ``I was`` -> ``you were``...

    Example:
        >>> second_person("I keep thinking my boss was right about me")
        'you keep thinking your boss was right about you'
    """
    text = _I_WAS_RE.sub("you were", text)

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        low = word.lower().replace("\u2019", "'")
        if low not in _FIRST_PERSON or (low == "us" and word == "US"):
            return word
        return _FIRST_PERSON[low]

    return _WORD_RE.sub(swap, text)


_SECOND_PERSON_RE = re.compile(r"\byou(?:r|rs|rself|'re|'ve|'d|'ll)?\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def echo_back(cue: str) -> str | None:
    """A cue as the agent quotes it mid-sentence: first sentence, second person, no final stop.

    ``None`` when the cue cannot be echoed as a statement: a question ("Did I do the right
    thing?") or a line that already addresses the listener ("What would you do?").
    """
    first = SENTENCE_END_RE.split(cue.strip(), maxsplit=1)[0].strip()
    if not first or first.endswith("?") or _SECOND_PERSON_RE.search(first):
        return None
    echoed = second_person(first.rstrip(" .!;:,"))
    head = echoed.split(" ", 1)[0].lower().rstrip(",")
    if head in _COMMON_STARTERS:
        echoed = echoed[:1].lower() + echoed[1:]
    return echoed


def join_words(words: Sequence[str]) -> str:
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


_ROLE_WORDS = (
    "assistant",
    "user",
    "supporter",
    "listener",
    "agent",
    "therapist",
    "counsel+or",
    "seeker",
    "human",
    "ai",
    "me",
)
# Chat-format tokens a model writes as text: ChatML's "<|im_end|>", and llama.cpp's default
# format's "<s>", "[INST]" and "<<SYS>>" (a GGUF without a chat template is prompted in it).
_SPECIAL_TOKEN_RE = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|<{1,2}/?SYS>{1,2}")
# Stage directions the small models like to add: "(pauses)", "*sighs*", "[smiling]".
_TURN_START_RE = re.compile(r"<s>|\[INST\]|<\|im_start\|>")
_STAGE_RE = re.compile(r"\([^()\n]{0,60}\)|(?<!\*)\*[^*\n]{1,60}\*(?!\*)|\[[^\[\]\n]{0,60}\]")
_LETTER_RE = re.compile(r"[^\W\d_]")


@lru_cache(maxsize=1024)
def _role_patterns(names: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    alternatives = "|".join((*_ROLE_WORDS, *(re.escape(n) for n in names if n)))
    label = rf"[*_\s]*(?:{alternatives})[*_\s]*:"
    leading = re.compile(rf"^\s*{label}\s*", re.IGNORECASE)
    # A later line (or sentence) that starts another speaker's turn: cut the reply there.
    later = re.compile(rf"(?:\n|(?<=[.!?])\s)\s*{label}", re.IGNORECASE)
    return leading, later


def clean_reply(
    text: str,
    names: Sequence[str] = (),
    max_sentences: int = MAX_SENTENCES,
    max_chars: int = MAX_CHARS,
) -> str | None:
    """Post-process a generated reply; ``None`` when nothing usable is left.

    Strips whitespace, quotes, special tokens and stage directions (``"(sighs)"``,
    ``"*smiles*"``), drops a leading role label (``"User:"``, ``"Assistant:"``, one of
    ``names`` + ``":"``), cuts where the model starts writing another speaker's turn, and keeps at most ``max_sentences`` sentences and
    ``max_chars`` characters (dropping a trailing half sentence when a whole one precedes it).

    Example:
        >>> clean_reply("Maya: I feel lost. I don't know. Really. Truly.\\nUser: ok", ("Maya",))
        "I feel lost. I don't know. Really."
        >>> clean_reply(" ... ") is None
        True
    """
    leading, later = _role_patterns(tuple(names))
    # A turn-opening tag after some words starts the next turn: the reply ends there.
    opened = _TURN_START_RE.search(text)
    if opened and _LETTER_RE.search(_SPECIAL_TOKEN_RE.sub(" ", text[: opened.start()])):
        text = text[: opened.start()]
    text = _SPECIAL_TOKEN_RE.sub(" ", text).strip()
    for _ in range(3):  # "Maya: **User:** ..." and the like
        stripped = leading.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    match = later.search(text)
    if match:
        text = text[: match.start()]
    text = _STAGE_RE.sub(" ", text).replace("*", "")
    text = " ".join(text.split()).strip(" \"'\u201c\u201d")
    if not _LETTER_RE.search(text):
        return None
    sentences = SENTENCE_END_RE.split(text)
    if len(sentences) > 1 and not sentences[-1].rstrip("\"')\u201d").endswith((".", "!", "?")):
        sentences = sentences[:-1]  # a reply cut off by max_tokens
    kept: list[str] = []
    length = 0
    for sentence in sentences[:max_sentences]:
        extra = len(sentence) + (1 if kept else 0)
        if length + extra > max_chars:
            break
        kept.append(sentence)
        length += extra
    if not kept:  # one over-long sentence: cut at a word boundary
        cut = text[:max_chars]
        kept = [cut.rsplit(" ", 1)[0] if " " in cut else cut]
    out = " ".join(kept).strip()
    return out if _LETTER_RE.search(out) else None


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if len(w) > 3}


def conveys(text: str, cue: str) -> bool:
    """Whether ``text`` carries most of the cue's content words."""
    wanted = _content_words(cue)
    if not wanted:
        return True
    return len(wanted & _content_words(text)) >= 0.5 * len(wanted)


def is_parrot(reply: str, other: str | None) -> bool:
    """Whether ``reply`` copies the other party's last message (small models often do).

    True when both open with the same five words or share most of their content words.
    """
    if not other:
        return False
    head = [w.lower() for w in _WORD_RE.findall(reply)[:5]]
    if len(head) == 5 and head == [w.lower() for w in _WORD_RE.findall(other)[:5]]:
        return True
    mine, theirs = _content_words(reply), _content_words(other)
    return len(mine) >= 4 and len(mine & theirs) >= 0.7 * len(mine | theirs)


def with_cue(text: str, cue: str, max_chars: int = MAX_CHARS) -> str:
    """Append the cue's own words, shortening ``text`` (by whole sentences) to make room."""
    room = max_chars - len(cue) - 1
    sentences = SENTENCE_END_RE.split(text)
    while sentences and len(" ".join(sentences)) > room:
        sentences.pop()
    head = " ".join(sentences)
    return f"{head} {cue}" if head else cue
