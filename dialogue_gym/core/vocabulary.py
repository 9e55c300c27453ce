"""Fixed vocabularies shared by every module: strategies, needs, user acts, emotions.

The orders here are part of the public API: ``STRATEGIES`` is the action order of
``EmpathyDialogue-v0`` and ``NEEDS`` is the order of the ``need_cues`` observation.
"""

from __future__ import annotations

#: ESConv's eight support strategies (Liu et al., 2021), in action order.
STRATEGIES: tuple[str, ...] = (
    "Question",
    "Restatement or Paraphrasing",
    "Reflection of feelings",
    "Self-disclosure",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Others",
)

QUESTION, RESTATEMENT, REFLECTION, SELF_DISCLOSURE, AFFIRMATION, SUGGESTION, INFORMATION, OTHERS = (
    range(8)
)

#: Strategies that ground the conversation (explore what the user means).
GROUNDING_ACTS: frozenset[int] = frozenset({QUESTION, RESTATEMENT})
#: Strategies that comfort.
COMFORT_ACTS: frozenset[int] = frozenset({REFLECTION, AFFIRMATION})
#: Strategies that act on the problem (ESConv's action stage).
HELP_ACTS: frozenset[int] = frozenset({SUGGESTION, INFORMATION})

#: Hidden needs, in the order of the ``need_cues`` observation. The first four are
#: "emotional", the last two "rational", after RLVER's hidden intentions.
NEEDS: tuple[str, ...] = (
    "be_heard",
    "validation",
    "shared_experience",
    "decision_reassurance",
    "practical_suggestions",
    "information",
)
EMOTIONAL_NEEDS: frozenset[str] = frozenset(NEEDS[:4])
RATIONAL_NEEDS: frozenset[str] = frozenset(NEEDS[4:])

#: The user's dialogue acts, in the order of the ``user_act`` observation.
USER_ACTS: tuple[str, ...] = ("vent", "disclose", "ask", "resist", "agree", "thank", "leave")

#: Plutchik's eight basic emotions, in the order of the ``emotion`` observation.
PLUTCHIK: tuple[str, ...] = (
    "joy",
    "trust",
    "fear",
    "surprise",
    "sadness",
    "disgust",
    "anger",
    "anticipation",
)

#: ESConv's problem types.
PROBLEM_TYPES: tuple[str, ...] = (
    "ongoing depression",
    "breakup with partner",
    "job crisis",
    "problems with friends",
    "academic pressure",
    "procrastination",
    "alcohol abuse",
    "conflict with parents",
    "sleep problems",
    "appearance anxiety",
    "bullying",
)

#: ESConv's emotion types.
EMOTION_TYPES: tuple[str, ...] = (
    "anxiety",
    "depression",
    "sadness",
    "anger",
    "fear",
    "disgust",
    "shame",
    "nervousness",
)

#: Card difficulty levels; the simulator config maps each to a resistance.
DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")

#: RLVER's character types.
CHARACTER_TYPES: tuple[str, ...] = ("open", "negative", "passive", "avoidant")

#: SAGE's emotion bands, as (lower bound, name), highest first.
EMOTION_BANDS: tuple[tuple[float, str], ...] = (
    (100.0, "top"),
    (70.0, "good"),
    (40.0, "middle"),
    (10.0, "low"),
    (float("-inf"), "failing"),
)


def emotion_band(score: float) -> str:
    """Name SAGE's band for an emotion score.

    Example:
        >>> emotion_band(72.0), emotion_band(5.0)
        ('good', 'failing')
    """
    for lower, name in EMOTION_BANDS:
        if score >= lower:
            return name
    raise AssertionError("unreachable")  # pragma: no cover
