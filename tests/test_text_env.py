"""EmpathyDialogueText-v0: the free-text action, its treatment of bad text, and its dynamics.

The generic env contract (check_env, seeding, pickling, fork, render) runs on this env too,
in tests/test_env.py (parametrised over every registered id).
"""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from fake_backends import ScriptedBackend
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import dialogue_gym
from dialogue_gym import STRATEGIES
from dialogue_gym.envs.text import (
    CHARSET,
    DEFAULT_MAX_LENGTH,
    EXAMPLE_UTTERANCES,
    check_text,
    to_action,
)

ENV_ID = "EmpathyDialogueText-v0"


def make(**kwargs):
    return gym.make(ENV_ID, **{"voice": "template", "scenarios": "test", **kwargs})


def test_registered_with_a_text_action_and_an_utterance_observation():
    assert ENV_ID in dialogue_gym.ENV_IDS
    env = make()
    assert isinstance(env.action_space, gym.spaces.Text)
    assert env.action_space.max_length == DEFAULT_MAX_LENGTH == 1000
    assert env.action_space.min_length == 0
    assert isinstance(env.observation_space["utterance"], gym.spaces.Text)
    strategy_keys = set(gym.make("EmpathyDialogue-v0", voice="template").observation_space.spaces)
    assert set(env.observation_space.spaces) == strategy_keys | {"utterance"}
    assert "charset=CHARSET" in repr(env.action_space)  # not 450 characters of charset


@pytest.mark.parametrize(
    "text",
    [
        "Tomás, I'm so sorry \u2014 that sounds awful \U0001f614",
        "\u201cYou\u2019re not alone\u201d\u2026 \u2764\ufe0f \U0001f44d\U0001f3fd",
        "Mar\u00eda, Zo\u00eb, Bj\u00f8rn, \u0141ukasz, Fran\u00e7oise: 100% \u20ac5 \u00a33 #1 @you",
        "Line one.\n\tLine two.",
        "",
    ],
)
def test_the_charset_takes_real_text(text):
    env = make()
    assert env.action_space.contains(text)
    env.reset(seed=0)
    env.step(text)


def test_sampled_actions_are_valid_and_read_as_others():
    env = make(max_turns=30)
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(30):
        action = env.action_space.sample()
        assert env.action_space.contains(action)
        _, _, term, trunc, info = env.step(action)
        assert info["strategy"] == "Others"  # random characters carry no strategy
        if term or trunc:
            break


def test_gymnasium_check_env_with_the_llm_recogniser():
    backend = ScriptedBackend("Reflection of feelings")
    gym_check_env(make(recogniser="llm", backend=backend).unwrapped)
    assert backend.chats


def test_observation_carries_the_users_utterance():
    env = make()
    obs, info = env.reset(seed=3)
    assert obs["utterance"] == info["user_utterance"] and obs["utterance"]
    obs, *_, info = env.step(EXAMPLE_UTTERANCES[0])
    assert obs["utterance"] == info["user_utterance"]
    assert env.observation_space.contains(obs)
    assert env.unwrapped.observe(env.unwrapped.core.fork())["utterance"] == ""


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (5, "pass the agent's utterance as a str, got int"),
        (None, "got NoneType"),
        (b"hello", "got bytes"),
        (["hello"], "got list"),
        (np.array(["hello"]), "got ndarray"),
        (3.5, "got float"),
        ("x" * 1001, "1001 characters, the most is 1000"),
        ("hi\x00there", r"'\\x00' \(U\+0000, a control character\) at position 2"),
        ("hi\rthere", r"U\+000D, a control character"),
        ("\x1b[31mred", r"U\+001B, a control character\) at position 0"),
        ("zero\u200dwidth", r"U\+200D, a control character"),
        ("Привет", r"U\+041F, not in the action charset"),
        ("你好", r"U\+4F60, not in the action charset"),
    ],
)
def test_bad_text_is_a_clear_error_and_the_env_stays_usable(bad, match):
    env = make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside the action space") as err:
        env.step(bad)
    assert err.match(match)
    _, _, _, _, info = env.step(EXAMPLE_UTTERANCES[0])  # the env is still usable
    assert info["turn"] == 1  # the bad action did not count as a turn


def test_the_length_limit_is_an_argument():
    env = make(max_length=20)
    env.reset(seed=0)
    env.step("a" * 20)
    with pytest.raises(ValueError, match="21 characters, the most is 20"):
        env.step("a" * 21)
    with pytest.raises(ValueError, match="max_length"):
        make(max_length=0)


@pytest.mark.parametrize("silence", ["", " ", "\n\t  \n"])
def test_silence_is_others_with_a_reason(silence):
    env = make()
    env.reset(seed=0)
    _, _, _, _, info = env.step(silence)
    assert info["strategy"] == "Others" and info["acts"] == ("Others",)
    assert info["recognition"]["reason"] == "the agent said nothing"
    assert info["recognition"]["source"] == "silence"
    assert info["agent_utterance"] == silence


