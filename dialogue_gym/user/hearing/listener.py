"""The listener: what the simulated user perceives of how an agent's turn was said.

A :class:`Listener` reads a turn, in the context of the conversation (the user's card, their last
words, the agent's earlier turns, the acts the recogniser read), into a :class:`Heard`: a
:class:`~dialogue_gym.core.delivery.Delivery` for the affective core and the evidence behind
it for ``info["heard"]``. Five parts, each measured in ``docs/simulator.md#the-hearing-user``:

- **tone** (hostility, coldness, warmth): phrases of blame, mockery, dismissal, minimising,
  sarcasm and harmful advice, and of warmth, from ``data/hearing.yaml``, a negation or a
  reported self-view ("you said you feel stupid") cancelling them; the embedding listener adds a
  second opinion from a learned tone model (:mod:`~dialogue_gym.user.hearing.tone_model`:
  contempt said in words no list holds is heard as cold, and when the model is sure, hostile);
- **relevance**: whether the turn engages with what the user said and their situation. The
  embedding listener: the best similarity of the turn to the user's last words, their card's
  situation and topic, or a supportive turn in general; the lexical listener: shared topic words,
  words of feeling or support, warmth;
- **coherence**: one clear act against a pile of stock cue phrases (sentences that each carry a
  cue formula of the lexical recogniser) or many strategies in one turn;
- **repetition**: word overlap with the agent's own earlier turns;
- **specificity**: words of this user's situation (topic, situation, facts, their name); a
  question that one of the card's facts answers gets that answer.

Everything is a pure function of its inputs: no randomness, the same reading every time.

Example:
    >>> from dialogue_gym.core.scenario import load_scenarios
    >>> card = load_scenarios("test")[0]
    >>> listener = LexicalListener()
    >>> context = HearingContext(card, "I can't stop thinking about the scholarship.")
    >>> [h.delivery.tone for h in listener.hear(
    ...     ["So basically this is your own fault.", "I'm so sorry, that sounds exhausting."],
    ...     [context, context])]
    ['hostile', 'warm']
    >>> listener.hear(["What average do you need?"], [context])[0].delivery.answer
    "Seventy percent, and I'm on sixty-eight."
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dialogue_gym.core.delivery import Delivery
from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.user.hearing.lexicon import content_words, lexicon, sentences, tone
from dialogue_gym.user.recognise.lexical import cue_hits, normalise

__all__ = [
    "EmbeddingListener",
    "Heard",
    "HearingContext",
    "LexicalListener",
    "Listener",
]

#: A sentence carrying a cue formula at least this heavy counts as a stock phrase.
_STOCK_WEIGHT = 1.0
#: Coherence lost per stock sentence beyond the first, and per strategy beyond two.
_PER_STOCK, _PER_ACT = 0.3, 0.15
_WORDS = re.compile(r"[a-z']+")
#: The similarities ``info["heard"]["scores"]`` reports (0.0 where the listener has none).
_SCORE_KEYS = ("context", "support", "elsewhere", "hostile")
#: The hostility the tone model's opinion gives a turn it hears as hostile.
_MODEL_HOSTILITY = 0.6
_FEELING = re.compile(
    r"\b(?:feel\w*|felt|hurt\w*|sad\w*|alone|lonely|scared|afraid|fear\w*|anxi\w*|worr\w*|"
    r"stress\w*|overwhelm\w*|exhaust\w*|tired|drained|worn|hopeless|helpless|guilt\w*|shame\w*|"
    r"ashamed|embarrass\w*|angry|anger|upset|pain\w*|griev\w*|heartbr\w*|hard|tough|heavy|"
    r"cop(?:e|ing)|deal\w*|handl\w*|carry\w*|going through|struggl\w*|hold(?:ing)? up|"
    r"manag\w*|support\w*|help\w*|talk\w*|happen\w*|worst|hardest|sleep\w*|night\w*|cry\w*|"
    r"strength|strong|brave|proud|courage|understand\w*|sense|normal|okay|through this|"
    r"been there|same thing|similar|myself|when i|i remember|step|plan|options?|resources?|"
    r"counsel\w*|therap\w*|doctor|gp|helpline|friend\w*|family)\b"
)


@dataclass(frozen=True)
class HearingContext:
    """What the user hears a turn against.

    Attributes:
        card: The user's scenario card (topic, situation, facts, name); ``None`` when it is not
            known (an audit of logged words): the turn is then heard against the user's words
            alone.
        user_utterance: The user's last words.
        earlier: The agent's earlier turns in this conversation, oldest first.
        acts: The strategies the recogniser read in this turn (coherence counts them).
    """

    card: ScenarioCard | None
    user_utterance: str = ""
    earlier: tuple[str, ...] = ()
    acts: tuple[int, ...] = ()


@dataclass(frozen=True)
class Heard:
    """One turn as the user heard it: the delivery and the evidence for it.

    Attributes:
        delivery: What the affective core appraises.
        source: The listener's kind (``"embedding"`` or ``"lexical"``).
        phrases: ``(category, text)`` of the tone phrases found.
        shared: The topic words the turn shares with the user's situation.
        stock_sentences: Sentences carrying a stock cue formula.
        n_acts: Strategies read in the turn.
        repeats: Index of the earlier agent turn it repeats most, or None.
        fact: The card's fact question the turn asked, or None.
        scores: The similarities behind relevance and tone (embedding listener), rounded.
    """

    delivery: Delivery
    source: str
    phrases: tuple[tuple[str, str], ...] = ()
    shared: tuple[str, ...] = ()
    stock_sentences: int = 0
    n_acts: int = 0
    repeats: int | None = None
    fact: str | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def to_info(self) -> dict[str, Any]:
        """A plain (JSON-friendly) dict for ``info["heard"]``."""
        d = self.delivery
        return {
            "tone": d.tone,
            "hostility": d.hostility,
            "coldness": d.coldness,
            "relevance": d.relevance,
            "coherence": d.coherence,
            "repetition": d.repetition,
            "specificity": d.specificity,
            # "" and -1 rather than None: a vector env stacks each key across users, and one
            # type per key keeps that working.
            "answer": d.answer or "",
            "source": self.source,
            "phrases": " | ".join(f"{c}: {t}" for c, t in self.phrases),
            "shared": " ".join(self.shared),
            "stock_sentences": self.stock_sentences,
            "acts": self.n_acts,
            "repeats": -1 if self.repeats is None else self.repeats,
            "fact": self.fact or "",
            "scores": {k: float(self.scores.get(k, 0.0)) for k in _SCORE_KEYS},
        }


def _label(hostility: float, coldness: float, warmth: float) -> str:
    if hostility >= 0.5:
        return "hostile"
    if coldness >= 0.4 or hostility >= 0.25:
        return "cold"
    if warmth >= 0.4:
        return "warm"
    return "neutral"


def _card_words(card: ScenarioCard) -> frozenset[str]:
    parts = [card.topic, card.situation, card.persona.name, card.problem_type]
    parts += [f"{f.question} {f.answer}" for f in card.facts]
    return frozenset().union(*(content_words(p) for p in parts))


def _refs(context: HearingContext) -> list[str]:
    """What a turn is compared with for relevance: the user's words, their situation, topic."""
    card = context.card
    refs = [context.user_utterance] + ([card.situation, card.topic] if card is not None else [])
    return [r for r in refs if r]


