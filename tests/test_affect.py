"""Properties of the affective core (docs/simulator.md), each a test."""

from __future__ import annotations

import numpy as np
import pytest

from dialogue_gym.core.affect import AffectiveCore
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.scenario import load_scenarios
from dialogue_gym.core.vocabulary import (
    AFFIRMATION,
    INFORMATION,
    NEEDS,
    OTHERS,
    QUESTION,
    REFLECTION,
    RESTATEMENT,
    SUGGESTION,
)

CARDS = load_scenarios("test")


def card_for(need: str, difficulty: str = "easy"):
    return next(c for c in CARDS if c.hidden_need == need and c.difficulty == difficulty)


def core_for(card, seed=0, **overrides):
    noise = np.random.default_rng(seed).standard_normal(40)
    return AffectiveCore(card, SimConfig(**{"noise": 0.0, **overrides}), noise)


def test_exploring_raises_understanding_and_reveals_cues():
    core = core_for(card_for("information"))
    assert core.state.understanding == 0 and not any(core.state.evidence)
    revealed = []
    for act in (QUESTION, RESTATEMENT, QUESTION, RESTATEMENT):
        a = core.step(act)
        revealed.append(a.cue)
    assert core.state.understanding > 0.7
    assert any(revealed)
    need_i = NEEDS.index("information")
    assert int(np.argmax(core.state.evidence)) == need_i


def test_comfort_has_diminishing_returns_and_plateaus_below_success():
    for need in NEEDS:
        core = core_for(card_for(need), drift=0.0, repetition_penalty=0.0)
        gains = [core.step(REFLECTION if i % 2 else AFFIRMATION).change for i in range(30)]
        assert gains[0] > gains[5] > gains[20] >= 0
        assert not core.state.resolved, need
        assert core.state.emotion < core.config.success_threshold


def test_comfort_alone_cannot_resolve_even_emotional_needs():
    core = core_for(card_for("be_heard"))
    for _ in range(10):
        core.step(REFLECTION)
    assert not core.state.resolved


def test_premature_help_lowers_emotion_and_trust():
    core = core_for(card_for("practical_suggestions"))
    e0, t0 = core.state.emotion, core.state.trust
    a = core.step(SUGGESTION)
    assert a.premature and a.change < 0 and core.state.trust < t0
    assert a.user_act == "resist"
    assert core.state.emotion < e0


def test_right_help_after_understanding_resolves_and_lifts():
    core = core_for(card_for("practical_suggestions"))
    while not core.ready_for_help():
        core.step(QUESTION if core.state.last_act != QUESTION else RESTATEMENT)
    wrong = core_for(card_for("practical_suggestions"))
    wrong.state = core.state.copy()
    assert wrong.step(INFORMATION).change < 0 and not wrong.state.resolved
    a = core.step(SUGGESTION)
    assert a.resolved_now and core.state.resolved and a.change > 5
    assert a.user_act in ("agree", "thank")


def test_resolution_uplift_released_over_turns_within_the_clip():
    core = core_for(card_for("information"), resolution_uplift=40.0)
    while not core.ready_for_help():
        core.step(QUESTION if core.state.last_act != QUESTION else RESTATEMENT)
    changes = [core.step(INFORMATION).change]
    changes += [core.step(REFLECTION if i % 2 else AFFIRMATION).change for i in range(3)]
    assert all(abs(c) <= 10 for c in changes)
    assert changes[0] == pytest.approx(10) or core.state.emotion >= 99


def test_repetition_annoys():
    plain = core_for(card_for("be_heard"), drift=0.0)
    repeat = core_for(card_for("be_heard"), drift=0.0, repetition_penalty=3.0)
    plain.step(OTHERS)
    repeat.step(OTHERS)
    assert repeat.step(OTHERS).change < plain.step(QUESTION).change
    assert "same thing" in repeat.step(OTHERS).reason


def test_emotion_drifts_back_without_progress():
    card = card_for("be_heard")
    core = core_for(card, repetition_penalty=0.0, others_effect=0.0)
    core.state.emotion = card.initial_emotion + 20
    a = core.step(OTHERS)
    assert a.change == pytest.approx(-core.config.drift * 20)


def test_noise_is_seeded_and_scaled_by_volatility():
    card = card_for("validation")
    runs = [
        [core_for(card, seed=s, noise=2.0).step(OTHERS).change for _ in range(1)] for s in (1, 1, 2)
    ]
    assert runs[0] == runs[1] != runs[2]
    quiet = core_for(card, seed=1, noise=0.0).step(OTHERS).change
    assert quiet == core_for(card, seed=99, noise=0.0).step(OTHERS).change


def test_change_is_clipped():
    core = core_for(card_for("be_heard"), premature_penalty=50.0)
    assert core.step(SUGGESTION).change >= -10
    core = core_for(card_for("be_heard"), soothing_ceiling=100.0, comfort_rate=1.0)
    assert core.step(REFLECTION).change <= 10


def test_user_leaves_at_zero():
    core = core_for(card_for("be_heard"))
    a = None
    for _ in range(20):
        a = core.step(SUGGESTION)
        if a.left:
            break
    assert a.left and a.user_act == "leave" and core.state.emotion <= 0


def test_success_needs_resolution_and_high_emotion():
    core = core_for(card_for("be_heard"))
    acts = [QUESTION, RESTATEMENT, QUESTION, REFLECTION, AFFIRMATION, REFLECTION, AFFIRMATION]
    results = [core.step(a) for a in acts]
    assert any(r.resolved_now for r in results)
    done = [r for r in results if r.success]
    assert done and done[0].user_act == "thank" and done[0].emotion >= 70


def test_intensities_follow_emotion_and_type():
    card = card_for("be_heard")
    core = core_for(card)
    low = np.array(core.intensities())
    core.state.emotion = 90.0
    high = np.array(core.intensities())
    assert high[0] > low[0]  # joy
    assert high[2:].sum() < low[2:].sum()  # less negative emotion overall
    assert ((0 <= high) & (high <= 1)).all()


def test_fork_copies_state():
    core = core_for(card_for("be_heard"))
    core.step(QUESTION)
    fork = core.fork()
    fork.step(RESTATEMENT)
    assert core.state.turn == 1 and fork.state.turn == 2
    # a fork replays the same future unless given other noise
    noisy = core_for(card_for("be_heard"), noise=3.0)
    noisy.step(QUESTION)
    same, other = noisy.fork(), noisy.fork(noise=[0.0] * 40)
    assert same.step(REFLECTION) == noisy.fork().step(REFLECTION)
    assert other.step(REFLECTION).change != noisy.fork().step(REFLECTION).change


def test_invalid_config_is_named():
    with pytest.raises(ValueError, match="comfort_rate"):
        SimConfig(comfort_rate=2.0)
    with pytest.raises(ValueError, match="resistance"):
        SimConfig(resistance={"easy": 0.0})
