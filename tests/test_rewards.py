"""Reward wrappers: each formula, the components in info, stacking, vector envs, invariance."""

from __future__ import annotations

import copy
import inspect
import json
import math
import pickle
import re
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from repo_scripts import load_script

import dialogue_gym
from dialogue_gym.agents.reference import RandomPolicy, StageHeuristicPolicy
from dialogue_gym.core.affect import UserState
from dialogue_gym.envs.empathy import EmpathyDialogueEnv
from dialogue_gym.rewards import (
    COMPONENT_WRAPPERS,
    DEFAULT_REWARD,
    REWARDS,
    ComponentRewardWrapper,
    CompositeReward,
    CritiqueFeedback,
    EmotionDeltaReward,
    MultiTurnValueReward,
    NextTurnReward,
    PotentialShapedEmotion,
    SparseBonus,
    StageHeuristicRollout,
    as_feedback,
    reward_components,
    reward_probes,
)
from dialogue_gym.rewards.multi_turn import copy_state

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "EmpathyDialogue-v0"
NAMES = sorted(REWARDS)
KWARGS = {"composite": {"weights": {"sparse": 1.0, "emotion_delta": 0.5, "next_turn": 0.0}}}


def make(reward=DEFAULT_REWARD, **kwargs):
    reward_kwargs = kwargs.pop("reward_kwargs", KWARGS.get(reward))
    return gym.make(ENV_ID, voice="template", reward=reward, reward_kwargs=reward_kwargs, **kwargs)


def episode(env, actions, seed, card=None):
    """Step ``actions`` from ``reset(seed)`` until the episode ends; the step results."""
    obs, info = env.reset(seed=seed, options={"card": card} if card is not None else None)
    out = [(obs, 0.0, False, False, info)]
    for a in actions:
        out.append(env.step(int(a)))
        if out[-1][2] or out[-1][3]:
            break
    return out


def state_dict(core):
    return copy.deepcopy(core.state.__dict__)


# --------------------------------------------------------------------------------------------
# hand-built trajectories
# --------------------------------------------------------------------------------------------


class ScriptedEnv(gym.Env):
    """Replays a hand-built trajectory: each step's emotion and what ended it."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(8)

    def __init__(self, e0, steps):
        self.e0 = e0
        self.steps = steps  # [(emotion, resolved, user_act, terminated, truncated)]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.emotion = 0, self.e0
        return np.zeros(1, np.float32), {"emotion": self.e0}

    def episode_key(self):
        """The published view's episode key (what episode_rng seeds a wrapper from)."""
        return np.asarray([0.1, 0.2], dtype=np.float64).tobytes() + b"scripted"

    def step(self, action):
        emotion, resolved, user_act, terminated, truncated = self.steps[self.t]
        before, self.emotion = self.emotion, emotion
        info = {
            "emotion": emotion,
            "emotion_before": before,
            "resolved": resolved,
            "user_act": user_act,
            "reason": "They asked about it, so I could say more.",
            "strategy": "Question",
        }
        if terminated or truncated:
            info["success"] = user_act == "thank"
            info["user_left"] = user_act == "leave"
        self.t += 1
        reward = 1.0 if info.get("success") else 0.0
        return np.zeros(1, np.float32), reward, terminated, truncated, info


SUCCESS = [(40.0, False, "vent", False, False), (55.0, True, "agree", False, False)]
SUCCESS += [(72.0, True, "thank", True, False)]
TRUNCATED = [(32.0, False, "vent", False, False), (28.0, False, "resist", False, True)]
LEFT = [(5.0, False, "resist", False, False), (0.0, False, "leave", True, False)]


def rewards(env):
    env.reset(seed=0)
    out, done = [], False
    while not done:
        _, r, term, trunc, info = env.step(0)
        out.append((r, info))
        done = term or trunc
    return out