def _jaccard(a: str, b: str) -> float:
    wa, wb = set(_WORDS.findall(normalise(a))), set(_WORDS.findall(normalise(b)))
    if len(wa) < 3 or len(wb) < 3:
        return 1.0 if wa and wa == wb else 0.0
    return len(wa & wb) / len(wa | wb)


class Listener:
    """The listener protocol's shared parts; :meth:`hear` reads a batch of turns.

    Subclasses give :meth:`_relevance` (and may add a tone opinion in :meth:`_tone_opinion`).
    """

    kind = "listener"

    def __init__(self) -> None:
        self._card_cache: dict[str, frozenset[str]] = {}

    def describe(self) -> dict[str, Any]:
        """What reads the turns, for ``info["voice_config"]``."""
        return {"listener": self.kind}

    def hear(self, texts: Sequence[str], contexts: Sequence[HearingContext]) -> list[Heard]:
        """Read each turn in its context (one per text, in order)."""
        if len(texts) != len(contexts):
            raise ValueError(f"{len(texts)} texts but {len(contexts)} contexts")
        self._prepare(texts, contexts)
        return [self._hear_one(t, c) for t, c in zip(texts, contexts, strict=True)]

    # -- the parts ----------------------------------------------------------------------

    def _prepare(self, texts: Sequence[str], contexts: Sequence[HearingContext]) -> None:
        """Batch work before the turns are read one by one (the embedding listener encodes)."""

    def _relevance(
        self, text: str, context: HearingContext, shared: int, warmth: float
    ) -> tuple[float, dict]:
        raise NotImplementedError

    def _tone_opinion(self, text: str, context: HearingContext) -> tuple[float, float, dict]:
        """A second opinion on tone: (hostility, coldness, scores); none by default."""
        return 0.0, 0.0, {}

    def _card(self, card: ScenarioCard | None) -> frozenset[str]:
        if card is None:
            return frozenset()
        words = self._card_cache.get(card.id)
        if words is None:
            words = self._card_cache[card.id] = _card_words(card)
        return words

    def _fact(self, text: str, context: HearingContext) -> tuple[str | None, str | None]:
        if "?" not in text or context.card is None:
            return None, None
        asked = content_words(text)
        best, best_share = None, 0.0
        for fact in context.card.facts:
            wanted = content_words(fact.question)
            if not wanted:
                continue
            share = len(asked & wanted) / len(wanted)
            if share > best_share:
                best, best_share = fact, share
        if best is not None and best_share >= 0.5:
            return best.question, best.answer
        return None, None

    def _hear_one(self, text: str, context: HearingContext) -> Heard:
        if not text.strip():
            silent = Delivery(tone="cold", coldness=1.0, relevance=0.0)
            return Heard(silent, self.kind)
        found = tone(text)
        opinion, cold_opinion, tone_scores = self._tone_opinion(text, context)
        # A second opinion never overrules warmth the words show.
        warm = found.warmth >= 0.4
        hostility = found.hostility if warm else max(found.hostility, opinion)
        coldness = found.coldness if warm else max(found.coldness, cold_opinion)
        words = content_words(text)
        shared = sorted(words & self._card(context.card))
        relevance, scores = self._relevance(text, context, len(shared), found.warmth)
        stock = sum(
            1
            for s in sentences(text)
            if any(weight >= _STOCK_WEIGHT for _, weight, _, _ in cue_hits(s))
        )
        n_acts = len(context.acts)
        coherence = 1.0 - _PER_STOCK * max(0, stock - 1) - _PER_ACT * max(0, n_acts - 2)
        coherence = round(min(1.0, max(0.1, coherence)), 6)
        overlaps = [_jaccard(text, e) for e in context.earlier]
        repeats = int(np.argmax(overlaps)) if overlaps and max(overlaps) > 0.5 else None
        repetition = round(max(0.0, (max(overlaps) - 0.5) / 0.5), 6) if repeats is not None else 0.0
        fact, answer = self._fact(text, context)
        specificity = round(min(1.0, len(shared) / 2.0 + (0.5 if fact else 0.0)), 6)
        delivery = Delivery(
            tone=_label(hostility, coldness, found.warmth),
            hostility=round(hostility, 6),
            coldness=round(coldness, 6),
            relevance=relevance,
            coherence=coherence,
            repetition=repetition,
            specificity=specificity,
            answer=answer,
        )
        return Heard(
            delivery,
            self.kind,
            phrases=found.phrases,
            shared=tuple(shared),
            stock_sentences=stock,
            n_acts=n_acts,
            repeats=repeats,
            fact=fact,
            scores={**scores, **tone_scores},
        )


