"""The env contract, for every registered id: spaces, checkers, seeding, pickling, fork."""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import dialogue_gym
from dialogue_gym import NEEDS, STRATEGIES, USER_ACTS


def rollout(env, actions, seed, card=None):
    options = {"card": card} if card is not None else None
    obs, info = env.reset(seed=seed, options=options)
    trace = [(obs, info["user_utterance"])]
    for a in actions:
        obs, reward, term, trunc, info = env.step(a)
        trace.append(
            (
                obs,
                reward,
                term,
                trunc,
                info["user_utterance"],
                info["agent_utterance"],
                info["emotion"],
            )
        )
        if term or trunc:
            break
    return trace


def same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_constants_are_esconv():
    assert STRATEGIES == (
        "Question",
        "Restatement or Paraphrasing",
        "Reflection of feelings",
        "Self-disclosure",
        "Affirmation and Reassurance",
        "Providing Suggestions",
        "Information",
        "Others",
    )
    assert {"be_heard", "validation", "practical_suggestions", "information"} <= set(NEEDS)


def test_registered(env_id):
    assert env_id in gym.registry
    assert env_id in dialogue_gym.ENV_IDS


def test_gymnasium_check_env(make_env):
    gym_check_env(make_env().unwrapped, skip_render_check=False)


def test_sb3_check_env(make_env):
    env = make_env()
    if isinstance(env.action_space, gym.spaces.Text):
        pytest.skip("SB3's check_env does not support Text spaces (SB3 has no text policies)")
    sb3_check_env(env.unwrapped, warn=True)


def test_spaces(make_env):
    env = make_env()
    if isinstance(env.action_space, gym.spaces.Text):  # a free-text env: the utterance
        assert env.action_space.max_length >= 500 and env.action_space.contains("Hi, I'm here.")
    else:
        assert env.action_space == gym.spaces.Discrete(8)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    assert obs["emotion"].shape == (8,)
    assert obs["user_act"].shape == (len(USER_ACTS),)
    assert obs["need_cues"].shape == (len(NEEDS),)
    for _ in range(10):
        obs, *_rest, term, trunc, _info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        if term or trunc:
            break


def test_seeded_replay_is_identical(make_env, act):
    env = make_env()
    actions = [act(i) for i in (0, 1, 2, 4, 5, 6, 3, 7, 0, 2)]
    assert same(rollout(env, actions, seed=7), rollout(env, actions, seed=7))
    assert not same(rollout(env, actions, seed=7), rollout(env, actions, seed=8))


def test_voice_does_not_change_dynamics(make_env, env_id, act):
    """The same seed gives the same emotions whichever realiser speaks for the agent."""
    from dialogue_gym.user.voices import TemplateUserVoice

    env = make_env()
    actions = [act(i) for i in (0, 1, 2, 5, 4)]
    a = [x[-1] for x in rollout(env, actions, seed=3)[1:]]
    env.unwrapped.voice = TemplateUserVoice()  # a fresh voice instance, same dynamics
    b = [x[-1] for x in rollout(env, actions, seed=3)[1:]]
    assert a == b


def test_info_fields(make_env, act):
    env = make_env()
    _, info = env.reset(seed=0)
    assert info["messages"][0]["role"] == "user" and info["messages"][0]["trainable"] is False
    done = False
    while not done:
        _, reward, term, trunc, info = env.step(act(0))
        done = term or trunc
        for key in (
            "emotion",
            "emotion_before",
            "reason",
            "user_act",
            "user_utterance",
            "agent_utterance",
            "messages",
            "strategy",
            "resolved",
        ):
            assert key in info, key
        assert 0 <= info["emotion"] <= 100
        assert info["user_utterance"] and info["agent_utterance"]
        roles = [m["role"] for m in info["messages"]]
        assert roles[-2:] == ["assistant", "user"]
        assert all(m["trainable"] == (m["role"] == "assistant") for m in info["messages"])
    assert {"success", "user_left", "need"} <= set(info)
    assert info["need"] in NEEDS


def test_truncation_at_max_turns(make_env, act):
    env = make_env(max_turns=3)
    env.reset(seed=0)
    flags = [env.step(act(i % 2))[2:4] for i in range(3)]
    assert flags[-1] == (False, True)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(act(0))


@pytest.mark.parametrize("bad", [8, -1, 2.5, "0", None, [0, 1], np.array([1, 2])])
def test_out_of_space_action_is_a_clear_error(make_env, act, bad):
    env = make_env()
    env.reset(seed=0)
    if env.action_space.contains(bad):  # "0" is an utterance in a free-text env
        pytest.skip(f"{bad!r} is a valid action of this env (an utterance)")
    with pytest.raises(ValueError, match="outside the action space"):
        env.step(bad)
    if isinstance(env.action_space, gym.spaces.Discrete):
        env.step(np.int64(2))  # the env is still usable
        env.step(np.array(3))
    else:
        env.step(act(2))  # the env is still usable
        env.step(np.str_(act(3)))