def test_the_primary_act_drives_the_same_dynamics_as_the_strategy_env():
    """Saying the example utterance for strategy i is stepping strategy i, for every card."""
    text_env, strategy_env = (
        make(),
        gym.make("EmpathyDialogue-v0", voice="template", scenarios="test"),
    )
    plan = [0, 1, 0, 2, 4, 5, 6, 3, 7, 2]
    for k in range(0, len(text_env.unwrapped.cards), 9):
        a_obs, _ = text_env.reset(seed=k, options={"card": k})
        b_obs, _ = strategy_env.reset(seed=k, options={"card": k})
        for i in plan:
            a_obs, a_r, a_term, a_trunc, a_info = text_env.step(EXAMPLE_UTTERANCES[i])
            b_obs, b_r, b_term, b_trunc, b_info = strategy_env.step(i)
            assert a_info["strategy"] == STRATEGIES[i]
            assert a_info["emotion"] == b_info["emotion"] and a_info["reason"] == b_info["reason"]
            assert (a_r, a_term, a_trunc) == (b_r, b_term, b_trunc)
            for key in b_obs:
                assert np.array_equal(a_obs[key], b_obs[key]), key
            if a_term or a_trunc:
                break


def test_multi_label_utterances_are_appraised_on_the_primary_act():
    text = "I went through something like that too. How are you holding up?"
    env = make()
    env.reset(seed=4)
    info = env.step(text)[4]
    assert info["acts"][0] == info["strategy"] == "Self-disclosure"
    assert "Question" in info["acts"]
    twin = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    twin.reset(seed=4)
    assert twin.step(STRATEGIES.index("Self-disclosure"))[4]["emotion"] == info["emotion"]
    assert info["messages"][-2]["strategy"] == "Self-disclosure"


def test_info_records_the_recognition_and_the_agents_own_words():
    env = make()
    _, info = env.reset(seed=0)
    assert info["voice_config"]["agent"] == {"recogniser": "lexical"}
    text = "Maybe you could try writing down what worries you most."
    info = env.step(text)[4]
    assert info["agent_utterance"] == text and info["messages"][-2]["content"] == text
    assert info["recognition"]["source"] == "lexical"
    assert info["recognition"]["injection"] is None


def test_the_llm_recogniser_reads_the_acts():
    backend = ScriptedBackend("Affirmation and Reassurance")
    env = make(recogniser="llm", backend=backend)
    env.reset(seed=0)
    info = env.step("You handled that so well.")[4]
    assert info["strategy"] == "Affirmation and Reassurance"
    assert info["recognition"]["source"] == "llm"
    assert env.unwrapped.recogniser.calls == 1


def test_pickles_without_the_model():
    env = make(recogniser="llm")  # the embedded model's spec; never loaded here
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.unwrapped.recogniser.client._backend is None
    assert clone.unwrapped.recogniser.client.spec == "llama_cpp"


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=1200))
def test_any_string_is_a_valid_step_or_a_value_error(text):
    env = make()
    env.reset(seed=0)
    try:
        check_text(text)
    except ValueError:
        with pytest.raises(ValueError, match="outside the action space"):
            env.step(text)
        mapped = to_action(text)
        assert env.action_space.contains(mapped)
        env.step(mapped)
    else:
        obs, *_ = env.step(text)
        assert env.observation_space.contains(obs)


def test_to_action_maps_anything_into_the_space():
    assert to_action("It\u2019s fine\u00a0\u2014 really\r\n") == "It\u2019s fine \u2014 really\n"
    assert to_action("\u4f60\u597d") == "??"
    long = to_action("word " * 400)
    assert len(long) <= 1000 and long.endswith("word")
    assert all(ch in CHARSET for text in EXAMPLE_UTTERANCES for ch in text)


def test_vector_env_steps_utterances():
    envs = gym.make_vec(ENV_ID, num_envs=2, voice="template", scenarios="test")
    obs, _ = envs.reset(seed=0)
    assert len(obs["utterance"]) == 2
    obs, _, _, _, infos = envs.step([EXAMPLE_UTTERANCES[0], EXAMPLE_UTTERANCES[2]])
    assert list(infos["strategy"]) == [STRATEGIES[0], STRATEGIES[2]]
    envs.close()


def test_a_recogniser_backend_error_leaves_the_env_as_it_was():
    from dialogue_gym.llm.backends import BackendError

    class Failing:
        name = "failing"

        def generate(self, chats, params):
            raise BackendError("timed out")

    env = make(recogniser="llm", backend=Failing())
    env.reset(seed=0)
    state = env.unwrapped.core.state.copy()
    with pytest.raises(BackendError, match="timed out"):
        env.step(EXAMPLE_UTTERANCES[0])
    assert env.unwrapped.core.state == state and len(env.unwrapped.messages) == 1
    env.step("")  # silence needs no model: the env steps on
    env.reset(seed=1)
