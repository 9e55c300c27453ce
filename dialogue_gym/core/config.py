"""The simulator's assumptions, as one documented config object.

Every number that could change a study's conclusion lives here, named, so a study can
sweep it: ``gym.make("EmpathyDialogue-v0", sim=SimConfig(soothing_ceiling=80))`` or
``sim={"soothing_ceiling": 80}``. ``docs/simulator.md`` explains each one and how the
calibration targets move with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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


@dataclass(frozen=True)
class SimConfig:
    """Parameters of the affective core. Defaults meet docs/simulator.md's calibration targets.

    Emotion is on SAGE's 0–100 scale; understanding and trust are in [0, 1].

    Attributes:
        success_threshold: Emotion at or above which a user whose need is resolved thanks
            the agent and ends the conversation (success; SAGE's "good" band starts at 70).
        leave_threshold: Emotion at or below which the user leaves (failure; RLVER uses 0).
        max_change: Bound on one turn's emotion change, applied as [-max_change, max_change]
            (SAGE clips to [-10, 10]).
        soothing_ceiling: How high comfort alone (reflection, affirmation) can lift emotion
            when the agent has understood nothing. Below ``success_threshold`` by default,
            so soothing without helping plateaus short of success.
        comfort_understanding_bonus: How much the comfort ceiling rises at full
            understanding (comfort lands better on what the agent has understood). The
            ceiling is ``soothing_ceiling + comfort_understanding_bonus * understanding``.
        comfort_rate: Fraction of the gap to the comfort ceiling that one comforting act closes.
        comfort_decay: Diminishing returns: each earlier comforting act multiplies the next
            one's effect by this factor.
        resolution_uplift: Total emotion lift from resolving the need. It is released at
            most ``max_change`` per turn, so a large uplift lifts the user over several turns.
        understanding_needed: Understanding of the need required before help (or the
            comfort that meets an emotional need) lands.
        trust_needed: Trust required before help lands.
        premature_penalty: Emotion lost when the agent suggests or informs before
            ``understanding_needed`` and ``trust_needed`` are met.
        premature_trust_loss: Trust lost on premature help.
        wrong_help_penalty: Emotion lost on well-timed help of the wrong kind.
        repetition_penalty: Emotion lost each time the agent repeats its previous strategy.
        drift: Fraction of the gap back to the initial emotion lost each turn while the
            need is unresolved (gains fade without progress).
        noise: Standard deviation of the per-turn emotion noise, scaled by the persona's
            volatility (``volatility``).
        volatility: Noise multiplier per character type (RLVER's negative/passive/avoidant,
            plus open).
        explore_gain: Understanding gained by a Question; Restatement gains
            ``restatement_factor`` of it. Both are scaled by ``1 - resistance``.
        restatement_factor: Restatement's share of ``explore_gain``.
        explore_lift: Emotion lift of a Question (being asked about oneself).
        restatement_lift: Emotion lift of a Restatement (feeling heard).
        overexplore_at: Understanding above which further exploring adds nothing and costs
            ``overexplore_penalty`` (the user has already said it all).
        overexplore_penalty: Emotion lost on exploring past ``overexplore_at``.
        disclosure_lift: Emotion change of a self-disclosure that does not meet the need,
            when trust is at least ``trust_needed`` (otherwise its negative: it feels like
            the agent talks about themselves).
        others_effect: Emotion change of an "Others" act (small talk, off topic).
        trust_gain: Trust gained by a grounding or comforting act.
        initial_trust: Starting trust per character type.
        resistance: Per card difficulty: slows understanding (``explore_gain * (1 -
            resistance)``) and lowers starting trust by ``resistance * 0.2``.
        resolvers: For each need, the strategies that meet it once it is understood.
    """

    success_threshold: float = 70.0
    leave_threshold: float = 0.0
    max_change: float = 10.0
    soothing_ceiling: float = 55.0
    comfort_understanding_bonus: float = 15.0
    comfort_rate: float = 0.35
    comfort_decay: float = 0.97
    resolution_uplift: float = 30.0
    understanding_needed: float = 0.45
    trust_needed: float = 0.35
    premature_penalty: float = 6.0
    premature_trust_loss: float = 0.15
    wrong_help_penalty: float = 3.0
    repetition_penalty: float = 1.0
    drift: float = 0.1
    noise: float = 1.5
    volatility: Mapping[str, float] = field(
        default_factory=lambda: {"open": 0.8, "negative": 1.3, "passive": 1.0, "avoidant": 1.1}
    )
    explore_gain: float = 0.25
    restatement_factor: float = 0.8
    explore_lift: float = 1.0
    restatement_lift: float = 2.0
    overexplore_at: float = 0.95
    overexplore_penalty: float = 1.5
    disclosure_lift: float = 1.0
    others_effect: float = -1.0
    trust_gain: float = 0.1
    initial_trust: Mapping[str, float] = field(
        default_factory=lambda: {"open": 0.5, "negative": 0.3, "passive": 0.4, "avoidant": 0.35}
    )
    resistance: Mapping[str, float] = field(
        default_factory=lambda: {"easy": 0.0, "medium": 0.2, "hard": 0.4}
    )
    resolvers: Mapping[str, tuple[int, ...]] = field(
        default_factory=lambda: dict(DEFAULT_RESOLVERS)
    )

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ValueError("invalid SimConfig: " + "; ".join(problems))

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some parameters changed (validated like the constructor).

        Example:
            >>> SimConfig().replace(soothing_ceiling=80.0).soothing_ceiling
            80.0
        """
        return dataclasses.replace(self, **changes)

    @classmethod
    def coerce(cls, value: SimConfig | Mapping[str, Any] | None) -> SimConfig:
        """Accept a config, a mapping of overrides, or None (the defaults).

        Example:
            >>> SimConfig.coerce({"drift": 0.0}).drift
            0.0
        """
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise ValueError(
                    f"unknown SimConfig parameter(s) {unknown}; valid: "
                    f"{[f.name for f in dataclasses.fields(cls)]}"
                )
            return cls(**value)
        raise TypeError(f"sim must be a SimConfig, a mapping or None, got {type(value).__name__}")


def _problems(cfg: SimConfig):
    """Yield a message for each parameter out of its valid range."""
    nonneg = (
        "max_change",
        "soothing_ceiling",
        "comfort_understanding_bonus",
        "resolution_uplift",
        "premature_penalty",
        "premature_trust_loss",
        "wrong_help_penalty",
        "repetition_penalty",
        "noise",
        "explore_gain",
        "explore_lift",
        "restatement_lift",
        "overexplore_penalty",
        "trust_gain",
    )
    for name in nonneg:
        if not getattr(cfg, name) >= 0:
            yield f"{name} must be >= 0, got {getattr(cfg, name)!r}"
    unit = (
        "comfort_rate",
        "comfort_decay",
        "understanding_needed",
        "trust_needed",
        "drift",
        "restatement_factor",
        "overexplore_at",
    )
    for name in unit:
        if not 0 <= getattr(cfg, name) <= 1:
            yield f"{name} must be in [0, 1], got {getattr(cfg, name)!r}"
    if not cfg.leave_threshold < cfg.success_threshold:
        yield "leave_threshold must be below success_threshold"
    for name, keys in (
        ("volatility", CHARACTER_TYPES),
        ("initial_trust", CHARACTER_TYPES),
        ("resistance", DIFFICULTIES),
        ("resolvers", NEEDS),
    ):
        missing = sorted(set(keys) - set(getattr(cfg, name)))
        if missing:
            yield f"{name} lacks entries for {missing}"
    for need, acts in cfg.resolvers.items():
        if not acts or not all(isinstance(a, int) and 0 <= a < len(STRATEGIES) for a in acts):
            yield f"resolvers[{need!r}] must be a non-empty tuple of strategy indices"
