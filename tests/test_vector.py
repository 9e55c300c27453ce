"""The batched vector env, its autoreset, the LLM-call batching, and the SB3 adapter."""

from __future__ import annotations

import threading

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

import dialogue_gym  # noqa: F401
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES
from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv
from dialogue_gym.integrations.sb3 import SB3VecEnv, make_sb3_vec_env
from dialogue_gym.llm.backends import GenerationParams


def as_actions(env_id, strategies):
    """Strategy indices as actions of ``env_id`` (the text env takes words for them)."""
    if "Text" in env_id:
        return [EXAMPLE_UTTERANCES[int(a)] for a in strategies]
    return [int(a) for a in strategies]


class CountingBackend:
    """A deterministic backend: the reply names the chat's last line and the seed."""

    name = "counting"

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.lock = threading.Lock()

    def generate(self, chats, params: GenerationParams):
        with self.lock:
            self.calls.append(len(chats))
        if self.fail:
            raise RuntimeError("backend down")
        seeds = params.seeds or (0,) * len(chats)
        return [
            f"reply {len(c)} {s % 997}: {c[-1]['content'][:20]}"
            for c, s in zip(chats, seeds, strict=True)
        ]


def test_make_vec_gives_the_batched_vector_env(env_id):
    envs = gym.make_vec(env_id, num_envs=3, voice="template")
    assert isinstance(envs.unwrapped, EmpathyDialogueVectorEnv)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, infos = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    envs.close()


def test_vector_matches_single_envs(env_id):
    n, seed = 3, 10
    envs = gym.make_vec(env_id, num_envs=n, voice="template")
    singles = [gym.make(env_id, voice="template") for _ in range(n)]
    obs, infos = envs.reset(seed=seed)
    for i, env in enumerate(singles):
        o, info = env.reset(seed=seed + i)
        assert np.array_equal(obs["score"][i], o["score"])
        assert infos["user_utterance"][i] == info["user_utterance"]
    rng = np.random.default_rng(0)
    for _ in range(4):
        actions = as_actions(env_id, rng.integers(8, size=n))
        obs, rewards, term, trunc, infos = envs.step(actions)
        for i, env in enumerate(singles):
            o, r, t, tr, info = env.step(actions[i])
            assert np.array_equal(obs["emotion"][i], o["emotion"]) and rewards[i] == r
            assert (term[i], trunc[i]) == (t, tr)
            assert infos["agent_utterance"][i] == info["agent_utterance"]
    envs.close()


def test_next_step_autoreset_resets_with_zero_reward(env_id):
    envs = gym.make_vec(env_id, num_envs=2, voice="template", max_turns=2)
    envs.reset(seed=0)
    envs.step(as_actions(env_id, [0, 0]))
    _, _, term, trunc, _ = envs.step(as_actions(env_id, [0, 0]))
    assert (term | trunc).all()
    # ignored: these users are reset
    obs, rewards, term, trunc, infos = envs.step(as_actions(env_id, [5, 5]))
    assert (rewards == 0).all() and not term.any() and not trunc.any()
    assert (obs["turn"] == 0).all() and (obs["history"] == 0).all()
    envs.close()


def test_llm_voices_make_one_backend_call_per_round():
    backend = CountingBackend()
    n = 4
    envs = EmpathyDialogueVectorEnv(
        n, voice={"name": "llm", "check": False}, agent_voice="llm", backend=backend
    )
    envs.reset(seed=0)
    assert backend.calls == [n]  # the openings, together
    envs.step([0, 1, 2, 3])
    assert backend.calls == [n, n, n]  # one call for the agents' words, one for the users'
    assert envs.backend_calls == 3
    envs.close()


def test_batched_text_equals_unbatched_text():
    backend = CountingBackend()
    envs = EmpathyDialogueVectorEnv(3, voice="llm", backend=backend)
    single = gym.make("EmpathyDialogue-v0", voice="llm", backend=CountingBackend())
    _, infos = envs.reset(seed=5)
    _, info = single.reset(seed=6)
    assert infos["user_utterance"][1] == info["user_utterance"]
    _, _, _, _, infos = envs.step([2, 2, 2])
    _, _, _, _, info = single.step(2)
    assert infos["user_utterance"][1] == info["user_utterance"]
    envs.close()


def test_max_batch_splits_rounds():
    backend = CountingBackend()
    envs = EmpathyDialogueVectorEnv(
        5, voice={"name": "llm", "check": False}, backend=backend, max_batch=2
    )
    envs.reset(seed=0)
    assert backend.calls == [2, 2, 1]
    envs.close()


def test_backend_failure_reaches_the_caller_without_hanging():
    envs = EmpathyDialogueVectorEnv(3, voice="llm", backend=CountingBackend(fail=True))
    with pytest.raises(RuntimeError, match="backend down"):
        envs.reset(seed=0)
    envs.close()


def test_same_step_autoreset_reports_the_final_observation():
    envs = EmpathyDialogueVectorEnv(2, voice="template", max_turns=1, autoreset_mode="same_step")
    envs.reset(seed=0)
    obs, _, _, trunc, infos = envs.step([0, 0])
    assert trunc.all()
    assert (obs["turn"] == 0).all()  # already the next episode
    assert all(infos["final_obs"][i]["turn"][0] == 1.0 for i in range(2))  # as Gymnasium's
    envs.close()


def test_bad_vector_arguments():
    with pytest.raises(ValueError, match="num_envs"):
        EmpathyDialogueVectorEnv(0, voice="template")
    with pytest.raises(ValueError, match="autoreset_mode"):
        EmpathyDialogueVectorEnv(1, voice="template", autoreset_mode="sometimes")
    envs = EmpathyDialogueVectorEnv(2, voice="template")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="2 envs"):
        envs.step([0, 1, 2])
    envs.close()


