"""What the hearing user hears in a policy's words: the listener's reading, summarised.

For an audit of a trained text policy (``dialogue_gym.evaluation.audit`` reports it before and
after training): each agent line is read by a listener (:mod:`dialogue_gym.user.hearing`; the
lexical one by default: bit-exact, no model) in the context of its conversation (the card, when
its id names one of the packaged cards; the user's line before it; the agent's earlier lines),
and the readings are summarised as shares: hostile, cold and warm tone, off-topic, muddled and
repeated turns, and the mean relevance, coherence and specificity. A policy that learned to write
for the reader shows up here as muddled (cue-salad) or repeated turns; one that learned to soothe
without engaging, as generic, low-specificity turns.

Example:
    >>> stats = heard_stats([{"utterances": ["So basically this is your own fault.",
    ...                                      "I'm so sorry, that sounds exhausting."]}])
    >>> stats["n"], stats["hostile"], stats["warm"]
    (2, 0.5, 0.5)
"""

from __future__ import annotations

from functools import cache
from typing import Any

from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.scenario import ScenarioCard, load_scenarios
from dialogue_gym.user.hearing import HearingContext, make_listener

__all__ = ["HEARD_KEYS", "heard_stats"]

#: The figures :func:`heard_stats` returns beside ``n``, in report order.
HEARD_KEYS = (
    "hostile",
    "cold",
    "warm",
    "off_topic",
    "muddled",
    "repeated",
    "relevance",
    "coherence",
    "specificity",
)


@cache
def _cards() -> dict[str, ScenarioCard]:
    return {name: c for c in load_scenarios("all") for name in (c.id, c.key)}


def heard_stats(episodes: Any, listener: str = "lexical") -> dict[str, Any]:
    """The listener's reading of every agent line of ``episodes``, as shares and means.

    Args:
        episodes: Any form ``dialogue_gym.evaluation.audit.as_episodes`` reads.
        listener: A registered listener (``"lexical"``: word lists, no model).

    Returns:
        ``n`` (lines read) and :data:`HEARD_KEYS`: the shares of hostile, cold and warm turns,
        of off-topic, muddled and repeated ones (by ``SimConfig``'s default thresholds), and the
        mean relevance, coherence and specificity.
    """
    from dialogue_gym.evaluation.audit import as_episodes

    reader = make_listener(listener)
    config = SimConfig()
    readings = []
    for episode in as_episodes(episodes):
        card = _cards().get(episode.card_id)
        earlier: list[str] = []
        for k, text in enumerate(episode.utterances):
            said = episode.user[k] if k < len(episode.user) else ""
            context = HearingContext(card, said, tuple(earlier))
            readings.append(reader.hear([text], [context])[0].delivery)
            earlier.append(text)
    n = len(readings)

    def share(test: Any) -> float:
        return sum(1 for d in readings if test(d)) / n if n else 0.0

    def mean(field: str) -> float:
        return sum(getattr(d, field) for d in readings) / n if n else 0.0

    return {
        "n": n,
        "hostile": share(lambda d: d.hostility >= config.hostile_at),
        "cold": share(lambda d: d.tone == "cold"),
        "warm": share(lambda d: d.tone == "warm"),
        "off_topic": share(lambda d: d.relevance < config.relevance_needed),
        "muddled": share(lambda d: d.coherence < config.clarity_needed),
        "repeated": share(lambda d: d.repetition >= 0.5),
        "relevance": mean("relevance"),
        "coherence": mean("coherence"),
        "specificity": mean("specificity"),
    }
