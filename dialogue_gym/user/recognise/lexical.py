"""The lexical recogniser: weighted cue patterns per strategy, fast and deterministic.

Example:
    >>> rec = LexicalRecogniser()
    >>> [r.strategy for r in rec.recognise(["It sounds like you feel really alone.",
    ...                                      "You could try writing it down tonight."])]
    ['Reflection of feelings', 'Providing Suggestions']
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    INFORMATION,
    OTHERS,
    QUESTION,
    REFLECTION,
    RESTATEMENT,
    SELF_DISCLOSURE,
    STRATEGIES,
    SUGGESTION,
)
from dialogue_gym.user.recognise.base import Recognition, pre_read

__all__ = ["LABEL_THRESHOLD", "MIN_SCORE", "LexicalRecogniser", "cue_hits", "normalise"]

_N = len(STRATEGIES)

_FEELINGS = (
    r"(?:lonely|alone|hurt|hurting|sad|sadness|angry|anger|mad|furious|frustrat\w*|scared|"
    r"afraid|frightened|frightening|terrified|anxious|anxiety|worried|worry|nervous|"
    r"overwhelm\w*|exhausted|exhausting|tired|drained|worn (?:out|down)|hopeless|helpless|"
    r"guilty|ashamed|shame|embarrass\w*|humiliat\w*|disappoint\w*|betrayed|stuck|lost|"
    r"painful|pain|griev\w*|upset|devastat\w*|heartbroken|scary|stress\w*|invisible|"
    r"unfair|rejected|jealous|confus\w*|torn|trapped|miserable|down|low|hard|tough|awful|"
    r"horrible|terrible|heavy|crushed|shaken|desperate|empty|numb|isolated|unappreciated|"
    r"misunderstood|small|insecure|unsure|uncertain|panick\w*|gutted)"
)
_WH = r"(?:what|how|when|why|where|who|which|whose)"
_AUX = (
    r"(?:do|does|did|is|are|was|were|have|has|had|can|could|would|will|should|may|might|"
    r"shall|am|isn't|aren't|don't|doesn't|didn't|haven't|hasn't|won't|wouldn't|can't)"
)

#: The cues: (strategy, weight, pattern). An utterance's score for a strategy is the sum of
#: the weights of its cues that match (each cue counts once).
_CUES: tuple[tuple[int, float, str], ...] = (
    # -- Question: interrogative syntax, requests to say more
    (QUESTION, 1.5, rf"(?:^|[.!?]\s+)(?:and |but |so |ok(?:ay)?,? )?{_WH}\b[^.!?]*$"),
    (QUESTION, 1.5, r"\btell me (?:more|about|a (?:bit|little))\b"),
    (
        QUESTION,
        1.5,
        r"\bi(?:'m| am) (?:curious|wondering)\b|\bi wonder (?:what|how|if|whether|why)",
    ),
    (
        QUESTION,
        1.0,
        r"\bcan i ask\b|\bwould you (?:like|mind) (?:to )?(?:tell|telling|share|sharing)",
    ),
    # -- Restatement or Paraphrasing: saying back what the person said
    (RESTATEMENT, 1.5, r"^(?:ok(?:ay)?,? |right,? )?so\b(?! sorry| much| many)"),
    (
        RESTATEMENT,
        3.0,
        r"\bif i(?:'ve| have)? (?:got (?:this|that|it|you) right|understand|follow|hear|heard)"
        r"|\blet me (?:see if|check|make sure|get this)|\bin other words\b|\bwhat i(?:'m| am) "
        r"hearing\b|\bto sum (?:it )?up\b|\bto summari[sz]e\b|\bthe way you describe\b|\bwhat "
        r"you(?:'re| are) describing\b|\byou(?:'re| are) saying\b|\bso basically\b",
    ),
    (RESTATEMENT, 2.5, r"\byou (?:said|mentioned|told me|described)\b"),
    (RESTATEMENT, 2.5, r"\b(?:is that right|did i get that right|have i got that right)\b"),
    (
        RESTATEMENT,
        1.5,
        r"^(?:so,? |okay,? so |right,? so )?(?:you(?:'ve| have)? (?:been|tried|lost|had|"
        r"put|found|started|stopped|got|gave|went|moved|done|applied|told|haven't|never)|"
        r"your (?:\w+ ){0,2}(?:said|told|started|keeps?|moved|borrowed|won't|hasn't|has|"
        r"ended|left|broke))\b",
    ),
    # -- Reflection of feelings: naming the person's feeling
    (
        REFLECTION,
        2.5,
        rf"\bsounds? (?:\w+ )?{_FEELINGS}\b|\bthat(?:'s| is) (?:a lot|so much|such a)\b",
    ),
    (REFLECTION, 1.0, r"\bsounds? (?:like|as (?:though|if))\b|\bseems? (?:like|that)\b"),
    (RESTATEMENT, 1.5, r"\bsounds? (?:like|as (?:though|if))\b|\bseems? (?:like|that)\b"),
    (
        REFLECTION,
        2.5,
        r"\byou (?:must|might|probably) (?:feel|be feeling|have felt|be)\b|\bi can (?:hear|"
        r"see|tell|imagine|feel|sense)\b|\bi (?:sense|imagine you)\b|\bi get the (?:sense|"
        r"feeling)\b|\byou (?:seem|sound)\b|\bno wonder you\b|\bthere(?:'s| is) (?:so much|a "
        r"lot of) (?:worry|pain|anger|sadness|frustration|fear|hurt|grief)\b",
    ),
    (REFLECTION, 2.0, r"\b(?:must|would) (?:be|have been|feel|leave you feeling|hurt)\b"),
    (
        REFLECTION,
        1.5,
        rf"\b(?:you(?:'re| are)|you feel|you're feeling|feeling) (?:\w+ ){{0,2}}{_FEELINGS}\b",
    ),
    (REFLECTION, 1.0, rf"\b{_FEELINGS}\b"),
    # -- Self-disclosure: the supporter's own experience
    (
        SELF_DISCLOSURE,
        3.0,
        r"\bi (?:went|was|used to|remember|struggled|failed|got|lost|once|had|also|cried|"
        r"spent|felt|found it|worked|scored|cared for|nursed)\b|\bi(?:'ve| have) (?:been (?:there|through)|had|felt|gone "
        r"through|struggled|experienced)\b|\bhappened to me\b|\bme too\b|\bsame here\b|\bi can "
        r"relate\b|\bin my (?:case|experience)\b|\bfrom my own\b|\bwhen i was\b|\byears ago,? i\b",
    ),
    (
        SELF_DISCLOSURE,
        1.5,
        r"\bmy (?:own |old )?(?:parents|mum|mom|mother|dad|father|sister|brother|friend|boss|"
        r"roommate|flatmate|ex|partner|husband|wife|family)\b|\bpersonally\b",
    ),
    # -- Affirmation and Reassurance: strengths, permission, hope
    (
        AFFIRMATION,
        3.0,
        r"\b(?:shows?|showed|took|takes) (?:real |a lot of |so much )?(?:strength|courage)\b|"
        r"\bbrave\b|\bproud of you\b|\byou deserve\b|\byou(?:'re| are) allowed\b|\bit(?:'s| is) "
        r"(?:okay|ok|alright|all right|fine) (?:to|if)\b|\bnot your fault\b|\bvalid\b|\byou(?:'re"
        r"| are) not (?:a burden|weak|alone|to blame|crazy|broken)\b|\bnot alone\b|\byou(?:'ll| "
        r"will) (?:get through|be okay|be ok|be fine|find)\b|\bi (?:believe|have faith) (?:in "
        r"you|that you)\b|\bi(?:'m| am) sure you\b|\b(?:will|can|is going to|'s going to) (?:get"
        r" better|be okay|be ok|be alright|be fine|improve)\b|\bgoing to be (?:okay|ok|alright|"
        r"fine)\b|\byou(?:'ve| have) got this\b|\bdon't be (?:so |too )?hard on yourself\b|\b"
        r"define(?:s)? you\b|\bnothing (?:wrong|shameful|to be ashamed)\b|\bgood (?:on|for) "
        r"you\b|\bwell done\b|\bi (?:really )?admire\b|\byou made the (?:best|right)\b|\bthe "
        r"right thing\b|\bevery right\b|\bgive yourself (?:more )?credit\b|\bdoesn't mean you\b",
    ),
    (
        AFFIRMATION,
        1.5,
        r"\b(?:strength|strong|capable|resilient|caring|kind|grace|courage\w*|honest|wise|"
        r"healthy (?:choice|decision|step)|smart|worth|care a lot)\b",
    ),
    (
        AFFIRMATION,
        2.5,
        r"\banyone (?:in your (?:position|shoes|place)|would)\b|\b(?:completely|perfectly|"
        r"totally|very) (?:normal|understandable|natural|human)\b|\bit(?:'s| is) (?:normal|"
        r"natural|understandable|human) to (?:feel|be|have)\b",
    ),
    (
        AFFIRMATION,
        1.0,
        r"^you(?:'ve| have| are|'re)? (?:clearly|obviously|already|really|doing|handled)\b",
    ),
    # -- Providing Suggestions: what the person could do
    (
        SUGGESTION,
        3.5,
        r"\b(?:maybe|perhaps) (?:you|try|it|a|an|the|writing|taking|talking|going)\b|"
        r"(?<!best )(?<!all )(?<!what )(?<!everything )\byou could\b(?! with| have)|\byou might (?:want|try|consider|like)\b|\bhave you (?:considered|thought "
        r"(?:about|of)|tried)\b|\bwhat if you\b|\bwhy not\b|\bhow about\b|\bwould it help\b|\b"
        r"i(?:'d| would) (?:suggest|recommend|encourage)\b|\bmy advice\b|\b(?:it|that|this) (?:might"
        r"|could|may|would) (?:help|be (?:worth|a good idea|helpful|good))\b|\bone (?:idea|"
        r"option|thing (?:you could|that might|to try))\b|\bfirst step\b|\bi think it would be"
        r" (?:good|helpful|worth)\b|\bit (?:can|could) help to\b",
    ),
    (
        SUGGESTION,
        2.5,
        r"(?:^|[.!?;]\s+)(?:please |just )?(?:try|consider|give yourself|take|write|keep|set|"
        r"start|talk to|reach out|go easy|make (?:a|time|sure)|turn|plan|avoid|limit|ask|"
        r"call|book|schedule|remember to)\b",
    ),
    (SUGGESTION, 1.0, r"\bnext time\b|\bif you can\b"),
    # -- Information: facts, figures, research
    (
        INFORMATION,
        4.0,
        r"\bresearch (?:shows|suggests|has (?:shown|found))\b|\bstudies (?:show|have (?:shown|"
        r"found)|suggest|found)\b|\bdid you know\b|\baccording to\b|\bexperts? (?:say|agree|"
        r"recommend)\b|\bthe (?:data|evidence|statistics)\b|\bsurveys? (?:show|suggest|found)\b|"
        r"\bit(?:'s| has| is) been shown\b|\bthere(?:'s| is) (?:a|even a) (?:term|name|word)\b|"
        r"\bone in (?:\d+|two|three|four|five|ten)\b",
    ),
    (
        INFORMATION,
        2.5,
        r"\b(?:is|are) (?:very |really |surprisingly |extremely |quite |pretty )?common\b|"
        r"\b(?:often |commonly )?(?:linked|associated) (?:to|with)\b|\bevidence\b|\bthe "
        r"average\b|\bin most (?:countries|cases|places|states)\b|\blegal(?:ly)?\b|\bnormal "
        r"for\b|\b(?:many|most|lots of|a lot of) (?:people|companies|universities|schools|"
        r"adults|employers)\b|\bthere (?:are|is) (?:free |local )?(?:helplines?|support groups?|"
        r"services?)\b|\btends? to\b|\busually\b|\bpercent\b|%|\bmost common\b|\b(?:for )?(?:some|"
        r"many|most) people(?: find| say| report| experience)?\b|\b(?:brain|hormones?|cortisol|"
        r"nervous system|scientists?|psycholog\w*|clinical|symptoms?)\b",
    ),
    (INFORMATION, 1.5, r"\b\d+\b|\b(?:actually|in fact|fact is)\b|\bhours?\b|\bmonths\b"),
    # -- Others: greetings, thanks, acknowledgements, closings
    (
        OTHERS,
        3.0,
        r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|welcome)\b|\bthank(?:s| you)\b|"
        r"\byou(?:'re| are) welcome\b|\b(?:bye|goodbye|take care)\b|\bnice to (?:meet|see)\b|\b"
        r"glad to hear\b|\b(?:lovely|nice|good) (?:chatting|talking)\b|\bno problem\b|"
        r"^(?:ok(?:ay)?|sure|right|got it|i see|hmm+|mm+(?:-hmm)?|mhm|that's fine|i understand)"
        r"[.!]*$|\bgo on\b|\btake (?:all )?(?:the|your) time\b|\bi(?:'m| am) (?:here|listening)\b",
    ),
)

#: Tie-break: the more specific strategy wins an equal score.
_PRIORITY = (
    SUGGESTION,
    INFORMATION,
    SELF_DISCLOSURE,
    AFFIRMATION,
    REFLECTION,
    RESTATEMENT,
    QUESTION,
    OTHERS,
)
_RANK = {s: i for i, s in enumerate(_PRIORITY)}
_COMPILED = tuple((s, w, re.compile(p, re.MULTILINE)) for s, w, p in _CUES)  # text is lower-cased
_SENTENCE_RE = re.compile(r"[^.!?\n;]*?(?:[.!?]+|\n|;|\s[-\u2013\u2014]\s|$)")
_WORD_RE = re.compile(r"^[a-z']{1,20}$")
_INTERROGATIVE_RE = re.compile(rf"^(?:and |but |so |okay,? |ok,? |then )?(?:{_WH}|{_AUX})\b")
#: A strategy enters ``labels`` at this score; the primary needs only to beat the others.
LABEL_THRESHOLD = 2.5
#: Below this best score the utterance is read as Others.
MIN_SCORE = 1.0


def normalise(text: str) -> str:
    """NFKC, straight quotes, single spaces, lower case."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"')
    return " ".join(text.replace("\u201d", '"').split()).lower()