def test_sb3_adapter_follows_sb3_conventions():
    venv = make_sb3_vec_env(n_envs=2, voice="template", seed=0, max_turns=2)
    assert isinstance(venv, SB3VecEnv)
    obs = venv.reset()
    assert obs["score"].shape == (2, 1)
    venv.step(np.array([0, 0]))
    obs, rewards, dones, infos = venv.step(np.array([0, 0]))
    assert dones.all()
    for i, info in enumerate(infos):
        assert info["terminal_observation"]["turn"][0] == 1.0
        assert info["TimeLimit.truncated"] is True
        assert "success" in info  # the finished episode's info
        assert venv.reset_infos[i]["turn"] == 0  # the new episode's
    assert (obs["turn"] == 0).all()
    assert venv.env_is_wrapped(gym.Wrapper) == [True, True]
    assert len(venv.get_attr("max_turns")) == 2
    venv.close()


def test_sb3_ppo_learns_on_the_adapter():
    venv = make_sb3_vec_env(n_envs=2, voice="template", seed=1)
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.learn(total_timesteps=128)
    assert model.num_timesteps >= 128
    venv.close()


@pytest.mark.llm
def test_vector_with_the_embedded_model_matches_single_env():
    envs = gym.make_vec("EmpathyDialogue-v0", num_envs=2, voice="llm", scenarios="test")
    single = gym.make("EmpathyDialogue-v0", voice="llm", scenarios="test")
    _, infos = envs.reset(seed=3)
    _, info = single.reset(seed=4)
    assert infos["user_utterance"][1] == info["user_utterance"]
    envs.close()


def _same(a, b) -> bool:
    """Equality through dicts, lists and arrays (an SB3 step's infos hold all three)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and not isinstance(a, str):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


@pytest.mark.parametrize(
    "make_kwargs",
    [
        {},  # gym.make_vec's default: the batched vector env, next_step autoreset
        {"vectorization_mode": "sync"},  # Gymnasium's SyncVectorEnv, next_step
        {
            "vectorization_mode": "sync",
            "vector_kwargs": {"autoreset_mode": gym.vector.AutoresetMode.DISABLED},
        },
    ],
    ids=["batched-next-step", "sync-next-step", "sync-disabled"],
)
def test_sb3_adapter_takes_make_vec_without_an_autoreset_setting(make_kwargs):
    # The user wraps what gym.make_vec gives; SB3 sees exactly what the same_step adapter
    # shows: same observations, rewards, dones, final infos and reset infos.
    env_kwargs = {"voice": "template", "max_turns": 2}
    venv = SB3VecEnv(gym.make_vec("EmpathyDialogue-v0", num_envs=3, **make_kwargs, **env_kwargs))
    ref = make_sb3_vec_env(n_envs=3, **env_kwargs)
    venv.seed(4)
    ref.seed(4)
    assert _same(venv.reset(), ref.reset())
    assert _same(venv.reset_infos, ref.reset_infos)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(7):
        actions = rng.integers(8, size=3)
        got, want = venv.step(actions), ref.step(actions)
        for g, w in zip(got, want, strict=True):
            assert _same(g, w)
        assert _same(venv.reset_infos, ref.reset_infos)
        ended += int(got[2].sum())
    assert ended >= 6  # every user finished at least two episodes on the way
    assert "terminal_observation" in got[3][0] or not got[2][0]
    venv.close()
    ref.close()


def test_sb3_adapter_rejects_what_it_cannot_drive():
    with pytest.raises(TypeError, match="VectorEnv"):
        SB3VecEnv(gym.make("EmpathyDialogue-v0", voice="template"))


def test_partial_reset_resets_only_the_masked_users():
    envs = EmpathyDialogueVectorEnv(3, voice="template")
    with pytest.raises(RuntimeError, match="without a reset_mask first"):
        envs.reset(options={"reset_mask": np.array([True, False, False])})
    obs, _ = envs.reset(seed=0)
    obs, *_ = envs.step([0, 0, 0])
    assert (obs["turn"] > 0).all()
    mask = np.array([False, True, False])
    new, infos = envs.reset(options={"reset_mask": mask})
    assert new["turn"][1, 0] == 0 and (new["turn"][[0, 2], 0] > 0).all()
    assert infos["_turn"].tolist() == mask.tolist()  # infos only for the reset user
    assert np.array_equal(new["emotion"][[0, 2]], obs["emotion"][[0, 2]])
    obs, *_ = envs.step([1, 1, 1])  # every user goes on from where it is
    assert obs["turn"][1, 0] < obs["turn"][0, 0]
    for bad in (np.array([1, 0, 0]), np.zeros(3, bool), np.ones(2, bool)):
        with pytest.raises(ValueError, match="reset_mask"):
            envs.reset(options={"reset_mask": bad})
    envs.close()


def test_one_bad_action_in_a_batch_leaves_every_user_where_it_was() -> None:
    """Found by the fuzz suite: a batch whose last action was bad stepped the others first."""
    envs = gym.make_vec("EmpathyDialogue-v0", num_envs=3, voice="template")
    twin = gym.make_vec("EmpathyDialogue-v0", num_envs=3, voice="template")
    envs.reset(seed=5)
    twin.reset(seed=5)
    with pytest.raises(ValueError, match="outside the action space"):
        envs.step([1, 2, None])
    got, expected = envs.step(np.array([1, 2, 3])), twin.step(np.array([1, 2, 3]))
    assert repr(got[:4]) == repr(expected[:4])
