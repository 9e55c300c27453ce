"""Voice fidelity, read independently of the voice: is each user line in role, does it express
the core's emotion, does it perform the core's act?

The affective core decides the user's act, emotion and need cue; a voice only words them. These
readers check the words against the decision, for any voice (they never import one):

- **role** (:func:`read_role`): the line is the help-seeker's. A violation consoles the other
  party ("I'm so sorry to hear that"), gives them advice ("You should try..."), speaks as the
  listener ("How can I support you today?", "I'm listening"), speaks of the persona in the third
  person ("Maya feels...") or steps out of the fiction ("As an AI...").
- **emotion** (:func:`read_sentiment`, :func:`emotion_agrees`): a scored lexicon written from
  first principles (no voice output was looked at) gives the line's sentiment (negative,
  neutral, mixed, positive) and whether it says things just got better or worse. The line
  agrees with the core when its sentiment fits the emotion band (no positive line at
  ``failing`` or ``low``, no negative one at ``good`` or ``top``; ``middle`` takes any) and its
  change words fit the turn's change (no "that helps" after a drop of
  :data:`CHANGE_MARGIN` points or more, no "that makes it worse" after such a rise).
- **act** (:func:`read_acts`, :func:`act_agrees`): detectors for thanking, leaving, resisting,
  agreeing and asking; disclosure is conveying the turn's need cue (most of its content words);
  venting is the rest (the speaker talks about themselves and does none of the others). A line
  agrees with the core's act when it performs it and none of the acts that contradict it
  (:data:`CONFLICTS`: a venting user who says goodbye, an agreeing one who pushes back).

They are lexical heuristics, validated on the hand-labelled lines of
``dialogue_gym/user/data/fidelity_lines.yaml`` (:func:`labelled_accuracy`; a third of them,
the ``held_out`` split, were never looked at while the readers were tuned). The persona and
fact consistency of :mod:`~dialogue_gym.evaluation.metrics.consistency` completes the picture;
:func:`fidelity_table` puts them together over recorded lines (``benchmarks/voice_fidelity.py``).

One module per idea, every public name re-exported here:
:mod:`~dialogue_gym.evaluation.metrics.fidelity.lexicon` (the word lists and patterns, loaded
from ``dialogue_gym/evaluation/metrics/data/fidelity_lexicon.yaml``),
:mod:`~dialogue_gym.evaluation.metrics.fidelity.text` (normalising and cutting a line),
:mod:`~dialogue_gym.evaluation.metrics.fidelity.role`,
:mod:`~dialogue_gym.evaluation.metrics.fidelity.sentiment` and
:mod:`~dialogue_gym.evaluation.metrics.fidelity.acts` (the three readers),
:mod:`~dialogue_gym.evaluation.metrics.fidelity.labelled` (the labelled lines and the readers'
accuracy on them) and :mod:`~dialogue_gym.evaluation.metrics.fidelity.table`
(:func:`fidelity_table`).

Example:
    >>> read_role("I'm so sorry to hear that. It's okay to feel sad.").why
    ('consoles',)
    >>> read_role("Sorry, I'm a mess. You don't get it.").ok
    True
    >>> read_sentiment("I feel so much lighter now.").label, read_sentiment("I feel lighter.").better
    ('positive', True)
    >>> emotion_agrees("Things have been going really well for me lately.", 35.0, 0.0)
    False
    >>> sorted(read_acts("Thanks for the chat. Bye!"))
    ['leave', 'thank']
    >>> act_agrees("Yeah, but that's not what I need.", "agree"), act_agrees("Yeah, but that's not what I need.", "resist")
    (False, True)
"""

from __future__ import annotations

from dialogue_gym.evaluation.metrics.fidelity.acts import CONFLICTS, act_agrees, read_acts
from dialogue_gym.evaluation.metrics.fidelity.labelled import (
    LabelledLine,
    labelled_accuracy,
    load_labelled_lines,
)
from dialogue_gym.evaluation.metrics.fidelity.role import ROLE_VIOLATIONS, RoleReading, read_role
from dialogue_gym.evaluation.metrics.fidelity.sentiment import (
    CHANGE_MARGIN,
    SentimentReading,
    emotion_agrees,
    read_sentiment,
)
from dialogue_gym.evaluation.metrics.fidelity.table import fidelity_table

__all__ = [
    "CHANGE_MARGIN",
    "CONFLICTS",
    "ROLE_VIOLATIONS",
    "LabelledLine",
    "RoleReading",
    "SentimentReading",
    "act_agrees",
    "emotion_agrees",
    "fidelity_table",
    "labelled_accuracy",
    "load_labelled_lines",
    "read_acts",
    "read_role",
    "read_sentiment",
]
