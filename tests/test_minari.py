"""Minari datasets (``dialogue-gym dataset``): what is recorded is what the env produced.

Every test writes under a temporary ``MINARI_DATASETS_PATH``, never ``~/.minari``. The
round trip replays each recorded episode in process (its seed and card from Minari's episode
metadata, its recorded actions) and holds observations, rewards, ends and the chat equal to
what the env gives; the PPO test trains a tiny SB3 model, saves it, and records it through the
command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip("minari")
pytest.importorskip("jax")  # Minari's DataCollector buffers steps with jax (minari[create])

import dialogue_gym  # noqa: E402,F401  (registers the envs)
from dialogue_gym.agents.reference import make_policy  # noqa: E402
from dialogue_gym.cli import main  # noqa: E402
from dialogue_gym.evaluation.episodes import ModelPolicy  # noqa: E402
from dialogue_gym.integrations.minari import (  # noqa: E402
    INFO_SCHEMA,
    OWNER_FILE,
    column_name,
    decode_transcript,
    episode_transcript,
    record_dataset,
    reward_components,
)

ENV_KWARGS = {"voice": "template", "scenarios": "test"}


@pytest.fixture
def datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _replay(episode, metadata, reward: str, actions=None):
    """Play an episode in process from its recorded seed and card: the env's own outputs.

    ``actions``: a policy to act (default: the episode's recorded actions).
    """
    env = gym.make("EmpathyDialogue-v0", reward=reward, **ENV_KWARGS)
    obs, info = env.reset(seed=metadata["seed"], options=metadata["options"])
    if actions is not None and hasattr(actions, "reset"):
        actions.reset(seed=metadata["seed"])
    out = {"obs": [obs], "infos": [info], "actions": [], "rewards": [], "ends": []}
    done, t = False, 0
    while not done:
        action = int(episode.actions[t]) if actions is None else int(actions(obs))
        obs, r, terminated, truncated, info = env.step(action)
        out["obs"].append(obs)
        out["infos"].append(info)
        out["actions"].append(action)
        out["rewards"].append(r)
        out["ends"].append((terminated, truncated))
        done, t = terminated or truncated, t + 1
    env.close()
    return out


def test_round_trip_is_what_the_env_produced(datasets: Path) -> None:
    data = record_dataset(
        "stage-heuristic",
        "dialogue_gym/test/round-trip-v0",
        episodes=4,
        seed=7,
        reward="final_emotion",
        env_kwargs=ENV_KWARGS,
    )
    assert (datasets / "dialogue_gym/test/round-trip-v0").is_dir()
    loaded = minari.load_dataset("dialogue_gym/test/round-trip-v0")
    assert loaded.total_episodes == data.total_episodes == 4
    assert loaded.observation_space == gym.make("EmpathyDialogue-v0").observation_space
    metadata = list(loaded.storage.get_episode_metadata(range(4)))
    n_cards = len(gym.make("EmpathyDialogue-v0", **ENV_KWARGS).unwrapped.cards)
    for k, (episode, meta) in enumerate(zip(loaded.iterate_episodes(), metadata, strict=True)):
        assert meta["seed"] == 7 + k and meta["options"] == {"card": k % n_cards}
        # The same policy in process, from the same seed, makes the same choices...
        played = _replay(
            episode, meta, "final_emotion", actions=make_policy("stage-heuristic", None)
        )
        assert list(episode.actions) == played["actions"]
        # ...and the env's outputs are recorded exactly.
        for key, values in episode.observations.items():
            assert np.array_equal(values, np.stack([o[key] for o in played["obs"]])), key
        assert episode.rewards.tolist() == played["rewards"]
        assert list(zip(episode.terminations, episode.truncations, strict=True)) == played["ends"]
        assert sum(played["rewards"]) == pytest.approx(meta["rewards_sum"])
        # The infos: one row per observation, the chat so far on every row.
        assert set(INFO_SCHEMA) <= set(episode.infos)
        assert all(len(v) == len(played["obs"]) for v in episode.infos.values())
        for t, info in enumerate(played["infos"]):
            assert decode_transcript(episode.infos["transcript"][t]) == info["messages"].to_list()
            assert episode.infos["user_utterance"][t] == info["user_utterance"]
            assert episode.infos["emotion"][t] == info["emotion"]
            for name, value in info["reward_components"].items():
                assert episode.infos[column_name(name)][t] == value
        assert episode_transcript(episode) == played["infos"][-1]["messages"].to_list()
        last = played["infos"][-1]
        assert bool(episode.infos["success"][-1]) == last["success"]
        # The metadata names the card by its full id (the terminal row's "card"); every row's
        # card_id is the opaque key, which never spells the hidden need.
        assert meta["card_id"] == last["card"] and meta["success"] == last["success"]
        assert all(last["need"] not in str(key) for key in episode.infos["card_id"])
        assert reward_components(episode.infos)["final_emotion"].sum() == sum(played["rewards"])
    # The dataset names the env it came from, rebuilt with its reward wrapper.
    env = loaded.recover_environment()
    assert env.spec.kwargs["reward"] == "final_emotion"
    obs, _ = env.reset(seed=metadata[0]["seed"], options=metadata[0]["options"])
    assert np.array_equal(obs["emotion"], loaded[0].observations["emotion"][0])


@pytest.mark.parametrize("data_format", ["parquet", "hdf5"])
def test_other_formats_keep_the_transcript(datasets: Path, data_format: str) -> None:
    if data_format == "hdf5":
        pytest.importorskip("h5py")
    record_dataset(
        "oracle", f"dg/{data_format}-v0", episodes=2, data_format=data_format, env_kwargs=ENV_KWARGS
    )
    episode = minari.load_dataset(f"dg/{data_format}-v0")[1]
    meta = next(minari.load_dataset(f"dg/{data_format}-v0").storage.get_episode_metadata([1]))
    played = _replay(episode, meta, "sparse")
    # HDF5 gives strings back as bytes: the helpers read both.
    assert episode_transcript(episode) == played["infos"][-1]["messages"].to_list()
    assert set(reward_components(episode.infos)) == {"sparse", "sparse/success", "sparse/left"}


@pytest.mark.slow  # trains a (tiny) PPO
def test_cli_records_a_trained_ppo(
    datasets: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stable_baselines3 import PPO

    from dialogue_gym.integrations.sb3 import SB3VecEnv

    venv = SB3VecEnv(gym.make_vec("EmpathyDialogue-v0", num_envs=2, **ENV_KWARGS))
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, seed=0)
    model.learn(total_timesteps=32)
    venv.close()
    path = tmp_path / "tiny ppo.zip"
    model.save(path)

    out = tmp_path / "elsewhere"
    argv = ["dataset", "--policy", f"ppo:{path}", "--episodes", "3", "--reward", "emotion_delta"]
    assert main([*argv, "--datasets-path", str(out)]) == 0
    dataset_id = "dialogue_gym/EmpathyDialogue/ppo-tiny_ppo-emotion_delta-v0"
    assert dataset_id in capsys.readouterr().out
    assert not datasets.exists()  # --datasets-path, not $MINARI_DATASETS_PATH

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(out))
    loaded = minari.load_dataset(dataset_id)
    assert loaded.total_episodes == 3
    assert loaded.storage.metadata["algorithm_name"] == f"ppo:{path}"
    policy = ModelPolicy(PPO.load(path, device="cpu"))
    metadata = loaded.storage.get_episode_metadata(range(3))
    for episode, meta in zip(loaded.iterate_episodes(), metadata, strict=True):
        played = _replay(episode, meta, "emotion_delta", actions=policy)
        assert list(episode.actions) == played["actions"]
        assert episode.rewards.tolist() == played["rewards"]


def test_cli_errors_are_one_line(
    datasets: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["dataset", "--policy", "random", "--episodes", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 2  # the id is taken
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "--overwrite" in err
    assert main([*argv, "--overwrite"]) == 0

    assert main(["dataset", "--policy", "ppo:missing.zip"]) == 2
    assert "no saved model" in capsys.readouterr().err

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "minari" else real(name, *a)
    )
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "dialogue-gym dataset: error: dataset needs minari: pip install 'dialogue_gym[minari]'"
    )


def test_transcript_encoding_is_plain_json() -> None:
    chat = [{"role": "user", "content": "Ça va\u2026 \U0001f642", "emotion": 30.0}]
    encoded = json.dumps(chat, ensure_ascii=False)
    assert decode_transcript(encoded) == chat == decode_transcript(encoded.encode())


def test_a_recording_killed_with_kill_9_leaves_nothing_after_the_next_one(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    root = tmp_path / "minari"
    argv = [sys.executable, "-m", "dialogue_gym.cli", "dataset", "--policy", "random"]
    argv += ["--datasets-path", str(root), "--episodes", "100000"]
    killed = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any((p / OWNER_FILE).is_file() for p in root.glob("tmp*")):
        assert killed.poll() is None and time.monotonic() < deadline, "no recording started"
        time.sleep(0.2)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    left = sorted(p.name for p in root.glob("tmp*"))
    assert left  # what Minari's buffer folder looks like after kill -9
    other = root / "tmpnotours"  # another program's Minari buffer: not ours to remove
    other.mkdir()
    done = subprocess.run(
        [*argv[:-1], "2", "--dataset-id", "dialogue_gym/EmpathyDialogue/after-kill-v0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.glob("tmp*")) == ["tmpnotours"]
