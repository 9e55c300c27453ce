"""How an utterance was delivered, as the simulated user perceived it: numbers the core appraises.

The affective core appraises a *strategy*; in the hearing text env (``EmpathyDialogueText-v1``)
it also takes a :class:`Delivery`, which says how that strategy was said: its tone, whether it
engaged with the user, whether it was one clear act, whether it repeated the agent's earlier
words, and whether it was about this user's situation. A listener in
:mod:`dialogue_gym.user.hearing` reads the words into a ``Delivery``; the core, which knows
nothing of words, scales and signs the strategy's effect by it (``AffectiveCore.step``).

Without a delivery (the strategy env, ``EmpathyDialogueText-v0``) the core's dynamics are exactly
those it had before deliveries existed: :data:`WELL_DELIVERED` is what a template realiser says.

Example:
    >>> d = Delivery(tone="hostile", hostility=0.9)
    >>> d.hostile(0.5), WELL_DELIVERED.hostile(0.5)
    (True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TONES", "WELL_DELIVERED", "Delivery", "reaction"]

#: The tones a listener reads, warmest first.
TONES: tuple[str, ...] = ("warm", "neutral", "cold", "hostile")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the user perceived of how one agent turn was said (each score in [0, 1]).

    Attributes:
        tone: One of :data:`TONES`.
        hostility: Blame, mockery, dismissal, invalidation, minimising, sarcasm or harmful
            advice, from 0 (none) to 1 (plainly hostile).
        coldness: Curt, detached or perfunctory delivery short of hostility.
        relevance: How much the turn engages with what the user said and their situation
            (1) rather than something else (0).
        coherence: One clear act (1) against a pile of cue phrases or many strategies crammed
            into one turn (towards 0).
        repetition: How closely the turn repeats one of the agent's earlier turns (1: the same
            words again).
        specificity: A turn about this user's situation (1) against a generic one (0).
        answer: The answer the user gives to a question their card's facts answer, or None.
    """

    tone: str = "neutral"
    hostility: float = 0.0
    coldness: float = 0.0
    relevance: float = 1.0
    coherence: float = 1.0
    repetition: float = 0.0
    specificity: float = 0.0
    answer: str | None = None

    def hostile(self, threshold: float) -> bool:
        """Whether the turn is heard as hostile (``hostility >= threshold``)."""
        return self.hostility >= threshold


#: A clear, relevant, neutral turn said for the first time: what the template realiser says.
WELL_DELIVERED = Delivery()


def reaction(
    delivery: Delivery, hostile_at: float, relevance_needed: float, clarity_needed: float
) -> str | None:
    """How a delivery struck the user, for their voice: ``"hurt"``, ``"off_topic"``,
    ``"muddled"``, ``"repeated"``, or None when it landed as meant (the thresholds are
    ``SimConfig``'s).

    Example:
        >>> reaction(Delivery(relevance=0.1), 0.5, 0.35, 0.5), reaction(Delivery(), 0.5, 0.35, 0.5)
        ('off_topic', None)
    """
    if delivery.hostile(hostile_at):
        return "hurt"
    if delivery.relevance < relevance_needed:
        return "off_topic"
    if delivery.coherence < clarity_needed:
        return "muddled"
    if delivery.repetition >= 0.5:
        return "repeated"
    return None
