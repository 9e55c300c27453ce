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

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import USER_ACTS, emotion_band
from dialogue_gym.evaluation.metrics.consistency import card_contradictions, history_contradictions

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

#: The kinds of role violation :func:`read_role` names.
ROLE_VIOLATIONS: tuple[str, ...] = ("consoles", "advises", "supporter", "third_person", "meta")
#: A turn's change (emotion points) from which its direction must not be contradicted: the
#: core's own threshold for a drop that makes the user resist.
CHANGE_MARGIN = 3.0
#: For each act, the acts whose presence in the same line contradicts it. Leaving ends the
#: conversation, so only a leaving line may say goodbye (a thanking one may too: success ends
#: it); an agreeing line does not push back; a thanking line does not resist.
CONFLICTS: Mapping[str, frozenset[str]] = {
    "vent": frozenset({"leave"}),
    "disclose": frozenset({"leave"}),
    "ask": frozenset({"leave"}),
    "resist": frozenset({"leave"}),
    "agree": frozenset({"resist", "leave"}),
    "thank": frozenset({"resist"}),
    "leave": frozenset(),
}

_DATA_FILE = Path(__file__).resolve().parents[2] / "user" / "data" / "fidelity_lines.yaml"
_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _norm(text: str) -> str:
    """Lower case, straight apostrophes, single spaces."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u2026", "...")
    return " ".join(text.lower().split())


def _any(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


# ----------------------------------------------------------------------------- role

# What a listener says to the person in distress. Reported speech ("my sister said it's
# normal to feel this way") is the user's own line, so these are read only when no verb of
# saying precedes them in the sentence.
_CONSOLES = _any(
    [
        r"\bsorry (?:to hear|that you|you(?:'re| are| have|'ve| feel)|for your)",
        r"\b(?:you're|you are) not alone\b",
        r"\bdon't be (?:so |too )?hard on yourself\b",
        r"\bbe (?:kind|gentle|patient) with yourself\b",
        r"\btake care of yourself\b",
        r"\byou did (?:the|your) best\b",
        r"\byou(?:'re| are) doing (?:great|well|so well|the best|your best|amazing)",
        r"\byou deserve\b",
        r"\b(?:i'm|i am) (?:so |really )?(?:glad|proud) (?:that )?you\b",
        r"\bthank(?:s| you) for (?:sharing|opening up|trusting|telling me)",
        r"\btakes? (?:a lot of |real )?(?:courage|strength) to\b",
        r"\bthat (?:must|would) (?:be|have been|feel) (?:so |really |very )?"
        r"(?:hard|difficult|tough|painful|awful|frustrating|scary|overwhelming)",
        r"\b(?:it |that )?sounds like (?:you|you're|it's been|a lot)",
        r"\bi (?:can )?understand how you(?:'re| are)? feel",
        r"\bi (?:can only |can )?imagine how\b",
        r"\bi hear you\b",
        r"\byour feelings are (?:valid|normal|understandable)",
        r"\b(?:things|it) (?:will|'ll|is going to) get better\b",
        r"\bremember(?:,)? (?:that )?you\b",
        r"\b(?:people|someone|others|friends|family) (?:who )?(?:care|cares|love|loves) about you\b",
        r"\bi (?:completely |totally |really )?understand (?:how|what) you\b",
    ]
)
_SAYS_RE = re.compile(r"\b(?:said|say|says|saying|told|tell|tells|telling|keeps?|heard)\b")
_OKAY_TO_FEEL = re.compile(
    r"\b(?:it's|it is) (?:okay|ok|alright|normal|natural|understandable|fine|valid) to (?:feel|be)\b"
)
_ADVISES = _any(
    [
        r"\byou (?:should|could try|might (?:want to |)try|need to|have to|ought to|must)\b",
        r"\bhave you (?:tried|considered|thought about|thought of)\b",
        r"\b(?:my advice|i (?:would |'d )?(?:suggest|recommend|advise))\b",
        r"\b(?:might|may|could|would|can) help you\b|\bit (?:might|may|could) help (?:to|if you)\b",
        r"\bit'?s (?:important|good|helpful) (?:for you )?to\b.*\byour?\b",
        r"(?:^|[.!?,;] )(?:so )?(?:try|consider|remember|focus on|make sure|don't forget|"
        r"reach out|take (?:a|some|time)|give yourself|talk to (?:someone|a))\b",
        r"\bwhy don't you\b",
    ]
)
_SUPPORTER = _any(
    [
        r"\bhow (?:can|may) i (?:help|support|assist)",
        r"\bwhat can i do for you\b",
        r"\bis there anything (?:else )?i can\b",
        r"\bwhat(?:'s| is) on your mind\b",
        r"\bwhat brings you\b",
        r"\bwhat (?:do|would) you (?:want|like) to talk about\b",
        r"\b(?:i'm|i am) (?:always |not |just )?here,? (?:too,? )?(?:for you|to (?:listen|help|support))",
        r"\b(?:i'm|i am) (?:just |still |always )?listening\b(?! to (?!you\b))",
        r"\b(?:what can i do|how can i|can i) (?:do )?(?:to )?help(?: you)?\b|\bi can do to help\b",
        r"\b(?:happy|glad) to help\b",
        r"\bmake sure you(?:'re| are) (?:okay|ok|alright|safe)\b",
        r"\bhow you(?:'re| are) feeling\b",
        r"\bi'm all ears\b",
        r"\btell me (?:more|about|what)\b",
        r"\bhow (?:are|have) you (?:been )?(?:feeling|doing|coping)\b",
        r"\bhow does (?:that|this|it) make you feel\b",
        r"\b(?:would|do) you (?:like|want) to talk\b",
        r"\bwhenever you(?:'re| are)? (?:ready|need)",
        r"\bfeel free to\b",
        r"\blet me know if\b",
        r"\b(?:i'm|i am) (?:glad|happy) to (?:help|listen)\b",
    ]
)
_META = _any(
    [
        r"\bas an ai\b",
        r"\b(?:language model|chatbot)\b",
        r"\b(?:i'm|i am) (?:just |only )?(?:an? )?(?:ai|assistant|bot|virtual)\b",
        r"\bas (?:a|your) (?:supporter|therapist|counsel+or|listener|assistant|friend here)\b",
        r"\b(?:role-?play|in character|my character)\b",
        r"\bthe (?:user|client|patient|seeker)\b",
        r"\bthe one who needs help\b",
    ]
)
_THIRD_VERBS = _wordset(
    "is was has had feels felt wants wanted needs needed thinks thought says said would will "
    "can can't cannot doesn't didn't does did isn't wasn't seems seemed keeps kept tries tried "
    "knows knew hopes worries worried struggles struggled loves hates lost works worked "
    "believes decided finds found gets got looks"
)


@dataclass(frozen=True)
class RoleReading:
    """Whether a line is the help-seeker's, and if not, which kinds of violation it shows.

    Attributes:
        ok: No violation found.
        why: The kinds found, in :data:`ROLE_VIOLATIONS` order.
    """

    ok: bool
    why: tuple[str, ...] = ()


@lru_cache(maxsize=256)
def _name_patterns(name: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    first = re.escape(_norm(name.split()[0])) if name.strip() else "\x00"
    verbs = "|".join(_THIRD_VERBS)
    third = re.compile(rf"\b{first}(?:'s\b| (?:{verbs})\b)")
    # "I'm Maya", "my name is Maya", "this is Maya": the speaker naming themselves is fine.
    claimed = re.compile(rf"\b(?:i'm|i am|name is|name's|call me|this is|it's|it is) {first}\b")
    # "..., Frank." / "Frank, ...": the persona addressed by its own name (the speaker has
    # taken the other role); "As Frank, I...": the fiction announced.
    vocative = re.compile(rf"(?:, {first}[.!?]?$|^{first}, |\bas {first}\b)")
    return third, claimed, vocative


def read_role(line: str, name: str | None = None) -> RoleReading:
    """Read whether ``line`` is said by the help-seeker (the simulated user).

    Args:
        line: The user's line.
        name: The persona's name (its first word is used): "Maya feels..." in Maya's own line
            is third-person self-reference; without it that check is skipped.

    Returns:
        A :class:`RoleReading`: ``ok`` and the kinds of violation found.

    Example:
        >>> read_role("You should try talking to someone you trust.").why
        ('advises',)
        >>> read_role("Maya has been so tired since the layoff.", "Maya").why
        ('third_person',)
        >>> read_role("My sister says it's normal to feel this way.").ok
        True
    """
    text = _norm(line)
    found: set[str] = set()
    for sentence in _SENTENCE_RE.split(text):
        if not sentence:
            continue
        # Reported speech ("my sister says it's normal to feel this way") is the user's own.
        for pattern in (_CONSOLES, _OKAY_TO_FEEL):
            match = pattern.search(sentence)
            if match and not _SAYS_RE.search(sentence[: match.start()]):
                found.add("consoles")
        found.update(
            kind
            for kind, pattern in (("advises", _ADVISES), ("supporter", _SUPPORTER), ("meta", _META))
            if pattern.search(sentence)
        )
        if name:
            third, claimed, vocative = _name_patterns(name)
            if vocative.search(sentence):
                found.add("supporter" if not sentence.startswith("as ") else "meta")
            elif third.search(sentence) and not claimed.search(sentence):
                found.add("third_person")
    why = tuple(kind for kind in ROLE_VIOLATIONS if kind in found)
    return RoleReading(ok=not why, why=why)


# ----------------------------------------------------------------------------- sentiment

# Valence of words about how someone feels or how things are, on a -2..+2 scale, written from
# first principles (the everyday meaning of each word) before any voice output was read.
_NEGATIVE_WORDS = {
    2.0: "awful terrible horrible miserable hopeless helpless desperate devastated unbearable "
    "worthless useless broken crushed depressed panic panicking worst hate hated furious "
    "suicidal trapped destroyed",
    1.5: "sad upset hurt hurts hurting lonely alone scared afraid terrified anxious angry "
    "frustrated failure ashamed guilty overwhelmed exhausted crying cry cried tears pain "
    "painful empty numb lost stuck drained dread miserable mess struggling struggle "
    "heartbroken disappointed disappointing embarrassed humiliated worthless fear fears "
    "nervous worried worry worrying stressed stress stressful grief grieving sick betrayed "
    "rejected abandoned ignored resent bitter jealous",
    1.0: "bad worse hard difficult tough tired heavy down low confused unsure uneasy "
    "annoyed irritated restless troubled problem problems wrong fail failed failing miss "
    "missing losing lose blame blamed regret rough unfair insecure doubt doubts weak "
    "sleepless tense burden falling apart suffer suffering unhappy",
}
_POSITIVE_WORDS = {
    2.0: "wonderful amazing fantastic great happy relieved relief thrilled grateful "
    "thankful joy overjoyed",
    1.5: "better calmer calm hopeful hope lighter glad good peaceful peace optimistic "
    "confident proud excited appreciate appreciated love loved safe stronger strong",
    1.0: "well helped helps helpful helping easier clearer clear nice "
    "enjoy enjoyed smile smiling laugh laughed lucky progress improving improved thanks "
    "thank",
}
_VALENCE: dict[str, float] = {}
for weight, words in _NEGATIVE_WORDS.items():
    _VALENCE.update({w: -weight for w in words.split()})
for weight, words in _POSITIVE_WORDS.items():
    _VALENCE.update({w: weight for w in words.split()})
# Phrases whose words alone mislead (the phrase wins over its words).
_PHRASES: tuple[tuple[re.Pattern[str], float], ...] = tuple(
    (re.compile(p), v)
    for p, v in (
        (r"\bbreathe again\b", 2.0),
        (r"\boff my chest\b", 1.5),
        (
            r"\bfeel(?:s|ing)? (?:so |really |more )?(?:heard|understood|supported|encouraged|"
            r"comforted|reassured)\b",
            1.5,
        ),
        (r"\bless (?:heavy|overwhelming|alone|stressed|anxious|scared)\b", 1.5),
        (r"\bno point\b", -1.5),
        (r"\bgive up\b|\bgiving up\b", -1.5),
        (r"\bout of hand\b", -1.5),
        (r"\bfalling apart\b", -2.0),
        (r"\bcan't (?:sleep|stop (?:crying|thinking)|cope|take it|breathe)\b", -1.5),
        (r"\bgoing (?:really |so )?well\b", 1.5),
        (r"\bnot (?:doing )?(?:so )?great\b", -1.0),
        (r"\bnot (?:too |that )?bad\b", 0.5),
        (r"\bnothing (?:helps|works)\b", -1.5),
        # Frustration with the listener, apology for oneself, being overwhelmed.
        (r"\b(?:you|u) (?:don't|do not|just don't) (?:get|understand)\b", -1.0),
        (r"\bnot listening\b|\bdon't think you(?:'re| are) (?:listening|hearing)\b", -1.0),
        (r"\bgeneric\b", -0.5),
        (r"\b(?:i'm|i am) sorry for\b|\bsorry,? i(?:'m| am)\b", -0.5),
        (r"\b(?:it's|it is) (?:just )?(?:a lot|too much)\b", -1.0),
        (r"\bcan't do this\b", -1.5),
        (r"\bwon't (?:switch|shut|turn) off\b", -1.0),
        # Willingness and resolution.
        (r"\bgive (?:it|that|this) a (?:try|go|shot)\b|\bworth a (?:try|shot)\b", 1.0),
        (r"\bknow what to do now\b", 1.5),
        # Wishes and conditionals say what the speaker lacks, not how they feel.
        (
            r"\b(?:i'd|i would|it would|would) (?:feel |be )?(?:better|good|nice|great|help)\b"
            r"|\b(?:i'd|i would) love to\b",
            0.0,
        ),
    )
)
_NEGATORS = _wordset("not no never n't nothing nobody hardly barely without isn't doesn't")
_NEGATION_SPAN = 4  # "I don't think this is helping": the negation reaches the clause
_CLAUSE_BREAK = _wordset("but though although yet about of with for because when if")
# Words that say things changed just now, in one direction or the other.
_BETTER = _wordset(
    "better calmer lighter relieved relief helped helps helping helpful easier clearer "
    "improving improved"
)
_WORSE = _wordset("worse worst heavier harder")
_BETTER_PHRASES = re.compile(
    r"\bknow what to do now\b|\bbreathe again\b|\boff my chest\b|\bfeel(?:s|ing)? heard\b|\bless (?:heavy|overwhelming|"
    r"alone|stressed|anxious|scared)\b"
)
_WORSE_PHRASES = re.compile(
    r"\bmakes? (?:me|it|things) (?:feel )?(?:even )?worse\b|\bnot helping\b|\bisn't helping\b"
    r"|\bdoesn't help\b|\bdidn't help\b|\bnothing helps\b"
)


@dataclass(frozen=True)
class SentimentReading:
    """What a line expresses about how the speaker feels.

    Attributes:
        label: ``"negative"``, ``"neutral"``, ``"mixed"`` or ``"positive"``.
        positive: The summed weight of positive words (after negation).
        negative: The summed weight of negative words (after negation), as a positive number.
        better: The line says things just got better ("that helps", "I feel lighter").
        worse: The line says things just got worse ("that makes it worse").
    """

    label: str
    positive: float
    negative: float
    better: bool
    worse: bool


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    for word in _WORD_RE.findall(text):
        if word.endswith("n't"):
            out.extend([word, "n't"])  # "isn't" counts as a negator after the word itself
        else:
            out.append(word)
    return out


def read_sentiment(line: str) -> SentimentReading:
    """Read the sentiment of ``line`` with the lexicon, negation-aware.

    A word's valence flips (at half weight) when a negator ("not", "never", "n't"...) stands
    within four words before it in the same clause; "better" after a negator is a worsening and the reverse.
    The label: no weight either way is neutral; weight one way only is that way; both ways,
    positive or negative when one side carries at least 70% of the weight, else mixed.

    Example:
        >>> r = read_sentiment("It's getting worse, not better.")
        >>> r.label, r.worse, r.better
        ('negative', True, False)
        >>> read_sentiment("Thanks, I suppose. I'm still not great, but it's something.").label
        'mixed'
        >>> read_sentiment("How do I even start looking for a new place?").label
        'neutral'
    """
    text = _norm(line)
    pos = neg = 0.0
    better = bool(_BETTER_PHRASES.search(text))
    worse = bool(_WORSE_PHRASES.search(text))
    covered: list[tuple[int, int]] = []
    for pattern, value in _PHRASES:
        for m in pattern.finditer(text):
            covered.append(m.span())
            if value > 0:
                pos += value
            elif value < 0:
                neg -= value
    # Mask the phrases so their words are not counted again.
    masked = list(text)
    for start, end in covered:
        masked[start:end] = " " * (end - start)
    tokens = _tokens("".join(masked))
    for i, word in enumerate(tokens):
        value = _VALENCE.get(word)
        if value is None:
            continue
        negated = False
        for t in reversed(tokens[max(0, i - _NEGATION_SPAN) : i]):
            if t in _CLAUSE_BREAK:
                break
            if t in _NEGATORS:
                negated = True
                break
        if negated:
            value = -0.5 * value
        if value > 0:
            pos += value
        else:
            neg -= value
        if word in _BETTER:
            if negated:
                worse = True
            else:
                better = True
        elif word in _WORSE:
            if negated:
                better = True
            else:
                worse = True
    if pos == 0 and neg == 0:
        label = "neutral"
    elif neg == 0:
        label = "positive"
    elif pos == 0:
        label = "negative"
    else:
        share = pos / (pos + neg)
        label = "positive" if share >= 0.7 else "negative" if share <= 0.3 else "mixed"
    return SentimentReading(label, round(pos, 3), round(neg, 3), better, worse)


#: The sentiments each emotion band rules out.
_BAND_EXCLUDES: Mapping[str, frozenset[str]] = {
    "failing": frozenset({"positive"}),
    "low": frozenset({"positive"}),
    "middle": frozenset(),
    "good": frozenset({"negative"}),
    "top": frozenset({"negative"}),
}


def emotion_agrees(line: str, emotion: float, change: float = 0.0) -> bool:
    """Whether ``line`` expresses what the core's emotion and this turn's change say.

    The line's sentiment must fit the band of ``emotion`` (no positive line at ``failing`` or
    ``low``; no negative one at ``good`` or ``top``; ``middle`` takes any), and its change
    words the turn's ``change``: after a drop of :data:`CHANGE_MARGIN` points or more it must
    not say things got better, after such a rise not that they got worse. A line that
    expresses nothing agrees (it contradicts nothing).

    Example:
        >>> emotion_agrees("I feel a bit lighter now.", 75.0, 6.0)
        True
        >>> emotion_agrees("That helps, thanks.", 30.0, -5.0)
        False
        >>> emotion_agrees("I'm exhausted and scared.", 80.0)
        False
    """
    reading = read_sentiment(line)
    if reading.label in _BAND_EXCLUDES[emotion_band(emotion)]:
        return False
    if change <= -CHANGE_MARGIN and reading.better and not reading.worse:
        return False
    return not (change >= CHANGE_MARGIN and reading.worse and not reading.better)


# ----------------------------------------------------------------------------- acts

_THANK = re.compile(r"\b(?:thank|thanks|thankful|grateful|appreciate|appreciated|cheers)\b")
_LEAVE = _any(
    [
        r"\b(?:good ?bye|bye)\b",
        r"\b(?:log|logging|sign|signing) (?:off|out)\b",
        r"\b(?:going|have|need|got|gotta|should|want) (?:to )?go(?: now)?(?:[.!,]|$| now| for now)",
        r"\bgonna go\b",
        r"\b(?:heading|head) (?:off|out)\b",
        r"\bi(?:'m| am) (?:off|out of here|leaving)\b",
        r"\bi(?:'ll| will) (?:go|leave it)\b",
        r"\b(?:stop|leave it|end (?:this|it|the (?:chat|conversation))) (?:here|there|now)\b",
        r"\bstop here\b",
        r"\btalk (?:another|some other) time\b|\btalk (?:later|soon)\b",
        r"\b(?:i'm|i am) done\b",
        r"\bdone (?:talking|with this)\b",
        r"\benough for (?:now|today|tonight)\b",
        r"\bgood ?night\b|\bcatch you later\b|\bsee you (?:later|soon|around|next time)\b",
        r"\bi need (?:some )?(?:time|space) (?:to|for) myself\b",
    ]
)
_RESIST = _any(
    [
        r"\bnot (?:really |quite |exactly )?what i (?:need|want|meant|mean|asked|was|'m|am)",
        r"\b(?:you|u) (?:don't|do not|didn't) (?:get|understand|know|listen)",
        r"\b(?:you're|you are) not (?:listening|hearing|getting)",
        r"\bdon't think you(?:'re| are) (?:listening|hearing)",
        r"\beasy (?:for you )?to say\b",
        r"\b(?:that|it|this) (?:doesn't|does not|won't|wouldn't|didn't|did not|isn't|is not)"
        r" (?:really )?(?:help|work|fit|apply|going to (?:help|work)|helping|helpful)",
        r"\b(?:not|isn't|is not) (?:really )?(?:helping|helpful|useful)\b|\bunhelpful\b",
        r"\b(?:i've|i have|i) (?:already )?tried (?:that|it|this)\b",
        r"\bheard (?:that|it|this) (?:all )?before\b",
        r"\bnot sure (?:that|this|it)(?:'s| is)? (?:\w+ )?(?:what|right|for me|fits|applies|"
        r"helps|the (?:answer|point))",
        r"\b(?:i'm|i am) not sure (?:that|this|it) (?:applies|fits|helps|works)",
        r"\bnot (?:for|about) me\b",
        r"\bi don't (?:think|see how) (?:that|this|it)(?:'s| is| would| will)?\b",
        r"\bdoesn't feel (?:quite )?right\b",
        r"\b(?:that's|that is|it's|it is) not (?:it|true|the point|that simple|so simple|helpful)",
        r"\bnot that simple\b|\bmore complicated than that\b",
        r"\bwhy are you\b",
        r"\bstop (?:telling|trying|saying)\b",
        r"\bi disagree\b",
        r"\bgeneric\b",
        r"\bjump(?:ing|ed)? (?:to|straight to)\b",
        r"\bmakes? (?:me|it|things) (?:feel )?(?:even )?worse\b",
        r"\bsomething (?:a little |a bit )?(?:else|different)\b",
        r"(?:^|[.!?] )no[,.!]",
        r"\bforget it\b",
    ]
)
_AGREE = _any(
    [
        r"(?:^|[.!?] )(?:yeah|yes|yep|yup|right|true|exactly|absolutely|definitely|sure)\b",
        r"\b(?:you're|you are|that's|that is) (?:so |totally |absolutely )?right\b",
        r"\b(?:that's|that is|it's) (?:true|fair|it|exactly it|exactly right|a good point|"
        r"a good idea|a fair point)\b",
        r"\bmakes (?:a lot of |so much |total |)sense\b",
        r"\b(?:good|fair) point\b",
        r"\bi (?:agree|suppose so|guess so|think so|think you're right|guess you're right)\b",
        r"\b(?:i|i'll|i will|i can|i could) (?:try|do) (?:that|it|this)\b",
        r"\bgive (?:it|that|this) a (?:try|go|shot)\b",
        r"\bworth a (?:try|shot)\b",
        r"\bhadn't thought of (?:it|that)\b",
    ]
)
_AUX = r"(?:should|shall|do|does|did|can|could|would|will|is|are|am|was|were|have|has|if)"
# A question the model forgot to end with "?": a question word and an auxiliary ("what should
# I do"), not a cleft statement ("what really gets me is...").
_QUESTION_START = re.compile(
    rf"^(?:(?:what|how|why|where|when|which|who)(?:'s| {_AUX})\b|how (?:long|much|many|do)\b|"
    r"(?:should|do|did|is|are|can|could|would|will|am) (?:i|you|it|there|this|that)\b|"
    r"any (?:ideas|advice|tips|thoughts)\b)"
)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|me|my|myself|mine)\b")
_CONTENT_RE = re.compile(r"[a-z]+")
_FUNCTION_WORDS = _wordset("""a about after again all also am an and any are as at be been before being but by can
    could did do does doing don't even for from had has have having he her him his how i i'm
    i've if in into is it it's its just keep keeps kept me more most my myself no not now of
    off on once only or our out over own really so some still such than that the their them
    then there these they this those through to too up very was we were what when where which
    while who why will with would you your since something anything every everyone""")


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _content(text: str) -> set[str]:
    return {
        _stem(w)
        for w in _CONTENT_RE.findall(_norm(text))
        if w not in _FUNCTION_WORDS and len(w) > 2
    }


def _conveys_cue(line: str, cue: str) -> bool:
    wanted = _content(cue)
    return not wanted or len(wanted & _content(line)) >= 0.5 * len(wanted)


def _asks(text: str) -> bool:
    for sentence in _SENTENCE_RE.split(text):
        s = sentence.strip()
        if s.endswith("?") or (s and _QUESTION_START.search(s)):
            return True
    return False


def _talks_about_self(text: str) -> bool:
    return bool(_FIRST_PERSON.search(text)) or read_sentiment(text).label != "neutral"


def read_acts(line: str, cue: str | None = None) -> frozenset[str]:
    """The user acts ``line`` performs.

    ``thank``, ``leave``, ``resist``, ``agree`` and ``ask`` each have a detector (phrases; a
    question mark or a question word starting a sentence for ``ask``); ``disclose`` is
    conveying ``cue`` (at least half of its content words, crudely stemmed); ``vent`` is the
    rest: the speaker talks about themselves (a first-person word or a feeling word) and
    performs none of thank, leave, resist, agree or ask.

    Example:
        >>> sorted(read_acts("I've tried that already and it didn't work."))
        ['resist']
        >>> sorted(read_acts("My dad hasn't called since Christmas.", "My dad hasn't spoken to me since Christmas."))
        ['disclose', 'vent']
        >>> sorted(read_acts("Is it normal to still feel this bad?"))
        ['ask']
    """
    text = _norm(line)
    acts = set()
    if _THANK.search(text) and not re.search(r"\bno,? thanks?\b|\bthanks for nothing\b", text):
        acts.add("thank")
    acts.update(
        act
        for act, pattern in (("leave", _LEAVE), ("resist", _RESIST), ("agree", _AGREE))
        if pattern.search(text)
    )
    if _asks(text):
        acts.add("ask")
    if cue and _conveys_cue(line, cue):
        acts.add("disclose")
    if not acts - {"disclose"} and _talks_about_self(text):
        acts.add("vent")
    return frozenset(acts)


def act_agrees(line: str, act: str, cue: str | None = None, opening: bool = False) -> bool:
    """Whether ``line`` performs the core's ``act`` and nothing that contradicts it.

    ``disclose`` with no cue (a question put to the user outside the dynamics) agrees when the
    line talks about the speaker. The ``opening`` line (before the supporter has said
    anything; the core's act is ``vent``) agrees when it talks about the speaker and does not
    leave: "Could we talk about my exams?" opens well, and so does "Thanks for asking. I...". See :data:`CONFLICTS` for
    what contradicts what.

    Raises:
        ValueError: ``act`` is not one of ``USER_ACTS``.

    Example:
        >>> act_agrees("I'm going to go now. Thanks anyway.", "leave")
        True
        >>> act_agrees("It's been awful. Anyway, bye.", "vent")
        False
    """
    if act not in CONFLICTS:
        raise ValueError(f"unknown act {act!r}; acts: {USER_ACTS}")
    acts = read_acts(line, cue)
    if opening:
        return "leave" not in acts and _talks_about_self(_norm(line))
    if acts & CONFLICTS[act]:
        return False
    if act == "disclose" and not cue:
        return _talks_about_self(_norm(line))
    return act in acts


# ----------------------------------------------------------------------------- labelled lines


@dataclass(frozen=True)
class LabelledLine:
    """One hand-labelled line of ``fidelity_lines.yaml`` (see the file's header)."""

    text: str
    role_ok: bool
    acts: frozenset[str]
    sentiment: str
    change: str
    name: str = "Maya"
    why: str | None = None
    cue: str | None = None
    split: str = "dev"


def load_labelled_lines(path: str | Path | None = None) -> list[LabelledLine]:
    """The hand-labelled lines (default: the packaged ``fidelity_lines.yaml``).

    Raises:
        ValueError: A line has an unknown role, act, sentiment, change or split.
    """
    with open(path or _DATA_FILE, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    out = []
    for i, item in enumerate(raw["lines"]):
        line = LabelledLine(
            text=str(item["text"]),
            role_ok=item["role"] == "ok",
            acts=frozenset(item.get("acts") or ()),
            sentiment=str(item["sentiment"]),
            change=str(item.get("change", "none")),
            name=str(item.get("name", "Maya")),
            why=item.get("why"),
            cue=item.get("cue"),
            split=str(item.get("split", "dev")),
        )
        bad = (
            item["role"] not in ("ok", "violation")
            or not line.acts <= set(USER_ACTS)
            or line.sentiment not in ("negative", "neutral", "mixed", "positive")
            or line.change not in ("better", "worse", "none")
            or line.split not in ("dev", "held_out")
            or (line.why is not None and line.why not in ROLE_VIOLATIONS)
        )
        if bad:
            raise ValueError(f"fidelity_lines.yaml: line {i} ({line.text!r}) has a bad label")
        out.append(line)
    return out


def _rate(flags: Sequence[bool]) -> float:
    return float(sum(flags) / len(flags)) if flags else math.nan


def labelled_accuracy(
    lines: Sequence[LabelledLine] | None = None, split: str | None = None
) -> dict[str, float]:
    """Each reader's accuracy on the hand-labelled lines.

    Keys: ``lines``; ``role`` (ok vs violation, every line), ``role_recall`` (violations
    found) and ``role_false_alarm`` (ok lines flagged); ``sentiment`` (the 4-way label) and
    ``change`` (better / worse / none), on the role-ok lines (what a supporter's line feels
    is not the user's emotion); ``band_agreement`` (the agree/disagree decision of
    :func:`emotion_agrees` for every role-ok line at every band, label against reading);
    ``act/<act>`` (the act detected or not, on the role-ok lines; ``act/disclose`` on the
    lines with a cue) and ``acts_exact`` (the whole set right).

    Args:
        lines: The lines (default: :func:`load_labelled_lines`).
        split: ``"dev"`` or ``"held_out"`` to read one split only.

    Example:
        >>> acc = labelled_accuracy()
        >>> acc["lines"] >= 60 and 0.0 <= acc["role"] <= 1.0
        True
    """
    lines = list(lines if lines is not None else load_labelled_lines())
    if split is not None:
        lines = [line for line in lines if line.split == split]
    roles = [(line, read_role(line.text, line.name)) for line in lines]
    ok_lines = [line for line in lines if line.role_ok]
    readings = {line.text: read_sentiment(line.text) for line in ok_lines}

    def said_change(r: SentimentReading) -> str:
        if r.better == r.worse:  # neither, or both ("better some days, worse others")
            return "none"
        return "better" if r.better else "worse"

    band_flags = []
    for line in ok_lines:
        r = readings[line.text]
        for excluded in _BAND_EXCLUDES.values():
            band_flags.append((line.sentiment in excluded) == (r.label in excluded))
    out: dict[str, float] = {
        "lines": float(len(lines)),
        "role": _rate([line.role_ok == r.ok for line, r in roles]),
        "role_recall": _rate([not r.ok for line, r in roles if not line.role_ok]),
        "role_false_alarm": _rate([not r.ok for line, r in roles if line.role_ok]),
        "sentiment": _rate([readings[line.text].label == line.sentiment for line in ok_lines]),
        "change": _rate([said_change(readings[line.text]) == line.change for line in ok_lines]),
        "band_agreement": _rate(band_flags),
    }
    detected = {line.text: read_acts(line.text, line.cue) for line in ok_lines}
    for act in USER_ACTS:
        pool = [line for line in ok_lines if act != "disclose" or line.cue]
        out[f"act/{act}"] = _rate(
            [(act in detected[line.text]) == (act in line.acts) for line in pool]
        )
    out["acts_exact"] = _rate([detected[line.text] == line.acts for line in ok_lines])
    return out


# ----------------------------------------------------------------------------- the table


def _repeats(line: str, earlier: Sequence[str]) -> bool:
    """Whether ``line`` says an earlier line of the same speaker again: the same first eight
    words, or nine tenths of its content words."""
    words = _WORD_RE.findall(_norm(line))
    mine = _content(line)
    for other in earlier:
        theirs = _WORD_RE.findall(_norm(other))
        if len(words) >= 8 and words[:8] == theirs[:8]:
            return True
        if len(mine) >= 4 and len(mine & _content(other)) >= 0.9 * len(mine):
            return True
    return False


@dataclass
class _Tally:
    lines: int = 0
    role_ok: list[bool] = field(default_factory=list)
    emotion: list[bool] = field(default_factory=list)
    act: list[bool] = field(default_factory=list)
    by_act: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    why: Counter = field(default_factory=Counter)


def fidelity_table(
    records: Sequence[Mapping[str, Any]],
    cards: Mapping[str, ScenarioCard] | None = None,
) -> dict[str, Any]:
    """Fidelity of recorded user lines, as one flat dict of rates (and counts).

    Each record is one user line with what the core decided: ``line``, ``act``, ``emotion``,
    ``change``, ``cue``, ``card_id``, ``episode`` (lines of one episode in order), ``turn``
    (0: the opening, read with ``act_agrees(..., opening=True)``) and
    optionally ``voice_check`` (``{"retries": k, "fallback": bool}`` from the voice),
    ``success`` and ``user_left`` on an episode's last line.

    Keys: ``lines``; ``role_violation`` (share of lines :func:`read_role` flags) and one
    ``role/<kind>`` share per kind; ``emotion_agreement``; ``act_agreement`` and
    ``repeated_line`` (lines after an episode's first that say an earlier line of the same
    episode again: a user stuck in a loop); ``act/<act>`` per act, ``act/opening`` for the
    openings (a line :func:`read_role` flags never agrees: in the supporter's
    role it performs no user act); ``thanks_at_success`` (successful episodes whose last line
    thanks) and ``goodbye_at_leave`` (episodes the user left whose last line leaves);
    ``prompt_to_line`` and ``line_to_line`` (the lexical persona/fact consistency, when
    ``cards`` is given); ``retried`` (share of lines the voice resampled), ``mean_retries``,
    ``fallback`` (share replaced by the template line) when records carry ``voice_check``;
    and the same three fidelity rates over the model's own lines only (``model_lines``,
    ``model/role_violation``, ``model/emotion_agreement``, ``model/act_agreement``: lines
    that were not a fallback).

    Example:
        >>> rows = [
        ...     {"line": "I feel so stuck.", "act": "vent", "emotion": 30.0, "change": 0.0,
        ...      "cue": None, "card_id": "c", "episode": 0},
        ...     {"line": "I'm sorry to hear that.", "act": "vent", "emotion": 32.0,
        ...      "change": 2.0, "cue": None, "card_id": "c", "episode": 0}]
        >>> t = fidelity_table(rows)
        >>> t["role_violation"], t["act_agreement"]
        (0.5, 0.5)
    """
    total, model = _Tally(), _Tally()
    if cards:  # records made from step infos name a card by its opaque key
        cards = {**cards, **{card.key: card for card in cards.values()}}
    names = {cid: card.persona.name for cid, card in (cards or {}).items()}
    checks = [r.get("voice_check") for r in records]
    episodes: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for r, check in zip(records, checks, strict=True):
        episodes[r.get("episode")].append(r)
        line = str(r["line"])
        role = read_role(line, names.get(str(r.get("card_id"))))
        emotion_ok = emotion_agrees(line, float(r["emotion"]), float(r.get("change") or 0.0))
        # A line in the supporter's role performs no user act, whatever its words.
        opening = r.get("turn") == 0
        act_ok = role.ok and act_agrees(line, str(r["act"]), r.get("cue"), opening=opening)
        tallies = [total] if check and check.get("fallback") else [total, model]
        for tally in tallies:
            tally.lines += 1
            tally.role_ok.append(role.ok)
            tally.why.update(role.why)
            tally.emotion.append(emotion_ok)
            tally.act.append(act_ok)
            tally.by_act["opening" if opening else str(r["act"])].append(act_ok)
    out: dict[str, Any] = {
        "lines": total.lines,
        "role_violation": 1.0 - _rate(total.role_ok),
        **{f"role/{kind}": total.why[kind] / max(total.lines, 1) for kind in ROLE_VIOLATIONS},
        "emotion_agreement": _rate(total.emotion),
        "act_agreement": _rate(total.act),
        **{f"act/{act}": _rate(total.by_act.get(act, [])) for act in ("opening", *USER_ACTS)},
    }
    out["repeated_line"] = _rate(
        [_repeats(str(x["line"]), [str(y["line"]) for y in lines[:i]])
         for lines in episodes.values() for i, x in enumerate(lines) if i]
    )  # fmt: skip
    ends = [lines[-1] for lines in episodes.values() if lines]
    out["thanks_at_success"] = _rate(
        [act_agrees(str(e["line"]), "thank") for e in ends if e.get("success")]
    )
    out["goodbye_at_leave"] = _rate(
        [act_agrees(str(e["line"]), "leave") for e in ends if e.get("user_left")]
    )
    if cards:
        p2l, l2l = [], []
        for lines in episodes.values():
            card = cards.get(str(lines[0].get("card_id")))
            if card is None:
                continue
            said = [str(x["line"]) for x in lines]
            p2l.extend(not card_contradictions(s, card) for s in said)
            l2l.extend(not reasons for reasons in history_contradictions(said, card))
        out["prompt_to_line"] = _rate(p2l)
        out["line_to_line"] = _rate(l2l)
    known = [c for c in checks if c]
    if known:
        out["retried"] = _rate([c.get("retries", 0) > 0 for c in known])
        out["mean_retries"] = float(sum(c.get("retries", 0) for c in known) / len(known))
        out["fallback"] = _rate([bool(c.get("fallback")) for c in known])
        out["model_lines"] = model.lines
        out["model/role_violation"] = 1.0 - _rate(model.role_ok)
        out["model/emotion_agreement"] = _rate(model.emotion)
        out["model/act_agreement"] = _rate(model.act)
    return out