def test_sparse_bonus_on_hand_built_trajectories():
    assert [r for r, _ in rewards(SparseBonus(ScriptedEnv(30.0, SUCCESS)))] == [0, 0, 1.0]
    assert [r for r, _ in rewards(SparseBonus(ScriptedEnv(30.0, TRUNCATED)))] == [0, 0]
    left = rewards(SparseBonus(ScriptedEnv(30.0, LEFT), bonus=2.0, leave_penalty=1.0))
    assert [r for r, _ in left] == [0.0, -1.0]
    assert left[-1][1]["reward_components"] == {
        "sparse": -1.0,
        "sparse/success": 0.0,
        "sparse/left": 1.0,
    }
    bonus = rewards(SparseBonus(ScriptedEnv(30.0, SUCCESS), bonus=2.0))
    assert bonus[-1][0] == 2.0 and bonus[-1][1]["reward_components"]["sparse/success"] == 1.0


def test_final_emotion_is_rlvers_reward_on_truncation_too():
    # RLVER: max(e_T / 100, 0), once, at the end, however the episode ended.
    assert [
        r for r, _ in rewards(SparseBonus(ScriptedEnv(30.0, SUCCESS), kind="final_emotion"))
    ] == [0, 0, 0.72]
    truncated = rewards(SparseBonus(ScriptedEnv(30.0, TRUNCATED), kind="final_emotion"))
    assert [r for r, _ in truncated] == [0.0, 0.28]
    assert truncated[-1][1]["reward_components"]["final_emotion/emotion"] == 0.28
    left = rewards(SparseBonus(ScriptedEnv(30.0, LEFT), kind="final_emotion", leave_penalty=0.5))
    assert [r for r, _ in left] == [0.0, -0.5]


def test_emotion_delta_on_hand_built_trajectory():
    out = rewards(EmotionDeltaReward(ScriptedEnv(30.0, SUCCESS), scale=0.5))
    assert [r for r, _ in out] == [5.0, 7.5, 8.5]
    assert [i["reward_components"]["emotion_delta/change"] for _, i in out] == [10.0, 15.0, 17.0]


def test_potential_shaping_on_hand_built_trajectory():
    # F = gamma * Phi(s') - Phi(s), Phi = e / 100, Phi(terminal) = 0; added to the reward below.
    out = rewards(PotentialShapedEmotion(SparseBonus(ScriptedEnv(30.0, SUCCESS)), gamma=0.9))
    expected = [0.9 * 0.40 - 0.30, 0.9 * 0.55 - 0.40, 1.0 + 0.0 - 0.55]
    assert [r for r, _ in out] == pytest.approx(expected, abs=1e-12)
    assert out[-1][1]["reward_components"]["potential_emotion"] == pytest.approx(-0.55)
    truncated = rewards(PotentialShapedEmotion(ScriptedEnv(30.0, TRUNCATED), gamma=0.9))
    # Truncation is not a terminal state: s' keeps its potential.
    assert truncated[-1][0] == pytest.approx(0.9 * 0.28 - 0.32)


def test_next_turn_verdict_rule_without_noise():
    # noise=0: the critic perceives exactly; one sample is the verdict.
    env = NextTurnReward(ScriptedEnv(30.0, SUCCESS + LEFT), samples=3, noise=0.0)
    env.reset(seed=0)
    assert env.verdicts(30.0, 30.5, False, "vent") == [1, 1, 1]  # within the band: same
    assert env.verdicts(30.0, 32.0, False, "vent") == [2, 2, 2]  # better
    assert env.verdicts(30.0, 28.0, False, "resist") == [0, 0, 0]  # worse
    assert env.verdicts(60.0, 72.0, True, "thank") == [3, 3, 3]  # solved
    assert env.verdicts(60.0, 65.0, True, "agree") == [2, 2, 2]  # resolved, not yet good
    assert env.verdicts(10.0, 12.0, False, "leave") == [0, 0, 0]  # leaving is worse
    out = rewards(NextTurnReward(ScriptedEnv(30.0, SUCCESS), noise=0.0))
    assert [r for r, _ in out] == [0.5, 0.5, 1.0]  # PPDPP's mapping
    dpdp = rewards(NextTurnReward(ScriptedEnv(30.0, SUCCESS), noise=0.0, values={"better": 0.1}))
    assert [r for r, _ in dpdp] == pytest.approx([0.1, 0.1, 1.0])