def test_bad_arguments(env_id):
    with pytest.raises(ValueError, match="max_turns"):
        gym.make(env_id, voice="template", max_turns=0)
    with pytest.raises(ValueError, match="render_mode"):
        gym.make(env_id, voice="template", render_mode="depth_array")
    with pytest.raises(ValueError, match="soothing_celing"):
        gym.make(env_id, voice="template", sim={"soothing_celing": 80})
    with pytest.raises(ValueError, match="voice"):
        gym.make(env_id, voice="shout")
    env = gym.make(env_id, voice="template")
    with pytest.raises(ValueError, match="no card"):
        env.reset(options={"card": "nope"})
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(0)


def test_card_option_and_splits(make_env):
    test_env = make_env(scenarios="test")
    card = test_env.unwrapped.cards[3]
    _, info = test_env.reset(seed=0, options={"card": card.id})
    # What every step shows is an opaque key, which never spells the hidden need; reset takes it.
    assert info["card_id"] == card.key and card.hidden_need not in info["card_id"]
    assert test_env.unwrapped.card is card
    test_env.reset(seed=0, options={"card": card.key})
    assert test_env.unwrapped.card is card
    done, action = False, test_env.action_space.sample()
    while not done:
        *_, terminated, truncated, info = test_env.step(action)
        done = terminated or truncated
    assert info["card"] == card.id  # the full id: the terminal info only
    train_sits = {c.situation_id for c in make_env(scenarios="train").unwrapped.cards}
    assert not train_sits & {c.situation_id for c in test_env.unwrapped.cards}


def test_pickle_and_deepcopy_mid_episode(make_env, act):
    env = make_env()
    env.reset(seed=5)
    env.step(act(0))
    for clone in (pickle.loads(pickle.dumps(env)), copy.deepcopy(env)):
        a = env.unwrapped.fork()
        got = [clone.step(act(1))[4]["emotion"], clone.step(act(2))[4]["emotion"]]
        want = [a.step(act(1))[4]["emotion"], a.step(act(2))[4]["emotion"]]
        assert got == want


def test_fork_is_independent(make_env, act):
    env = make_env()
    env.reset(seed=11)
    env.step(act(0))
    base = env.unwrapped
    state_before = base.core.state.copy()
    rng_before = copy.deepcopy(base.np_random.bit_generator.state)
    fork = base.fork()
    for a in (1, 2, 4, 5):
        fork.step(act(a))
    assert base.core.state == state_before
    assert base.np_random.bit_generator.state == rng_before
    assert len(base.messages) == 3
    # and the fork continues exactly as the original would have
    fork2 = base.fork()
    assert [fork2.step(act(a))[4]["emotion"] for a in (1, 2)] == [
        base.step(act(a))[4]["emotion"] for a in (1, 2)
    ]


def test_render(make_env, act):
    env = make_env(render_mode="ansi")
    env.reset(seed=0)
    env.step(act(0))
    text = env.render()
    assert "[" in text and "Agent [Question]" in text
    assert text.count("\n") >= 3


def test_human_render_prints(make_env, act, capsys):
    env = make_env(render_mode="human")
    env.reset(seed=0)
    env.step(act(2))
    assert "Reflection of feelings" in capsys.readouterr().out


def test_sim_config_passes_through(make_env):
    env = make_env(sim={"soothing_ceiling": 90.0})
    assert env.unwrapped.config.soothing_ceiling == 90.0
    env2 = make_env(sim=dialogue_gym.SimConfig(drift=0.0))
    assert env2.unwrapped.config.drift == 0.0


@pytest.mark.llm
def test_default_env_speaks_with_the_embedded_llm(env_id, act):
    """gym.make(id) with no arguments uses the LLM voice; a seeded episode replays exactly."""
    env = gym.make(env_id, scenarios="test")
    texts = []
    for _ in range(2):
        _, info = env.reset(seed=21)
        assert info["voice"] == "llm" and info["voice_config"]["user"]["backend"] == "llama_cpp"
        run = [info["user_utterance"]]
        for a in (0, 2):
            run.append(env.step(act(a))[4]["user_utterance"])
        texts.append(run)
    assert texts[0] == texts[1]
    assert all(t.strip() for t in texts[0])
    # the same seed with the template voice follows the same dynamics
    tmpl = gym.make(env_id, scenarios="test", voice="template")
    tmpl.reset(seed=21)
    env.reset(seed=21)
    assert [tmpl.step(act(a))[4]["emotion"] for a in (0, 2)] == [
        env.step(act(a))[4]["emotion"] for a in (0, 2)
    ]
    from dialogue_gym.llm.backends import get_backend

    assert get_backend("llama_cpp") is get_backend("llama_cpp")  # one model per process


