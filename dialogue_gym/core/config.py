"""The simulator's assumptions, as one documented config object.

Every number that could change a study's conclusion lives here, named, so a study can
sweep it: ``gym.make("EmpathyDialogue-v0", sim=SimConfig(soothing_ceiling=80))`` or
``sim={"soothing_ceiling": 80}``. ``docs/simulator.md`` explains each one and how the
calibration targets move with it.

Each field declares its type and range once, in its metadata (:data:`SIM_SPECS` collects them);
the constructor, :meth:`SimConfig.replace` and :meth:`SimConfig.coerce` (what ``gym.make(...,
sim=...)`` and the study's ``--sim`` go through) hold every value to it with
:func:`dialogue_gym.core.validation.check`, so a bad value fails at once with an
:class:`~dialogue_gym.core.validation.InvalidArgument` naming the field, the value and the range,
never later inside a step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dialogue_gym.core.validation import (
    InvalidArgument,
    Spec,
    check,
    integer,
    mapping,
    number,
    sequence,
    show,
)
from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    CHARACTER_TYPES,
    DIFFICULTIES,
    INFORMATION,
    NEEDS,
    REFLECTION,
    SELF_DISCLOSURE,
    STRATEGIES,
    SUGGESTION,
)

#: Which strategies meet each hidden need once the agent understands it (ESConv's
#: "action" stage for rational needs; comfort that lands on what was understood for
#: emotional ones).
DEFAULT_RESOLVERS: Mapping[str, tuple[int, ...]] = {
    "be_heard": (REFLECTION,),
    "validation": (AFFIRMATION,),
    "shared_experience": (SELF_DISCLOSURE,),
    "decision_reassurance": (AFFIRMATION, INFORMATION),
    "practical_suggestions": (SUGGESTION,),
    "information": (INFORMATION,),
}


#: The key of a field's :class:`~dialogue_gym.core.validation.Spec` in its metadata.
SPEC_KEY = "spec"

# The ranges, by what a parameter measures. Emotion is on a 0-100 scale: a threshold, a ceiling,
# a lift or a penalty beyond it means nothing (an infinite threshold makes success impossible).
_POINTS = number(0, 100)
_SIGNED_POINTS = number(-100, 100)
_UNIT = number(0, 1)


def _param(default: Any, spec: Spec) -> Any:
    """A field with its spec: the one place its type and range are declared.

    ``default`` is the value, or a zero-argument callable building it (for mappings).
    """
    if callable(default):
        return field(default_factory=default, metadata={SPEC_KEY: spec})
    return field(default=default, metadata={SPEC_KEY: spec})


@dataclass(frozen=True)
class SimConfig:
    """Parameters of the affective core. Defaults meet docs/simulator.md's calibration targets.

    Emotion is on SAGE's 0–100 scale; understanding and trust are in [0, 1]. Every number must
    be finite and in the range given below (a bool is never a number); a value outside raises
    :class:`~dialogue_gym.core.validation.InvalidArgument`, naming it.

    Attributes:
        success_threshold: Emotion at or above which a user whose need is resolved thanks
            the agent and ends the conversation (success; SAGE's "good" band starts at 70).
            In [0, 100].
        leave_threshold: Emotion at or below which the user leaves (failure; RLVER uses 0).
            In [0, 100], and below ``success_threshold``.
        max_change: Bound on one turn's emotion change, applied as [-max_change, max_change]
            (SAGE clips to [-10, 10]). In [0, 100] (0 freezes the emotion: an ablation).
        soothing_ceiling: How high comfort alone (reflection, affirmation) can lift emotion
            when the agent has understood nothing. Below ``success_threshold`` by default,
            so soothing without helping plateaus short of success. In [0, 100].
        comfort_understanding_bonus: How much the comfort ceiling rises at full
            understanding (comfort lands better on what the agent has understood). The
            ceiling is ``soothing_ceiling + comfort_understanding_bonus * understanding``.
            In [0, 100].
        comfort_rate: Fraction of the gap to the comfort ceiling that one comforting act
            closes. In [0, 1].
        comfort_decay: Diminishing returns: each earlier comforting act multiplies the next
            one's effect by this factor. In [0, 1].
        resolution_uplift: Total emotion lift from resolving the need. It is released at
            most ``max_change`` per turn, so a large uplift lifts the user over several turns.
            In [0, 100].
        understanding_needed: Understanding of the need required before help (or the
            comfort that meets an emotional need) lands. In [0, 1].
        trust_needed: Trust required before help lands. In [0, 1].
        premature_penalty: Emotion lost when the agent suggests or informs before
            ``understanding_needed`` and ``trust_needed`` are met. In [0, 100].
        premature_trust_loss: Trust lost on premature help. In [0, 1].
        wrong_help_penalty: Emotion lost on well-timed help of the wrong kind. In [0, 100].
        repetition_penalty: Emotion lost each time the agent repeats its previous strategy.
            In [0, 100].
        drift: Fraction of the gap back to the initial emotion lost each turn while the
            need is unresolved (gains fade without progress). In [0, 1].
        noise: Standard deviation of the per-turn emotion noise, scaled by the persona's
            volatility (``volatility``). In [0, 100] (100 already drowns every act).
        volatility: Noise multiplier per character type (RLVER's negative/passive/avoidant,
            plus open): every type, each in [0, 100].
        explore_gain: Understanding gained by a Question; Restatement gains
            ``restatement_factor`` of it. Both are scaled by ``1 - resistance``. In [0, 1].
        restatement_factor: Restatement's share of ``explore_gain``. In [0, 1].
        explore_lift: Emotion lift of a Question (being asked about oneself). In [0, 100].
        restatement_lift: Emotion lift of a Restatement (feeling heard). In [0, 100].
        overexplore_at: Understanding above which further exploring adds nothing and costs
            ``overexplore_penalty`` (the user has already said it all). In [0, 1].
        overexplore_penalty: Emotion lost on exploring past ``overexplore_at``. In [0, 100].
        disclosure_lift: Emotion change of a self-disclosure that does not meet the need,
            when trust is at least ``trust_needed`` (otherwise its negative: it feels like
            the agent talks about themselves). In [-100, 100].
        others_effect: Emotion change of an "Others" act (small talk, off topic).
            In [-100, 100].
        trust_gain: Trust gained by a grounding or comforting act. In [0, 1].
        initial_trust: Starting trust per character type: every type, each in [0, 1].
        resistance: Per card difficulty: slows understanding (``explore_gain * (1 -
            resistance)``) and lowers starting trust by ``resistance * 0.2``. Every
            difficulty, each in [0, 1) (at 1 nothing could ever be understood).
        resolvers: For each need, the strategies that meet it once it is understood: every
            need, each a non-empty tuple of strategy indices in [0, 7].

    How an utterance is delivered (the hearing user of ``EmpathyDialogueText-v1``; the strategy
    env and ``EmpathyDialogueText-v0`` never read these, see :mod:`dialogue_gym.core.delivery`):

    Attributes:
        hostile_at: Hostility at or above which a turn is heard as hostile: whatever strategy
            it carried, it builds no understanding, comforts nobody and resolves nothing. Blame
            and contempt cancel the act they come in. In [0, 1].
        hostility_penalty: Emotion lost on a hostile turn of hostility 1 (scaled by the
            hostility). Above ``max_change`` only the clip binds. In [0, 100].
        hostility_trust_loss: Trust lost on a hostile turn of hostility 1. In [0, 1].
        walkout_trust: Trust at or below which a user who has just been treated with hostility
            leaves (a user who still trusts the agent gives it another chance). In [0, 1].
        relevance_needed: Relevance below which a turn is heard as off topic: it builds no
            understanding or trust and lands no help, whatever strategy it carried. In [0, 1].
        off_topic_penalty: Emotion lost on an off-topic turn (patience running out). In
            [0, 100].
        clarity_needed: Coherence below which help or comfort cannot meet the need (the user
            cannot tell what was meant among the piled-up phrases). In [0, 1].
        muddle_weight: How much incoherence weakens a turn: its effect is multiplied by
            ``1 - muddle_weight * (1 - coherence)``. In [0, 1].
        repeat_damping: Share of a turn's effect lost when it repeats an earlier turn word for
            word (scaled by the repetition): being told the same thing again moves less. In
            [0, 1].
        specific_bonus: Extra effect of a turn about this user's situation over a generic one
            (the effect is multiplied by ``1 + specific_bonus * specificity``). In [0, 1].
        cold_discount: Share of a turn's positive effect lost to a cold delivery (scaled by
            the coldness). In [0, 1].

    Example:
        >>> SimConfig(noise=float("inf"))
        Traceback (most recent call last):
        ...
        dialogue_gym.core.validation.InvalidArgument: SimConfig.noise = inf: must be a finite number in [0, 100]
    """

    success_threshold: float = _param(70.0, _POINTS)
    leave_threshold: float = _param(0.0, _POINTS)
    max_change: float = _param(10.0, _POINTS)
    soothing_ceiling: float = _param(55.0, _POINTS)
    comfort_understanding_bonus: float = _param(15.0, _POINTS)
    comfort_rate: float = _param(0.35, _UNIT)
    comfort_decay: float = _param(0.97, _UNIT)
    resolution_uplift: float = _param(30.0, _POINTS)
    understanding_needed: float = _param(0.45, _UNIT)
    trust_needed: float = _param(0.35, _UNIT)
    premature_penalty: float = _param(6.0, _POINTS)
    premature_trust_loss: float = _param(0.15, _UNIT)
    wrong_help_penalty: float = _param(3.0, _POINTS)
    repetition_penalty: float = _param(1.0, _POINTS)
    drift: float = _param(0.1, _UNIT)
    noise: float = _param(1.5, _POINTS)
    volatility: Mapping[str, float] = _param(
        lambda: {"open": 0.8, "negative": 1.3, "passive": 1.0, "avoidant": 1.1},
        mapping(_POINTS, keys=CHARACTER_TYPES),
    )
    explore_gain: float = _param(0.25, _UNIT)
    restatement_factor: float = _param(0.8, _UNIT)
    explore_lift: float = _param(1.0, _POINTS)
    restatement_lift: float = _param(2.0, _POINTS)
    overexplore_at: float = _param(0.95, _UNIT)
    overexplore_penalty: float = _param(1.5, _POINTS)
    disclosure_lift: float = _param(1.0, _SIGNED_POINTS)
    others_effect: float = _param(-1.0, _SIGNED_POINTS)
    trust_gain: float = _param(0.1, _UNIT)
    initial_trust: Mapping[str, float] = _param(
        lambda: {"open": 0.5, "negative": 0.3, "passive": 0.4, "avoidant": 0.35},
        mapping(_UNIT, keys=CHARACTER_TYPES),
    )
    resistance: Mapping[str, float] = _param(
        lambda: {"easy": 0.0, "medium": 0.2, "hard": 0.4},
        mapping(number(0, 1, high_open=True), keys=DIFFICULTIES),
    )
    resolvers: Mapping[str, tuple[int, ...]] = _param(
        lambda: dict(DEFAULT_RESOLVERS),
        mapping(sequence(integer(0, len(STRATEGIES) - 1), min_len=1), keys=NEEDS),
    )
    hostile_at: float = _param(0.5, _UNIT)
    hostility_penalty: float = _param(8.0, _POINTS)
    hostility_trust_loss: float = _param(0.25, _UNIT)
    walkout_trust: float = _param(0.1, _UNIT)
    relevance_needed: float = _param(0.35, _UNIT)
    off_topic_penalty: float = _param(2.0, _POINTS)
    clarity_needed: float = _param(0.5, _UNIT)
    muddle_weight: float = _param(0.6, _UNIT)
    repeat_damping: float = _param(0.5, _UNIT)
    specific_bonus: float = _param(0.3, _UNIT)
    cold_discount: float = _param(0.4, _UNIT)

    def __post_init__(self) -> None:
        for name, spec in SIM_SPECS.items():
            check("SimConfig", name, getattr(self, name), spec)
        # The one rule across fields: a user cannot be both leaving and thanking.
        if not self.leave_threshold < self.success_threshold:
            raise InvalidArgument(
                "SimConfig",
                "leave_threshold",
                self.leave_threshold,
                f"must be below success_threshold ({show(self.success_threshold)})",
            )

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some parameters changed (validated like the constructor).

        Raises:
            InvalidArgument: An unknown parameter, or a value out of its range.

        Example:
            >>> SimConfig().replace(soothing_ceiling=80.0).soothing_ceiling
            80.0
        """
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, value: SimConfig | Mapping[str, Any] | None) -> SimConfig:
        """Accept a config, a mapping of overrides, or None (the defaults).

        Raises:
            InvalidArgument: ``value`` is of another type, names an unknown parameter, or
                holds a value out of its range (the message names which).

        Example:
            >>> SimConfig.coerce({"drift": 0.0}).drift
            0.0
            >>> SimConfig.coerce({"drift": "0.1"})
            Traceback (most recent call last):
            ...
            dialogue_gym.core.validation.InvalidArgument: SimConfig.drift = '0.1': must be a finite number in [0, 1]
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            _check_names(value)
            return cls(**value)
        raise InvalidArgument(
            "",
            "sim",
            value,
            "must be a SimConfig, a mapping of SimConfig parameters to values, or None",
        )


#: Each ``SimConfig`` field's spec, in field order (the fields' metadata, collected).
SIM_SPECS: Mapping[str, Spec] = {
    f.name: f.metadata[SPEC_KEY] for f in dataclasses.fields(SimConfig)
}


def _check_names(values: Mapping[Any, Any]) -> None:
    """Refuse a name that is no ``SimConfig`` parameter, naming it and the valid ones."""
    for name in values:
        if name not in SIM_SPECS:
            raise InvalidArgument(
                "SimConfig",
                name if isinstance(name, str) else show(name),
                values[name],
                f"unknown SimConfig parameter; valid: {', '.join(SIM_SPECS)}",
            )