class LexicalListener(Listener):
    """Words only: shared topic words, words of feeling or support, warmth (bit-exact).

    Relevance is 1 when the turn shares a word with the user's situation or last words, 0.8
    when it speaks of feelings, coping or support, or is warm, and 0.2 otherwise.
    """

    kind = "lexical"

    def _relevance(
        self, text: str, context: HearingContext, shared: int, warmth: float
    ) -> tuple[float, dict]:
        # Stopwords again: a stem ("feels" -> "feel") can be one.
        said = content_words(context.user_utterance) - lexicon().stopwords
        echoes = content_words(text) & said
        if shared or echoes:
            return 1.0, {}
        if _FEELING.search(normalise(text)) or warmth >= 0.4:
            return 0.8, {}
        return 0.2, {}


class EmbeddingListener(Listener):
    """all-MiniLM-L6-v2 similarities for relevance and a second opinion on tone.

    Relevance maps a margin from [``low``, ``high``] onto [0, 1]: the best of the turn's
    similarities to the user's last words, the card's situation and topic, and the supportive
    prototypes, less its similarity to chatter about something else (the off-topic
    prototypes); shared topic words lift it to 1 as in the lexical listener.

    Args:
        low: Margin at or below which a turn is about something else (relevance 0).
        high: Margin at or above which it fully engages (relevance 1).
        cold_p: The tone model's probability of contempt from which a turn is heard as cold
            (coldness rising to 1 at ``hostile_p``).
        hostile_p: ...and from which it is heard as hostile (hostility 0.6).
    """

    kind = "embedding"

    def __init__(
        self,
        low: float = -0.1,
        high: float = 0.1,
        cold_p: float = 0.6,
        hostile_p: float = 0.7,
    ) -> None:
        super().__init__()
        from dialogue_gym.user.hearing.embedding import SentenceEncoder

        self.low, self.high = low, high
        self.cold_p, self.hostile_p = cold_p, hostile_p
        self.encoder = SentenceEncoder.shared()
        lex = lexicon()
        self._support = self.encoder.encode(list(lex.support_prototypes))
        self._elsewhere = self.encoder.encode(list(lex.off_topic_prototypes))

    def describe(self) -> dict[str, Any]:
        return {
            "listener": self.kind,
            "model": "sentence-transformers/all-MiniLM-L6-v2",
            "low": self.low,
            "high": self.high,
            "cold_p": self.cold_p,
            "hostile_p": self.hostile_p,
        }

    def _prepare(self, texts: Sequence[str], contexts: Sequence[HearingContext]) -> None:
        batch = [t for t in texts if t.strip()]
        for c in contexts:
            batch += _refs(c)
        self.encoder.encode([t for t in batch if t])  # one forward pass for what is new

    def _relevance(
        self, text: str, context: HearingContext, shared: int, warmth: float
    ) -> tuple[float, dict]:
        from dialogue_gym.user.hearing.embedding import similarity

        refs = _refs(context)
        turn = self.encoder.encode([text])
        to_context = float(similarity(turn, self.encoder.encode(refs)).max()) if refs else 0.0
        to_support = float(similarity(turn, self._support).max())
        elsewhere = float(similarity(turn, self._elsewhere).max())
        margin = max(to_context, to_support) - elsewhere
        relevance = min(1.0, max(0.0, (margin - self.low) / (self.high - self.low)))
        if shared:
            relevance = 1.0
        scores = {"context": to_context, "support": to_support, "elsewhere": elsewhere}
        return round(relevance, 3), scores

    def _tone_opinion(self, text: str, context: HearingContext) -> tuple[float, float, dict]:
        from dialogue_gym.user.hearing.tone_model import fitted

        p = round(float(fitted().hostile_probability([text])[0]), 3)
        hostility = _MODEL_HOSTILITY if p >= self.hostile_p else 0.0
        span = self.hostile_p - self.cold_p
        coldness = min(1.0, (p - self.cold_p) / span) if p >= self.cold_p else 0.0
        return hostility, round(coldness, 3), {"hostile": p}