def test_next_turn_averages_noisy_samples():
    out = rewards(
        NextTurnReward(ScriptedEnv(30.0, [(31.0, False, "vent", False, True)]), samples=1000)
    )
    reward, info = out[0]
    c = info["reward_components"]
    shares = [c[f"next_turn/{v}"] for v in ("worse", "same", "better", "solved")]
    assert sum(shares) == pytest.approx(1.0)
    assert reward == pytest.approx(-shares[0] - 0.5 * shares[1] + 0.5 * shares[2] + shares[3])
    # A 1-point rise, critic noise sd 2, band 1: P(better) = P(z > 0) = 0.5, P(worse) = P(z < -1).
    assert shares[2] == pytest.approx(0.5, abs=0.06)
    assert shares[0] == pytest.approx(0.1587, abs=0.04)
    assert shares[3] == 0.0


def test_next_turn_draws_are_seeded_from_the_episode():
    def run(seed, wrapper_seed=0):
        env = make("next_turn", reward_kwargs={"seed": wrapper_seed})
        return [r for _, r, *_ in episode(env, [0, 1, 2, 4, 2], seed)]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert run(3) != run(3, wrapper_seed=1)


def test_composite_weights_and_zero_weights():
    env = make("composite")
    for _, r, _, _, info in episode(env, [0, 1, 2, 4, 5, 6], seed=1)[1:]:
        c = info["reward_components"]
        assert "next_turn" in c  # weight 0: logged ...
        assert r == c["composite"] == 1.0 * c["sparse"] + 0.5 * c["emotion_delta"]  # ... not summed


def test_composite_on_parts_and_missing_components():
    env = CompositeReward(
        MultiTurnValueReward(make(None)), {"multi_turn/emotion": 2.0, "multi_turn/cost": -1.0}
    )
    env.reset(seed=0)
    _, r, *_, info = env.step(0)
    c = info["reward_components"]
    assert r == 2.0 * c["multi_turn/emotion"] - c["multi_turn/cost"]
    # An unknown component fails at construction, naming it (issue 12), not at the first step.
    with pytest.raises(ValueError, match="no reward component 'mine'"):
        CompositeReward(make(None), {"mine": 1.0})
    with pytest.raises(ValueError, match="finite"):
        CompositeReward(make(None), {"sparse": math.nan})
    with pytest.raises(ValueError, match="not in weights"):
        CompositeReward(make(None), {"sparse": 1.0}, reward_kwargs={"next_turn": {}})


# --------------------------------------------------------------------------------------------
# MultiTurnValueReward
# --------------------------------------------------------------------------------------------


def reference_value(env, wrapper, rng_draws):
    """CollabLLM's MR by the slow road: full forks of the core and the observation policy."""
    u = env.unwrapped
    core = u.core
    turn = core.state.turn
    values = []
    for row in rng_draws:
        future = core.fork(noise=[0.0] * turn + list(row))
        policy = StageHeuristicPolicy()
        for _ in range(min(wrapper.horizon, u.max_turns - turn)):
            appraisal = future.step(policy(u.observe(future)))
            if appraisal.success or appraisal.left:
                break
        s, c = future.state, future.config
        success = float(s.resolved and s.emotion >= c.success_threshold)
        progress = 0.5 * min(s.understanding / c.understanding_needed, 1) + 0.5 * s.resolved
        cost = min(wrapper.cost * s.turn, 1.0)
        values.append(success + 0.5 * progress + 0.5 * s.emotion / 100 - cost)
    return float(np.mean(values))


def test_multi_turn_value_matches_a_slow_reference():
    env = make("multi_turn", reward_kwargs={"mode": "value"})
    wrapper = next(w for w in iter_stack(env) if isinstance(w, MultiTurnValueReward))
    env.reset(seed=5)
    for a in [0, 1, 0, 2, 4, 5, 6, 2, 4, 2]:
        rng = copy.deepcopy(wrapper._rng)
        draws = rng.standard_normal((wrapper.samples, wrapper.horizon))
        _, r, term, trunc, info = env.step(a)
        if term or trunc:
            break
        # The wrapper drew the same block after the real step: replay it by hand.
        assert r == pytest.approx(reference_value(env, wrapper, draws), abs=1e-12)
        assert info["reward_components"]["multi_turn/value"] == r


def iter_stack(env):
    while True:
        yield env
        if not isinstance(env, gym.Wrapper):
            return
        env = env.env


