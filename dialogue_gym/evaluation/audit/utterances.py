"""What a policy's utterances look like: length, repetition across turns, the lexical
recogniser's cue phrases, the most frequent n-grams and distinct-n.

Example:
    >>> stats = utterance_stats([{"utterances": ["How are you?", "How are you?"]}])
    >>> stats["repeated_turns"], stats["words_mean"]
    (1.0, 3.0)
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from dialogue_gym.evaluation.audit.cues import cue_phrases, words_of
from dialogue_gym.evaluation.audit.readers import SHORT_NAMES
from dialogue_gym.evaluation.audit.records import as_episodes
from dialogue_gym.user.recognise.lexical import cue_hits

__all__ = ["NEAR_REPEAT", "jaccard", "utterance_stats"]

#: Two turns whose word sets have at least this Jaccard similarity are a (near) repeat.
NEAR_REPEAT = 0.8


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """Jaccard similarity of two word collections (as sets); two empty ones are identical.

    Example:
        >>> jaccard("a b c d".split(), "a b c d e".split())
        0.8
    """
    sa, sb = set(a), set(b)
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


def _ngrams(words: Sequence[str], n: int) -> list[str]:
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def utterance_stats(
    episodes_or_utterances: Any, top: int = 10, near: float = NEAR_REPEAT
) -> dict[str, Any]:
    """Statistics of a policy's utterances.

    Args:
        episodes_or_utterances: Episodes in any form (:func:`as_episode`), or plain utterances
            (each then its own episode: no repetition to count).
        top: How many n-grams and cue phrases to list.
        near: Jaccard similarity of word sets at which a turn nearly repeats an earlier one.

    Returns:
        ``episodes``, ``utterances``; ``chars_mean``, ``chars_median``, ``words_mean``,
        ``words_median``; ``repeated_turns`` (share of the turns after an episode's first that
        repeat or nearly repeat an earlier turn of the same episode: Jaccard of word sets
        ``>= near``), ``exact_repeats`` (the same words in the same order), both ``nan``
        with no such turn; ``with_cue`` (share of utterances with at least one of the lexical
        recogniser's cue phrases), ``cue_phrases_mean`` (:func:`cue_phrases` per utterance),
        ``cue_hits_mean`` (cue matches per utterance, a phrase read by two strategies' cues
        counting twice), ``cue_phrases_per_100_words``, ``cue_strategies`` (share of cue
        matches per strategy), ``top_cues`` (``(phrase, count)``); ``ngrams`` (``{2: [(ngram,
        count)...], 3: [...]}``, within utterances) and ``distinct`` (``{1: .., 2: .., 3: ..}``:
        distinct n-grams over all n-grams).

    Example:
        >>> s = utterance_stats([["I hear you.", "I hear you!", "What happened?"]])
        >>> s["repeated_turns"], s["ngrams"][2][0]
        (0.5, ('i hear', 2))
    """
    episodes = as_episodes(episodes_or_utterances)
    texts = [u for e in episodes for u in e.utterances]
    words = [words_of(t) for t in texts]
    repeats = exact = later = 0
    for episode in episodes:
        seen: list[tuple[str, set[str]]] = []
        for text in episode.utterances:
            words_here = words_of(text)
            key, bag = " ".join(words_here), set(words_here)
            if seen:
                later += 1
                exact += any(key == k for k, _ in seen)
                repeats += any(jaccard(bag, b) >= near for _, b in seen)
            seen.append((key, bag))
    hits = [cue_hits(t) for t in texts]
    phrases = [cue_phrases(t) for t in texts]
    by_strategy = Counter(SHORT_NAMES[h[0]] for hs in hits for h in hs)
    n_hits = sum(by_strategy.values())
    total_words = sum(len(w) for w in words)
    ngrams = {n: Counter(g for w in words for g in _ngrams(w, n)) for n in (1, 2, 3)}
    return {
        "episodes": len(episodes),
        "utterances": len(texts),
        "chars_mean": _mean([len(t) for t in texts]),
        "chars_median": _median([len(t) for t in texts]),
        "words_mean": _mean([len(w) for w in words]),
        "words_median": _median([len(w) for w in words]),
        "repeated_turns": repeats / later if later else math.nan,
        "exact_repeats": exact / later if later else math.nan,
        "with_cue": _mean([float(bool(p)) for p in phrases]),
        "cue_phrases_mean": _mean([len(p) for p in phrases]),
        "cue_hits_mean": _mean([len(h) for h in hits]),
        "cue_phrases_per_100_words": 100 * sum(map(len, phrases)) / total_words
        if total_words
        else math.nan,
        "cue_strategies": {s: c / n_hits for s, c in by_strategy.most_common()},
        "top_cues": Counter(p for ps in phrases for p in ps).most_common(top),
        "ngrams": {n: ngrams[n].most_common(top) for n in (2, 3)},
        "distinct": {n: len(c) / sum(c.values()) if c else math.nan for n, c in ngrams.items()},
    }
