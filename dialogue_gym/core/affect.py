"""The affective core: the simulated user's hidden state and how each agent act moves it.

The core is a small, deterministic-given-the-seed appraisal model (docs/simulator.md). Each agent
turn is one of ESConv's eight strategies; the appraisal maps (state, act) to an emotion
change clipped to ``[-max_change, max_change]``, new understanding/trust/resolution, the
user's next act and a short first-person reason (SAGE's emotion reasoning). Every number
it uses comes from :class:`~dialogue_gym.core.config.SimConfig`.

Example:
    >>> import numpy as np
    >>> from dialogue_gym.core.scenario import load_scenarios
    >>> card = load_scenarios("test")[0]
    >>> noise = np.random.default_rng(0).standard_normal(10)
    >>> core = AffectiveCore(card, SimConfig(), noise)
    >>> appraisal = core.step(0)  # a Question
    >>> appraisal.change <= 10 and core.state.understanding > 0
    True
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.delivery import Delivery
from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    COMFORT_ACTS,
    GROUNDING_ACTS,
    HELP_ACTS,
    NEEDS,
    PLUTCHIK,
    QUESTION,
    RATIONAL_NEEDS,
    SELF_DISCLOSURE,
    STRATEGIES,
)

#: What code above the env may use of a user model it got from ``env.unwrapped.fork_user()``
#: (part of the published simulator view, see ``dialogue_gym.envs.empathy``): read ``card``,
#: ``config``, ``need``, ``state``, ``resolvers``; call ``ready_for_help()``,
#: ``intensities()``, ``step(act)`` and ``fork(noise=None)``.
USER_MODEL_VIEW: tuple[str, ...] = (
    "card",
    "config",
    "need",
    "state",
    "resolvers",
    "ready_for_help",
    "intensities",
    "step",
    "fork",
)

_NEED_INDEX = {need: i for i, need in enumerate(NEEDS)}
_N_STRATEGIES = len(STRATEGIES)

#: How each ESConv emotion type loads on Plutchik's negative emotions
#: (fear, surprise, sadness, disgust, anger, anticipation).
_EMOTION_PROFILE: dict[str, dict[str, float]] = {
    "anxiety": {"fear": 0.8, "anticipation": 0.6, "sadness": 0.2},
    "depression": {"sadness": 0.9, "disgust": 0.3, "fear": 0.2},
    "sadness": {"sadness": 1.0, "surprise": 0.1},
    "anger": {"anger": 1.0, "disgust": 0.4},
    "fear": {"fear": 1.0, "surprise": 0.3, "anticipation": 0.3},
    "disgust": {"disgust": 1.0, "anger": 0.3},
    "shame": {"disgust": 0.6, "sadness": 0.6, "fear": 0.3},
    "nervousness": {"fear": 0.6, "anticipation": 0.7, "surprise": 0.2},
}
_PLUTCHIK_INDEX = {name: i for i, name in enumerate(PLUTCHIK)}
_JOY, _TRUST, _ANTICIPATION = (_PLUTCHIK_INDEX[k] for k in ("joy", "trust", "anticipation"))


@dataclass
class UserState:
    """The hidden state of the simulated user. Mutable; :meth:`copy` for look-ahead.

    Attributes:
        emotion: Emotion score in [0, 100].
        trust: Trust in the agent, in [0, 1].
        understanding: How much of the hidden need the agent has drawn out, in [0, 1].
        resolved: Whether the hidden need has been met.
        pending_relief: Emotion lift from resolution not yet released (the per-turn clip
            releases a large uplift over several turns).
        revealed: Per need cue of the card, whether the user has revealed it.
        evidence: Revealed evidence per need, in ``NEEDS`` order, each in [0, 1].
        act_counts: How often the agent used each strategy.
        last_act: The agent's previous strategy, or -1 before the first turn.
        run_length: How many times in a row ``last_act`` has been used.
        comfort_count: Comforting acts so far (for diminishing returns).
        turn: Agent turns taken.
        user_act: The user's last act (one of ``USER_ACTS``).
        left: Whether the user has left.
    """

    emotion: float
    trust: float
    understanding: float = 0.0
    resolved: bool = False
    pending_relief: float = 0.0
    revealed: list[bool] = field(default_factory=list)
    evidence: list[float] = field(default_factory=lambda: [0.0] * len(NEEDS))
    act_counts: list[int] = field(default_factory=lambda: [0] * _N_STRATEGIES)
    last_act: int = -1
    run_length: int = 0
    comfort_count: int = 0
    turn: int = 0
    user_act: str = "vent"
    left: bool = False

    def copy(self) -> UserState:
        """An independent copy (lists copied, scalars shared).

        A subclass that adds fields extends it.
        """
        # Look-ahead copies a state per simulated future. Field by field, in __init__'s
        # order, not through __dict__ (copy.copy's way): touching __dict__ turns CPython's
        # compact instance layout into a plain dict, and every later access of the copy is
        # then slower (a core step on such a copy took 1.5x as long).
        new = object.__new__(type(self))
        new.emotion = self.emotion
        new.trust = self.trust
        new.understanding = self.understanding
        new.resolved = self.resolved
        new.pending_relief = self.pending_relief
        new.revealed = self.revealed.copy()
        new.evidence = self.evidence.copy()
        new.act_counts = self.act_counts.copy()
        new.last_act = self.last_act
        new.run_length = self.run_length
        new.comfort_count = self.comfort_count
        new.turn = self.turn
        new.user_act = self.user_act
        new.left = self.left
        return new


# Not frozen: a frozen dataclass costs a microsecond to build (one attribute at a time through
# object.__setattr__), and one is built per core step, the look-ahead's unit. Treat it as
# read-only; dataclasses.replace makes a changed copy.
@dataclass(slots=True)
class Appraisal:
    """What one agent act did to the user (read-only by convention).

    Attributes:
        act: The agent's strategy index.
        emotion_before: Emotion before the act.
        emotion: Emotion after the act.
        change: ``emotion - emotion_before`` (clipped to the config's ``max_change``;
            smaller when the score hits 0 or 100).
        user_act: The user's next act (one of ``USER_ACTS``).
        reason: The user's first-person reason for the change (SAGE's emotion reasoning).
        cue: Text of a need cue revealed by this act, if any.
        resolved_now: Whether this act met the hidden need.
        premature: Whether this act was help given before it could land.
        success: The need is resolved and emotion reached the success threshold.
        left: The user left (emotion fell to the leave threshold).
    """

    act: int
    emotion_before: float
    emotion: float
    change: float
    user_act: str
    reason: str
    cue: str | None
    resolved_now: bool
    premature: bool
    success: bool
    left: bool


class AffectiveCore:
    """A simulated user's affective dynamics for one scenario card.

    Args:
        card: The scenario card (persona, hidden need, cues).
        config: The simulator's assumptions.
        noise: Standard-normal draws, one per turn (``noise[t]`` perturbs turn ``t``); the env
            draws them from its ``np_random`` at reset. Drawing them up front makes the core's
            future a function of its state, so forks for look-ahead copy no generator. Turns
            beyond ``len(noise)`` get no noise.
    """

    def __init__(self, card: ScenarioCard, config: SimConfig, noise: Sequence[float]) -> None:
        self.card = card
        self.config = config
        self.noise = noise
        self.resistance = config.resistance[card.difficulty]
        self.volatility = config.volatility[card.persona.character_type]
        self.resolvers = frozenset(config.resolvers[card.hidden_need])
        self._profile = _profile_vector(card.emotion_type)
        trust = config.initial_trust[card.persona.character_type] - 0.2 * self.resistance
        self.state = UserState(
            emotion=float(card.initial_emotion),
            trust=min(max(trust, 0.0), 1.0),
            revealed=[False] * len(card.need_cues),
        )

    @property
    def need(self) -> str:
        """The hidden need."""
        return self.card.hidden_need

    def ready_for_help(self) -> bool:
        """Whether the agent understands enough, and is trusted enough, for help to land."""
        s, c = self.state, self.config
        return s.understanding >= c.understanding_needed and s.trust >= c.trust_needed

    def step(self, act: int, delivery: Delivery | None = None) -> Appraisal:
        """Appraise one agent act, update the state, and say how the user responds.

        Args:
            act: Index into ``STRATEGIES``.
            delivery: How the act was said, as the user heard it (the hearing text env);
                ``None``, as in the strategy env, appraises the act alone, exactly as before
                deliveries existed. A hostile turn costs emotion and trust and may make the
                user leave, an off-topic one costs patience; neither does what its strategy
                would. Otherwise the strategy's effect is scaled by the delivery's quality
                (:meth:`quality`), and a muddled turn cannot meet the need.

        Returns:
            The appraisal of the act.
        """
        s, c = self.state, self.config
        before = s.emotion
        delta = 0.0
        cue = None
        resolved_now = premature = walkout = False
        quality, clear = 1.0, True
        if delivery is not None:
            quality, clear = self.quality(delivery), delivery.coherence >= c.clarity_needed

        hostile = delivery is not None and delivery.hostile(c.hostile_at)
        off_topic = delivery is not None and not hostile and delivery.relevance < c.relevance_needed
        if hostile:
            delta = -c.hostility_penalty * delivery.hostility  # type: ignore[union-attr]
            s.trust = max(0.0, s.trust - c.hostility_trust_loss * delivery.hostility)  # type: ignore[union-attr]
            walkout = s.trust <= c.walkout_trust
            reason = "That was hurtful. They are not on my side at all."
        elif off_topic:
            delta = -c.off_topic_penalty
            reason = "That has nothing to do with what I told them."
        elif act in GROUNDING_ACTS:
            delta, reason, cue = self._explore(act, quality)
        elif act in COMFORT_ACTS or act == SELF_DISCLOSURE:
            if act in self.resolvers and not s.resolved and self.ready_for_help() and clear:
                resolved_now, reason = True, "That is exactly what I needed to hear."
            elif act == SELF_DISCLOSURE:
                delta, reason = self._disclose(quality)
            else:
                delta, reason = self._comfort(act, quality)
        elif act in HELP_ACTS:
            if not self.ready_for_help():
                premature = True
                delta = -c.premature_penalty
                s.trust = max(0.0, s.trust - c.premature_trust_loss)
                reason = "They jumped to advice before they understood what I'm going through."
            elif act in self.resolvers and not s.resolved and clear:
                resolved_now, reason = True, "That is exactly the help I needed."
            elif act in self.resolvers and not s.resolved:
                reason = "I can't tell what they are actually suggesting."
            else:
                delta = -c.wrong_help_penalty
                reason = "That isn't really what I need right now."
        else:
            delta = c.others_effect
            reason = "That doesn't seem to have much to do with what I'm going through."
        if not (clear or hostile or off_topic):
            reason += " So many stock phrases at once; I'm not sure what they mean."

        repeated = act == s.last_act
        s.run_length = s.run_length + 1 if repeated else 1
        s.last_act = act
        s.act_counts[act] += 1
        s.turn += 1
        if repeated:
            delta -= c.repetition_penalty
            reason += " And they keep doing the same thing."

        if resolved_now:
            s.resolved = True
            s.pending_relief += c.resolution_uplift
        if not s.resolved:
            delta -= c.drift * (s.emotion - self.card.initial_emotion)
        # The user's act answers what the agent did, not the noise of the moment.
        rule_delta = delta
        if s.turn - 1 < len(self.noise):
            delta += c.noise * self.volatility * float(self.noise[s.turn - 1])
        # The resolution's uplift is released within the per-turn bound, the rest later.
        relief = min(s.pending_relief, max(0.0, c.max_change - delta))
        s.pending_relief -= relief
        delta = min(max(delta + relief, -c.max_change), c.max_change)

        if not 0.0 <= s.emotion + delta <= 100.0:
            delta = min(max(s.emotion + delta, 0.0), 100.0) - s.emotion
        s.emotion += delta
        success = s.resolved and s.emotion >= c.success_threshold
        left = not success and (s.emotion <= c.leave_threshold or walkout)
        s.left = left
        s.user_act = self._user_act(cue, resolved_now, premature, success, left, rule_delta)
        return Appraisal(
            act=act,
            emotion_before=before,
            emotion=s.emotion,
            change=delta,
            user_act=s.user_act,
            reason=reason,
            cue=cue,
            resolved_now=resolved_now,
            premature=premature,
            success=success,
            left=left,
        )

    def quality(self, delivery: Delivery) -> float:
        """The factor a well-meant turn's effect is scaled by, for how it was delivered.

        Muddle, verbatim repetition and a cold tone weaken it; being about this user's
        situation strengthens it. 1.0 for a clear, neutral, generic first saying.

        Example:
            >>> from dialogue_gym.core.scenario import load_scenarios
            >>> core = AffectiveCore(load_scenarios("test")[0], SimConfig(), ())
            >>> core.quality(Delivery()), core.quality(Delivery(coherence=0.5)) < 1.0
            (1.0, True)
        """
        c = self.config
        return (
            (1.0 - c.muddle_weight * (1.0 - delivery.coherence))
            * (1.0 - c.repeat_damping * delivery.repetition)
            * (1.0 - c.cold_discount * delivery.coldness)
            * (1.0 + c.specific_bonus * delivery.specificity)
        )

    def _explore(self, act: int, quality: float = 1.0) -> tuple[float, str, str | None]:
        s, c = self.state, self.config
        if s.understanding >= c.overexplore_at:
            return -c.overexplore_penalty, "I've already told them everything that matters.", None
        gain = c.explore_gain * (1.0 - self.resistance)
        if act == QUESTION:
            lift, reason = c.explore_lift, "They asked about it, so I could say more."
        else:
            gain *= c.restatement_factor
            lift, reason = c.restatement_lift, "They put it in their own words; I feel heard."
        # quality is 1.0 without a delivery: multiplying by it leaves every float as it was.
        gain *= quality
        lift *= quality
        s.understanding = min(1.0, s.understanding + gain)
        s.trust = min(1.0, s.trust + c.trust_gain)
        cue = self._reveal_cues()
        if cue is not None:
            reason += " I told them something I hadn't said yet."
        return lift, reason, cue

    def _reveal_cues(self) -> str | None:
        """Reveal every cue whose threshold understanding now passes; return the last one's text."""
        s = self.state
        text = None
        for i, need_cue in enumerate(self.card.need_cues):
            if not s.revealed[i] and s.understanding >= need_cue.reveal_at:
                s.revealed[i] = True
                k = _NEED_INDEX[need_cue.need]
                s.evidence[k] = min(1.0, s.evidence[k] + need_cue.strength)
                text = need_cue.text
        return text

    def _comfort(self, act: int, quality: float = 1.0) -> tuple[float, str]:
        s, c = self.state, self.config
        ceiling = c.soothing_ceiling + c.comfort_understanding_bonus * s.understanding
        gain = c.comfort_rate * (c.comfort_decay**s.comfort_count) * max(0.0, ceiling - s.emotion)
        gain *= quality
        s.comfort_count += 1
        s.trust = min(1.0, s.trust + c.trust_gain)
        if gain >= 1.0:
            if act == AFFIRMATION:
                return gain, "Their reassurance helps a little."
            return gain, "They noticed how I feel; that helps a little."
        return gain, "The comfort sounds kind, but they don't really get it yet."

    def _disclose(self, quality: float = 1.0) -> tuple[float, str]:
        s, c = self.state, self.config
        if s.trust >= c.trust_needed:
            lift = c.disclosure_lift * quality
            return lift, "It helps a bit to know they've been through something too."
        return -c.disclosure_lift, "Now we're talking about them instead of me."

    def _user_act(
        self,
        cue: str | None,
        resolved_now: bool,
        premature: bool,
        success: bool,
        left: bool,
        delta: float,
    ) -> str:
        if left:
            return "leave"
        if success:
            return "thank"
        if resolved_now:
            return "agree"
        if premature or delta <= -3.0:
            return "resist"
        if cue is not None:
            return "disclose"
        if (
            self.card.hidden_need in RATIONAL_NEEDS
            and not self.state.resolved
            and self.ready_for_help()
        ):
            # A user who wants practical help and feels understood starts asking for it.
            return "ask"
        if self.state.resolved:
            return "agree"
        return "vent"

    def intensities(self) -> list[float]:
        """The expressed emotion as intensities over ``PLUTCHIK``, each in [0, 1].

        Negative emotions scale with distress (``1 - emotion/100``) along the card's
        ``emotion_type`` profile; joy rises above the middle band; trust is the user's
        trust in the agent; anticipation mixes worry with hope once the need is met.
        A plain list: the env packs it with the rest of the observation in one array.
        """
        s = self.state
        distress = 1.0 - s.emotion / 100.0
        values = [w * distress for w in self._profile]
        values[_JOY] = min(1.0, max(0.0, (s.emotion - 40.0) / 60.0))
        values[_TRUST] = s.trust
        if s.resolved and values[_ANTICIPATION] < 0.5:
            values[_ANTICIPATION] = 0.5
        return values

    def fork(self, noise: Sequence[float] | None = None) -> AffectiveCore:
        """An independent copy of this core (a few microseconds).

        Args:
            noise: Replaces the per-turn noise for the copy (index = turn, so only entries
                from the current turn on matter): a look-ahead samples other futures this way.
                By default the copy shares this core's noise and so replays its future.
        """
        # Look-ahead forks a core per simulated future: attribute by attribute, in
        # __init__'s order, for the reason UserState.copy gives.
        new = object.__new__(type(self))
        new.card = self.card
        new.config = self.config
        new.noise = self.noise if noise is None else noise
        new.resistance = self.resistance
        new.volatility = self.volatility
        new.resolvers = self.resolvers
        new._profile = self._profile
        new.state = self.state.copy()
        return new


@functools.cache  # one per emotion type; every reset builds a core
def _profile_vector(emotion_type: str) -> tuple[float, ...]:
    vec = [0.0] * len(PLUTCHIK)
    for name, weight in _EMOTION_PROFILE[emotion_type].items():
        vec[_PLUTCHIK_INDEX[name]] = weight
    return tuple(vec)