def cue_hits(text: str) -> list[tuple[str, float, str, int]]:
    """Every occurrence of a cue phrase: ``(strategy, weight, phrase, start)``, in text order.

    A read-only view of the cues (``_CUES``) for audits (``dialogue_gym.evaluation.audit``
    counts them in a policy's words). ``phrase`` is the matched text of :func:`normalise`'s
    form of ``text`` and ``start`` its offset there; unlike :meth:`LexicalRecogniser.scores`,
    a cue found twice counts twice, and interrogative syntax is not a cue phrase.

    Example:
        >>> hits = cue_hits("It sounds like you feel alone. You could try.")
        >>> len(hits), hits[0], hits[-1]
        (5, ('Reflection of feelings', 1.0, 'sounds like', 3), ('Providing Suggestions', 3.5, 'you could', 31))
    """
    norm = normalise(text)
    hits = []
    for k, (strategy, weight, pattern) in enumerate(_COMPILED):
        for m in pattern.finditer(norm):
            phrase = m.group(0).strip(" .!?;,")
            if phrase:
                start = m.start() + m.group(0).index(phrase)
                hits.append((start, k, STRATEGIES[strategy], weight, phrase))
    return [(s, w, phrase, start) for start, _, s, w, phrase in sorted(hits)]


def _question_score(text: str) -> float:
    """Interrogative clauses ending in ``?`` score 3; declarative ones (a check) 1."""
    best = 0.0
    for sentence in _SENTENCE_RE.findall(text):
        sentence = sentence.strip()
        if not sentence.endswith("?"):
            continue
        words = [w for w in re.split(r"[\s,;:\-]+", sentence.rstrip("?")) if w]
        if sum(bool(_WORD_RE.match(w)) for w in words) < 2:
            continue  # not language (random characters, a lone "?")
        best = max(best, 3.0 if _INTERROGATIVE_RE.match(sentence) else 1.0)
    return best