def test_multi_turn_fast_path_equals_observation_policy_path():
    fast = make("multi_turn")
    slow = make("multi_turn", reward_kwargs={"rollout_policy": StageHeuristicPolicy()})
    voiced = make("multi_turn", reward_kwargs={"lookahead_voice": True})
    actions = np.random.default_rng(0).integers(8, size=40)
    for seed in range(4):
        a, b, c = (episode(e, actions, seed) for e in (fast, slow, voiced))
        assert [x[1] for x in a] == [x[1] for x in b] == [x[1] for x in c]


def test_multi_turn_last_step_scores_the_real_conversation():
    env = make("multi_turn", reward_kwargs={"cost": 0.05, "mode": "value"})
    steps = episode(env, [0] * 20, seed=0)
    _, r, term, trunc, info = steps[-1]
    core = env.unwrapped.core
    s = core.state
    expected = float(info["success"]) + 0.5 * (
        0.5 * min(s.understanding / core.config.understanding_needed, 1) + 0.5 * s.resolved
    )
    expected += 0.5 * s.emotion / 100 - min(0.05 * s.turn, 1.0)
    assert (term or trunc) and r == pytest.approx(expected)


@pytest.mark.parametrize("kwargs", [{}, {"mode": "advantage"}])
def test_multi_turn_advantage_telescopes(kwargs):
    # The advantage form is the default (the value form: mode="value").
    env = make("multi_turn", reward_kwargs=kwargs)
    wrapper = next(w for w in iter_stack(env) if isinstance(w, MultiTurnValueReward))
    actions = np.random.default_rng(1).integers(8, size=20)
    for seed in range(3):
        env.reset(seed=seed)
        v0 = wrapper._last_value
        steps = episode(env, actions, seed)
        total = sum(s[1] for s in steps)
        assert total == pytest.approx(steps[-1][4]["reward_components"]["multi_turn/value"] - v0)


@pytest.mark.parametrize(
    "kwargs", [{}, {"mode": "value"}, {"lookahead_voice": True}, {"horizon": 12}]
)
def test_lookahead_leaves_the_real_env_untouched(kwargs):
    env = make("multi_turn", reward_kwargs=kwargs)
    wrapper = next(w for w in iter_stack(env) if isinstance(w, MultiTurnValueReward))
    env.reset(seed=2)
    for a in [0, 1, 0]:
        env.step(a)
        u = env.unwrapped
        before = (state_dict(u.core), u.np_random.bit_generator.state, list(u.messages))
        wrapper.lookahead()
        after = (state_dict(u.core), u.np_random.bit_generator.state, list(u.messages))
        assert after == before


def test_random_rollout_policy_is_seeded_and_reproducible():
    def run(seed):
        env = make("multi_turn", reward_kwargs={"rollout_policy": RandomPolicy(), "samples": 4})
        return [s[1] for s in episode(env, [0, 1, 2, 3, 4, 5], seed)]

    assert run(0) == run(0)


def test_copy_state_is_an_independent_copy():
    # copy_state assumes the user's state is scalars and lists of scalars.
    env = make(None)
    env.reset(seed=0)
    env.step(0)
    state = env.unwrapped.core.state
    for f in fields(UserState):
        value = getattr(state, f.name)
        assert isinstance(value, int | float | bool | str | list), f.name
        if isinstance(value, list):
            assert all(isinstance(v, int | float | bool) for v in value), f.name
    new = copy_state(state)
    assert new == state == state.copy() and type(new) is UserState
    for f in fields(UserState):
        if isinstance(getattr(new, f.name), list):
            getattr(new, f.name).append(1)
    assert state == state.copy() and new != state


def test_stage_heuristic_rollout_chooses_as_the_policy():
    env = make(None, scenarios="all")
    rng = np.random.default_rng(0)
    for seed in range(30):
        env.reset(seed=seed)
        fast, slow = StageHeuristicRollout(), StageHeuristicPolicy()
        done = False
        while not done:
            core = env.unwrapped.core
            act = fast.act_core(core)
            assert act == slow(env.unwrapped.observe(core))
            act = act if rng.random() < 0.7 else int(rng.integers(8))  # visit other states too
            _, _, term, trunc, _ = env.step(act)
            done = term or trunc


