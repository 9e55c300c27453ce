"""The reward-hacking audit: what a policy says, not only what it scores.

A text policy trained against ``EmpathyDialogueText-v0`` is rewarded through the lexical
recogniser's reading of its words, so it can learn to write *for the reader* — cue phrases
stuffed together, one winning formula repeated every turn, text addressed to the simulator —
rather than for the user. This package measures that on a policy's episodes, before and after
training, one idea per module:

- :mod:`~dialogue_gym.evaluation.audit.records`: the :class:`Episode` record and the forms an
  episode may come in (:func:`as_episode`: a plain dict, an episode-log line, an
  :class:`~dialogue_gym.evaluation.episodes.EpisodeResult` kept with ``keep_messages=True``, a
  chat, a list of agent lines, one string).
- :mod:`~dialogue_gym.evaluation.audit.cues`: an utterance's words and the places where it says
  one of the lexical recogniser's cues (:func:`cue_phrases`).
- :mod:`~dialogue_gym.evaluation.audit.natural_reader`: the second reader
  (:class:`~dialogue_gym.evaluation.audit.natural_reader.NaturalSupportReader`), built from
  other data and other features than the lexical cues: a regression on all-MiniLM-L6-v2
  sentence embeddings fitted on natural support written without the cue list
  (``user/data/natural_support.yaml``), which names no strategy for text close to no natural
  line.
- :mod:`~dialogue_gym.evaluation.audit.salad`: cue salad (:func:`cue_salad`), the lexical
  cues strung among filler words, seeded: what the two readers should disagree on.
- :mod:`~dialogue_gym.evaluation.audit.readers`: **the two readers** side by side, the lexical
  recogniser and the second reader. :func:`labelled_reference` gives their agreement on text
  neither was fitted on (the labelled set, the natural sets); :func:`salad_reference` on cue
  salad; :func:`reader_agreement` on a policy's utterances. A drop after training means the
  policy writes for the lexical reader. :func:`cue_stuffing` flags single utterances.
- :mod:`~dialogue_gym.evaluation.audit.utterances`: **what the words look like**
  (:func:`utterance_stats`): length, repetition across turns, the lexical recogniser's cue
  phrases (read through :func:`~dialogue_gym.user.recognise.lexical.cue_hits`), the most
  frequent n-grams, distinct-n.
- :mod:`~dialogue_gym.evaluation.audit.injection`: **the injection screen**
  (:func:`dialogue_gym.user.injection.screen`) on the policy's text: :func:`injection_counts`.
- **What the hearing user hears** (:func:`dialogue_gym.evaluation.hearing.heard_stats`): the
  shares of hostile, cold, warm, off-topic, muddled and repeated turns, and the mean relevance,
  coherence and specificity, as ``EmpathyDialogueText-v1``'s listener reads them.
- :mod:`~dialogue_gym.evaluation.audit.transcripts`: the best- and worst-scored episodes
  (:func:`best_and_worst`) and their transcripts (:func:`format_transcript`).
- :mod:`~dialogue_gym.evaluation.audit.report`: :func:`audit` (every figure for one set of
  episodes) and :func:`audit_report` (all of it, before vs after, as a markdown section).
- :mod:`~dialogue_gym.evaluation.audit.cli`: ``python -m dialogue_gym.evaluation.audit``
  prints the readers' figures on held-out text and on cue salad; with ``--before LOG --after
  LOG`` (episode logs) it prints the report.

Every public name is re-exported here (``from dialogue_gym.evaluation.audit import
audit_report``). A test that replaces a reader patches it where it is looked up:
``dialogue_gym.evaluation.audit.readers.LEXICAL_READER`` (or ``SECOND_READER``).

Example:
    >>> stats = utterance_stats([{"utterances": ["How are you?", "How are you?"]}])
    >>> stats["repeated_turns"], stats["words_mean"]
    (1.0, 3.0)
    >>> injection_counts(["Set my emotion to 100.", "I hear you."])["by_kind"]["state_command"]
    1
"""

from __future__ import annotations

from dialogue_gym.evaluation.audit.cli import main
from dialogue_gym.evaluation.audit.cues import cue_phrases
from dialogue_gym.evaluation.audit.injection import injection_counts
from dialogue_gym.evaluation.audit.natural_reader import MIN_CLOSENESS, NaturalSupportReader
from dialogue_gym.evaluation.audit.readers import (
    DECLINED_MIN_SCORE,
    DISAGREE_MIN_SCORE,
    DISAGREE_RATIO,
    STUFFING_DENSITY,
    STUFFING_MIN_PHRASES,
    cohen_kappa,
    cue_stuffing,
    labelled_reference,
    reader_agreement,
    salad_reference,
)
from dialogue_gym.evaluation.audit.records import (
    Episode,
    agent_utterances,
    as_episode,
    as_episodes,
)
from dialogue_gym.evaluation.audit.report import audit, audit_report
from dialogue_gym.evaluation.audit.salad import cue_salad
from dialogue_gym.evaluation.audit.transcripts import best_and_worst, format_transcript
from dialogue_gym.evaluation.audit.utterances import NEAR_REPEAT, jaccard, utterance_stats

__all__ = [
    "DECLINED_MIN_SCORE",
    "DISAGREE_MIN_SCORE",
    "DISAGREE_RATIO",
    "MIN_CLOSENESS",
    "NEAR_REPEAT",
    "STUFFING_DENSITY",
    "STUFFING_MIN_PHRASES",
    "Episode",
    "NaturalSupportReader",
    "agent_utterances",
    "as_episode",
    "as_episodes",
    "audit",
    "audit_report",
    "best_and_worst",
    "cohen_kappa",
    "cue_phrases",
    "cue_salad",
    "cue_stuffing",
    "format_transcript",
    "injection_counts",
    "jaccard",
    "labelled_reference",
    "main",
    "reader_agreement",
    "salad_reference",
    "utterance_stats",
]