_TOKEN_RE = re.compile(r"^[\"'(\[]*[^\W\d_][^\W\d_'\u2019-]{0,19}[\"'.,!?;:)\]]*$")


def _looks_like_language(text: str) -> bool:
    """Whether most of ``text`` is made of word-like tokens (random characters are not).

    Example:
        >>> _looks_like_language("I hear you."), _looks_like_language("x7#Qz" * 10)
        (True, False)
    """
    tokens = text.split()
    total = sum(len(t) for t in tokens)
    if total < 12:
        return True  # too short to judge: the cues decide
    return sum(len(t) for t in tokens if _TOKEN_RE.match(t)) >= 0.5 * total


class LexicalRecogniser:
    """Read acts from cue words and sentence form; fast and deterministic.

    Each strategy has weighted cue patterns (see ``_CUES`` in this module); an utterance's
    score per strategy is the sum of the weights of its cues that match, plus interrogative
    syntax for Question (a clause ending in ``?`` that opens with a wh-word or an auxiliary
    scores 3, a declarative one ending in ``?`` — a check — 1). The primary act is the
    best-scoring strategy (ties go to the more specific one: Suggestions, Information,
    Self-disclosure, Affirmation, Reflection, Restatement, Question, Others); below a score of
    ``MIN_SCORE`` the utterance is Others. Every strategy scoring at least
    ``LABEL_THRESHOLD`` is also a label.

    Example:
        >>> r = LexicalRecogniser().recognise(["I went through something similar. How are "
        ...                                    "you holding up?"])[0]
        >>> r.names
        ('Self-disclosure', 'Question')
    """

    kind = "lexical"

    def describe(self) -> dict[str, Any]:
        """What reads the acts, for ``info``."""
        return {"recogniser": self.kind}

    def scores(self, text: str) -> list[float]:
        """The per-strategy scores of one utterance (``STRATEGIES`` order)."""
        norm = normalise(text)
        out = [0.0] * _N
        for strategy, weight, pattern in _COMPILED:
            if pattern.search(norm):
                out[strategy] += weight
        out[QUESTION] += _question_score(norm)
        return out

    def read(self, text: str) -> Recognition:
        """Recognise one utterance."""
        early = pre_read(text)
        if early is not None:
            return early
        return self._read_cues(text)

    def _read_cues(self, text: str) -> Recognition:
        if not _looks_like_language(text):
            return Recognition(OTHERS, (OTHERS,), "not recognisable as language", "lexical")
        scores = self.scores(text)
        order = sorted(range(_N), key=lambda s: (-scores[s], _RANK[s]))
        primary = order[0]
        if scores[primary] < MIN_SCORE:
            return Recognition(OTHERS, (OTHERS,), "no support-strategy cue", "lexical")
        labels = [primary] + [s for s in order[1:] if scores[s] >= LABEL_THRESHOLD and s != OTHERS]
        reason = f"{STRATEGIES[primary]} cues (score {scores[primary]:.1f})"
        return Recognition(primary, tuple(labels), reason, "lexical")

    def recognise(
        self, texts: Sequence[str], seeds: Sequence[int] | None = None
    ) -> list[Recognition]:
        """Recognise a batch of utterances (``seeds`` is accepted for the protocol, unused)."""
        return [self.read(t) for t in texts]