# --------------------------------------------------------------------------------------------
# telescoping on real episodes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_emotion_delta_telescopes(seed):
    env = make("emotion_delta", reward_kwargs={"scale": 0.01})
    actions = np.random.default_rng(seed).integers(8, size=20)
    steps = episode(env, actions, seed)
    e0, eT = steps[0][4]["emotion"], steps[-1][4]["emotion"]
    assert sum(s[1] for s in steps) == pytest.approx((eT - e0) * 0.01, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_potential_shaping_telescopes(seed):
    gamma = 0.9
    env = make("potential_emotion", reward_kwargs={"gamma": gamma})
    policy = [0, 1, 2, 4] if seed % 2 else np.random.default_rng(seed).integers(8, size=20)
    steps = episode(env, list(policy) * 5, seed)[1:]
    shaping = [s[4]["reward_components"]["potential_emotion"] for s in steps]
    T = len(steps)
    phi0 = steps[0][4]["emotion_before"] / 100
    terminated = steps[-1][2]
    phiT = 0.0 if terminated else steps[-1][4]["emotion"] / 100
    discounted = sum(gamma**t * f for t, f in enumerate(shaping))
    assert discounted == pytest.approx(gamma**T * phiT - phi0, abs=1e-12)
    # The task reward is kept: reward = sparse bonus + F.
    for s, f in zip(steps, shaping, strict=True):
        assert s[1] == pytest.approx(s[4]["reward_components"]["sparse"] + f, abs=1e-15)


# --------------------------------------------------------------------------------------------
# gym.make, components, stacking
# --------------------------------------------------------------------------------------------


def test_default_reward_is_the_bare_envs_bonus_with_components():
    assert DEFAULT_REWARD == "sparse"
    env, bare = gym.make(ENV_ID, voice="template"), make(None)
    assert isinstance(env.unwrapped, EmpathyDialogueEnv)
    assert any(isinstance(w, SparseBonus) for w in iter_stack(env))
    assert not any(isinstance(w, gym.Wrapper) and hasattr(w, "keys") for w in iter_stack(bare))
    actions = [0, 1, 0, 2, 4, 5, 6, 2, 4, 2] * 2
    for seed in range(10):
        a, b = episode(env, actions, seed), episode(bare, actions, seed)
        assert [x[1] for x in a] == [x[1] for x in b]
        assert "reward_components" in a[-1][4] and "reward_components" not in b[-1][4]


def test_unknown_reward_lists_the_valid_ones():
    valid = ", ".join(["None", *map(repr, sorted(REWARDS))])
    with pytest.raises(ValueError, match=re.escape(f"unknown reward 'dense'; valid: {valid}")):
        make("dense")
    with pytest.raises(ValueError, match="reward_kwargs given with reward=None"):
        make(None, reward_kwargs={"scale": 1.0})
    with pytest.raises(TypeError):
        make("emotion_delta", reward_kwargs={"horizon": 2})


@pytest.mark.parametrize("reward", NAMES)
def test_every_reward_logs_its_components_and_passes_the_checkers(reward):
    from gymnasium.utils.env_checker import check_env

    env = make(reward)
    check_env(env.unwrapped)
    _, info = env.reset(seed=0)
    keys = set(info["reward_components"])
    assert keys and all(v == 0.0 for v in info["reward_components"].values())
    for a in [0, 1, 2, 4]:
        _, r, term, trunc, info = env.step(a)
        assert set(info["reward_components"]) == keys  # the same keys every step
        assert isinstance(r, float)
        if term or trunc:
            break
    # The spec records every wrapper's arguments: gym.make(spec) rebuilds the same stack.
    again = gym.make(env.spec)
    names = [w.name for w in env.spec.additional_wrappers]
    assert [w.name for w in again.spec.additional_wrappers] == names
    actions = [0, 1, 2, 4, 5, 2, 4]
    assert [s[1] for s in episode(env, actions, 3)] == [s[1] for s in episode(again, actions, 3)]


def test_spec_survives_arguments_that_cannot_be_copied():
    # gym.make asserts the entry point's env has a spec; Gymnasium's Wrapper.spec deep-copies
    # it and gives None for an env made with, say, a backend object holding a lock.
    import dataclasses
    import threading

    class LockedPolicy(StageHeuristicPolicy):
        lock = None

        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()

    bare = make(None).unwrapped  # the entry point wraps the env itself
    bare.spec = dataclasses.replace(bare.spec, kwargs={"backend": threading.Lock()})
    env = CritiqueFeedback(MultiTurnValueReward(bare, rollout_policy=LockedPolicy()))
    # ... and through gym.make, with a backend object that holds a lock.
    locked = SimpleNamespace(lock=threading.Lock())
    assert gym.make(ENV_ID, voice="template", backend=locked, reward="multi_turn").unwrapped.spec
    assert [w.name for w in env.spec.additional_wrappers][-2:] == [
        "MultiTurnValueReward",
        "CritiqueFeedback",
    ]


def test_stacked_wrappers_accumulate_components_and_a_user_wrapper_sees_them():
    class Spy(gym.Wrapper):
        def step(self, action):
            out = self.env.step(action)
            self.seen = out[4]
            return out

    env = Spy(NextTurnReward(EmotionDeltaReward(SparseBonus(make(None), kind="final_emotion"))))
    env.reset(seed=0)
    _, r, _, _, info = env.step(0)
    assert env.seen is info
    c = info["reward_components"]
    assert {"final_emotion", "emotion_delta", "next_turn"} <= set(c)
    assert r == c["next_turn"]  # the outermost reward wrapper's reward is the reward
    with pytest.raises(ValueError, match="already in this stack"):
        EmotionDeltaReward(env)
    two = EmotionDeltaReward(EmotionDeltaReward(make(None)), scale=1.0, name="emotion_points")
    two.reset(seed=0)
    c = two.step(0)[4]["reward_components"]
    assert c["emotion_points"] == pytest.approx(100 * c["emotion_delta"])


def test_critique_feedback_speaks_to_the_agent():
    env = CritiqueFeedback(make("sparse"))
    bare = make("sparse")
    a, b = episode(env, [5, 0, 1], 0), episode(bare, [5, 0, 1], 0)
    assert [x[1] for x in a] == [x[1] for x in b]
    critique = a[1][4]["critique"]
    assert critique.startswith("Providing Suggestions: emotion ")
    assert "You jumped to advice before you understood what they're going through." in critique
    assert as_feedback("Now we're talking about them instead of me.") == (
        "Now we're talking about you instead of them."
    )
    assert as_feedback("They noticed how I feel; that helps a little.") == (
        "You noticed how they feel; that helps a little."
    )


def test_wrapped_env_pickles_and_deepcopies_mid_episode():
    env = make("multi_turn")
    env.reset(seed=4)
    env.step(0)
    env.step(1)
    clones = [pickle.loads(pickle.dumps(env)), copy.deepcopy(env)]
    original = [env.step(a)[1] for a in [2, 4, 5]]
    for clone in clones:
        assert [clone.step(a)[1] for a in [2, 4, 5]] == original


def test_env_card_renders_from_the_class_behind_the_factory():
    cards = load_script(ROOT / "docs/hooks/env_cards.py", "env_cards")
    card = cards.render_card(ENV_ID)
    assert "## Observation Space" in card and "## Rewards" in card


# --------------------------------------------------------------------------------------------
# vector envs: no reward leaks across episodes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", None])
@pytest.mark.parametrize("reward", ["final_emotion", "multi_turn", "potential_emotion"])
def test_next_step_autoreset_does_not_leak(mode, reward):
    extra = {"vectorization_mode": mode} if mode else {}
    envs = gym.make_vec(ENV_ID, num_envs=2, voice="template", reward=reward, **extra)
    envs.reset(seed=0)
    singles = [make(reward) for _ in range(2)]
    for i, env in enumerate(singles):
        env.reset(seed=i)  # make_vec seeds env i with seed + i
    ended = np.zeros(2, bool)
    resets = 0
    for t in range(25):
        actions = np.array([t % 8, (3 * t) % 8])
        _, r, term, trunc, infos = envs.step(actions)
        c = infos["reward_components"]
        for i in range(2):
            if ended[i]:  # the autoreset step: reward 0, components of the new episode (0)
                resets += 1
                assert r[i] == 0.0
                assert all(v[i] == 0.0 for k, v in c.items() if not k.startswith("_"))
                singles[i].reset()
            else:
                expected = singles[i].step(int(actions[i]))
                assert r[i] == pytest.approx(expected[1])
        ended = term | trunc
    assert resets >= 2
    envs.close()


@pytest.mark.parametrize("reward", ["sparse", "next_turn", "multi_turn"])
def test_sb3_vec_env_episode_returns_match_single_envs(reward):
    from stable_baselines3.common.env_util import make_vec_env

    env_kwargs = {"voice": "template", "reward": reward, "render_mode": None}
    venv = make_vec_env(ENV_ID, n_envs=2, seed=0, env_kwargs=env_kwargs)
    venv.reset()
    single = make(reward)
    returns, current = [[], []], np.zeros(2)
    for t in range(40):
        _, r, done, _ = venv.step(np.array([t % 8, (t + 3) % 8]))
        current += r
        for i in np.flatnonzero(done):
            returns[i].append(current[i])
            current[i] = 0.0
    # Replay env 0's episodes on a single env, with the same seeds and actions.
    single.reset(seed=0)
    replay, total, t = [], 0.0, 0
    while len(replay) < len(returns[0]):
        _, r, term, trunc, _ = single.step(t % 8)
        total += r
        t += 1
        if term or trunc:
            replay.append(total)
            total = 0.0
            single.reset()
    assert replay == pytest.approx(returns[0])
    venv.close()


# --------------------------------------------------------------------------------------------
# invariance: no wrapper changes what the agent sees or what the user does
# --------------------------------------------------------------------------------------------


def trajectory(env, actions, seed):
    steps = episode(env, actions, seed)
    u = env.unwrapped
    obs = [s[0] for s in steps]
    ends = [(s[2], s[3]) for s in steps]
    emotions = [s[4]["emotion"] for s in steps]
    return obs, ends, emotions, state_dict(u.core), u.np_random.bit_generator.state


@settings(max_examples=30, deadline=None)
@given(
    actions=st.lists(st.integers(0, 7), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
    reward=st.sampled_from([*NAMES, "stack"]),
)
def test_no_wrapper_changes_the_simulation(actions, seed, reward):
    if reward == "stack":
        env = CritiqueFeedback(
            CompositeReward(make("multi_turn"), {"multi_turn": 1.0, "next_turn": 0.5})
        )
    else:
        env = make(reward)
    bare = make(None)
    got, want = trajectory(env, actions, seed), trajectory(bare, actions, seed)
    obs, ends, emotions, state, rng = got
    assert ends == want[1] and emotions == want[2] and state == want[3] and rng == want[4]
    for a, b in zip(obs, want[0], strict=True):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------------------
# the benchmark script
# --------------------------------------------------------------------------------------------


@pytest.mark.benchmark
def test_reward_cost_benchmark_quick(tmp_path):
    bench = load_script(ROOT / "benchmarks/reward_cost.py", "reward_cost")
    out = tmp_path / "reward_cost.json"
    results = bench.main(bench.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert saved["multi_turn_ratio"] == results["multi_turn_ratio"]
    assert saved["us_per_core_step"] > 0 and "multi_turn" in saved["us_per_env_step"]


def test_rewards_page_examples_run():
    """The python examples of docs/rewards.md run, in order, as written."""
    page = (ROOT / "docs" / "rewards.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, flags=re.MULTILINE | re.DOTALL)
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "__docs_example__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/rewards.md[python block {i}]", "exec"), namespace)
    assert "grounding/cue" in namespace["info"]["reward_components"]


def test_package_exports():
    assert dialogue_gym.ENV_IDS[0] == ENV_ID
    assert list(REWARDS)[0] == DEFAULT_REWARD
    # Every reward is either a sum of registered components (so the probes measure it) or
    # declared as not one; each component is a wrapper that takes name=.
    for name in REWARDS:
        components = reward_components(name)
        assert components is None or set(components) <= set(COMPONENT_WRAPPERS), name
    assert set(reward_probes()) == {n for n in REWARDS if reward_components(n) is not None}
    assert reward_components("composite") is None


class _Scaled(ComponentRewardWrapper):
    """A wrapper whose author wrote no argument-recording code at all."""

    parts = ("raw",)

    def __init__(self, env, factor, offset=0.5, *, note=None, name="scaled", **extra):
        super().__init__(env, name)
        self.factor, self.offset = factor, offset

    def reward(self, reward, terminated, truncated, info):
        return self.factor * info["emotion"] + self.offset, (info["emotion"],)


class _Doubled(_Scaled):
    def __init__(self, env, name="doubled"):
        super().__init__(env, 2.0, name=name)


def test_a_new_wrapper_records_all_its_arguments_by_itself():
    env = _Scaled(make(None), 0.1, note={"a": [1]}, flavour="mint")
    expected = {
        "factor": 0.1,
        "offset": 0.5,
        "note": {"a": [1]},
        "name": "scaled",
        "flavour": "mint",
    }
    assert env._saved_kwargs == expected
    assert env.spec.additional_wrappers[-1].kwargs == expected
    assert env.spec.additional_wrappers[-1].entry_point == f"{__name__}:_Scaled"
    # A subclass records its own arguments, not the ones it passes to super().__init__.
    assert _Doubled(make(None))._saved_kwargs == {"name": "doubled"}
    # gym.make(spec) rebuilds the wrapper with the same arguments.
    again = gym.make(env.spec)
    assert (again.factor, again.offset, again.name) == (0.1, 0.5, "scaled")


def test_recorded_arguments_copy_containers_and_share_objects():
    policy = StageHeuristicRollout()
    weights = {"sparse": 1.0, "emotion_delta": 0.5}
    env = CompositeReward(make(None), weights, reward_kwargs={"emotion_delta": {"scale": 0.1}})
    weights["sparse"] = 9.0  # the caller's dict changes afterwards: the record does not
    assert env._saved_kwargs["weights"] == {"sparse": 1.0, "emotion_delta": 0.5}
    mt = MultiTurnValueReward(make(None), rollout_policy=policy)
    assert mt._saved_kwargs["rollout_policy"] is policy  # a policy may be a model: not copied
    assert set(mt._saved_kwargs) == set(inspect.signature(MultiTurnValueReward).parameters) - {
        "env"
    }


@pytest.mark.parametrize(
    "wrapper",
    [SparseBonus, NextTurnReward, MultiTurnValueReward, EmotionDeltaReward, PotentialShapedEmotion],
)
def test_every_built_in_wrapper_records_every_argument(wrapper):
    env = wrapper(make(None))
    assert set(env._saved_kwargs) == set(inspect.signature(wrapper).parameters) - {"env"}


class _DelayedHeuristic:
    """The stage heuristic with ``k`` comfort turns before each help act it chooses."""

    def __init__(self, k):
        self.k = k

    def reset(self, seed=None):
        self.inner, self.pending, self.left = StageHeuristicPolicy(), None, 0

    def __call__(self, obs):
        from dialogue_gym.core.vocabulary import AFFIRMATION, HELP_ACTS, REFLECTION

        if self.pending is not None:
            if self.left:
                self.left -= 1
                return REFLECTION if self.left % 2 else AFFIRMATION
            act, self.pending = self.pending, None
            return act
        act = self.inner(obs)
        if act in HELP_ACTS and self.k:
            self.pending, self.left = act, self.k - 1
            return REFLECTION
        return act


@pytest.mark.slow
def test_only_the_value_form_pays_for_delaying_success():
    # docs/rewards.md, "Does any reward pay for prolonging?": the same successes, reached one
    # or two turns later, earn more only when each turn pays a level (the value form).
    from dialogue_gym.evaluation.episodes import run_episode

    def mean_return(reward, kwargs, k):
        env = gym.make(
            ENV_ID, voice="template", scenarios="test", reward=reward, reward_kwargs=kwargs
        )
        cards = range(len(env.unwrapped.cards))  # the 72 test cards, as the study plays them
        results = [run_episode(env, _DelayedHeuristic(k), seed=10_000 + c, card=c) for c in cards]
        assert np.mean([r.success for r in results]) > 0.95  # the delay costs no success
        return float(np.mean([sum(r.rewards) for r in results]))

    value = [mean_return("multi_turn", {"mode": "value"}, k) for k in (0, 1, 2)]
    assert value[0] < value[1] < value[2]
    for reward in ("sparse", "final_emotion", "multi_turn", "emotion_delta", "potential_emotion"):
        returns = [mean_return(reward, None, k) for k in (0, 1, 2)]
        assert returns[2] <= returns[1] <= returns[0] + 1e-9, reward
    next_turn = [mean_return("next_turn", None, k) for k in (0, 1, 2)]
    assert max(next_turn) - next_turn[0] < 0.05  # no trend: not a level payment