@settings(max_examples=40, deadline=None)
@given(
    actions=st.lists(st.integers(0, 7), min_size=1, max_size=15),
    seed=st.integers(0, 2**31 - 1),
    sim=st.fixed_dictionaries(
        {},
        optional={
            "soothing_ceiling": st.floats(0, 100),
            "noise": st.floats(0, 10),
            "drift": st.floats(0, 1),
            "premature_penalty": st.floats(0, 20),
            "max_change": st.floats(0, 30),
        },
    ),
)
def test_any_action_sequence_keeps_the_invariants(actions, seed, sim):
    env = gym.make("EmpathyDialogue-v0", voice="template", sim=sim, max_turns=12)
    obs, info = env.reset(seed=seed)
    cfg = env.unwrapped.config
    for turn, a in enumerate(actions, start=1):
        obs, reward, term, trunc, info = env.step(a)
        assert env.observation_space.contains(obs)
        assert 0.0 <= info["emotion"] <= 100.0
        assert abs(info["change"]) <= cfg.max_change + 1e-9
        assert reward == float(term and info["success"])
        assert info["turn"] == turn
        assert not (term and trunc)
        if term or trunc:
            assert info["success"] != info["user_left"] or not info["success"]
            assert trunc == (turn >= 12 and not term)
            break


def test_silent_fork_has_the_same_dynamics(make_env, act):
    env = make_env()
    env.reset(seed=13)
    env.step(act(0))
    silent = env.unwrapped.fork(voice=False)
    loud = env.unwrapped.fork()
    for a in (1, 2, 5):
        s, l_ = silent.step(act(a)), loud.step(act(a))
        assert s[4]["emotion"] == l_[4]["emotion"] and np.array_equal(s[0]["score"], l_[0]["score"])
        assert s[4]["user_utterance"] == "" and l_[4]["user_utterance"]
    assert env.unwrapped.voice.kind == "template"


def test_fork_with_noise_replaces_only_the_future_noise(make_env, act):
    env = make_env()
    env.reset(seed=3)
    env.step(act(0))
    base = env.unwrapped
    turns = base.max_turns
    same = base.fork(voice=False)
    calm = base.fork(voice=False, noise=[0.0] * turns)
    wild = base.fork(voice=False, noise=[4.0] * turns)
    first = [f.step(act(4))[4]["change"] for f in (same, calm, wild)]
    assert first[1] != first[2]  # the noise is the fork's own
    assert base.step(act(4))[4]["change"] == first[0]  # no noise given: the same future


def test_observations_are_new_writable_float32_arrays(make_env, act):
    # One array per step, sliced into views: a kept observation must not change later.
    env = make_env()
    obs, _ = env.reset(seed=0)
    kept = {k: v.copy() for k, v in obs.items() if isinstance(v, np.ndarray)}
    nxt, *_ = env.step(act(0))
    for key, value in kept.items():
        assert np.array_equal(obs[key], value)
        assert obs[key].dtype == np.float32 and obs[key].flags.writeable
        assert not np.shares_memory(obs[key], nxt[key])
    assert env.observation_space.contains(nxt)


def test_a_new_sim_config_takes_effect_at_the_next_reset(make_env):
    # Resets fork a cached new user per card; the cache must follow the config.
    env = make_env()
    env.reset(seed=0)
    base = env.unwrapped
    old = base.fork_user()
    base.config = dialogue_gym.SimConfig(success_threshold=60.0)
    env.reset(seed=0)
    user = base.fork_user()
    assert user.config is base.sim_config and user.config.success_threshold == 60.0
    assert old.config.success_threshold != 60.0


def test_the_default_reward_wrapper_fast_path_honours_a_subclass():
    from dialogue_gym.rewards.sparse import SparseBonus

    class EveryTurn(SparseBonus):
        def reward(self, reward, terminated, truncated, info):
            return 0.25, (0.0, 0.0)

    env = EveryTurn(gym.make("EmpathyDialogue-v0", voice="template", reward=None))
    env.reset(seed=0)
    _, r, *_, info = env.step(0)
    assert r == 0.25 and info["reward_components"]["sparse"] == 0.25
    plain = SparseBonus(gym.make("EmpathyDialogue-v0", voice="template", reward=None))
    plain.reset(seed=0)
    _, r, *_, info = plain.step(0)
    assert r == 0.0 and info["reward_components"] == {
        "sparse": 0.0,
        "sparse/success": 0.0,
        "sparse/left": 0.0,
    }
