"""EpisodeLogger: one JSON line per episode, flushed as it ends; under SB3; pickling; reading."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES
from dialogue_gym.evaluation.episode_log import (
    EPISODE_FIELDS,
    STEP_FIELDS,
    EpisodeLogger,
    read_episodes,
)


def make(path, env_id: str = "EmpathyDialogue-v0", **kwargs) -> EpisodeLogger:
    extra = kwargs.pop("extra", None)
    env = gym.make(env_id, voice="template", scenarios="test", **kwargs)
    return EpisodeLogger(env, path, extra=extra)


def play(env: gym.Env, steps: int | None = None, action=0, seed: int | None = 0) -> int:
    """Reset, then step until the episode ends (or ``steps`` steps); the steps taken."""
    env.reset(seed=seed)
    taken = 0
    while steps is None or taken < steps:
        *_, terminated, truncated, _ = env.step(action)
        taken += 1
        if terminated or truncated:
            break
    return taken


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_flushed_per_episode_while_the_env_is_open(tmp_path):
    path = tmp_path / "log.jsonl"
    env = make(path)
    turns = play(env)
    assert len(lines(path)) == 1  # on disk now, the env still open
    play(env, steps=2, seed=1)
    assert len(lines(path)) == 1  # the episode in flight is not written yet
    env.close()
    first, cut = read_episodes(path)
    assert first["complete"] is True and first["turns"] == turns
    assert cut["complete"] is False and cut["turns"] == 2 and cut["seed"] == 1
    assert cut["success"] is False and cut["user_left"] is False
    assert len(cut["messages"]) == 1 + 2 * 2
    assert read_episodes(path, complete_only=True) == [first]


def test_a_crash_keeps_the_finished_episodes(tmp_path):
    path = tmp_path / "log.jsonl"
    script = textwrap.dedent(
        f"""
        import os
        import gymnasium as gym
        import dialogue_gym
        from dialogue_gym.evaluation.episode_log import EpisodeLogger
        env = EpisodeLogger(gym.make("EmpathyDialogue-v0", voice="template"), {str(path)!r})
        for seed in range(3):
            env.reset(seed=seed)
            done = False
            while not done:
                *_, terminated, truncated, _ = env.step(0)
                done = terminated or truncated
        env.reset(seed=3)
        env.step(0)
        os._exit(1)  # dies mid-episode: no close, no cleanup
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == 1, proc.stderr.decode()
    episodes = read_episodes(path)
    assert [e["seed"] for e in episodes] == [0, 1, 2]
    assert all(e["complete"] and e["turns"] == len(e["steps"]) for e in episodes)


def test_every_field_and_the_extra_ones(tmp_path):
    path = tmp_path / "log.jsonl"
    extra = {"policy": "always-question", "learner": np.str_("ppo"), "lr": np.float32(0.5)}
    env = make(path, extra=extra, reward="emotion_delta")
    play(env)
    extra["policy"] = "changed"  # the dict is the logger's: later episodes see the change
    play(env, seed=1)
    env.close()
    first, second = read_episodes(path)
    assert set(first) == {*EPISODE_FIELDS, "policy", "learner", "lr"}
    assert first["policy"] == "always-question" and second["policy"] == "changed"
    assert first["learner"] == "ppo" and first["lr"] == 0.5
    assert first["env_id"] == "EmpathyDialogue-v0" and first["voice"] == "template"
    assert first["card_id"].startswith("test-") and first["need"] in first["card_id"]
    assert first["episode"] == 0 and second["episode"] == 1
    step = first["steps"][0]
    assert set(step) == set(STEP_FIELDS)
    assert step["strategy"] == "Question" and step["acts"] is None
    assert step["turn"] == 1 and step["emotion_before"] == first["initial_emotion"]
    assert step["change"] == pytest.approx(step["emotion"] - step["emotion_before"])
    assert step["reward_components"]["emotion_delta"] == step["reward"]
    assert first["final_emotion"] == first["steps"][-1]["emotion"]
    assert first["episode_return"] == pytest.approx(sum(s["reward"] for s in first["steps"]))
    # The messages are the chat: the steps' lines in order.
    said = [m["content"] for m in first["messages"][1:]]
    assert said == [text for s in first["steps"] for text in (s["agent"], s["user"])]


def test_extra_may_not_shadow_a_field(tmp_path):
    env = gym.make("EmpathyDialogue-v0", voice="template")
    with pytest.raises(ValueError, match="clash"):
        EpisodeLogger(env, tmp_path / "log.jsonl", extra={"turns": 3})


def test_text_env_logs_the_agents_own_words(tmp_path):
    path = tmp_path / "log.jsonl"
    env = make(path, "EmpathyDialogueText-v0", max_turns=2)
    play(env, action=EXAMPLE_UTTERANCES[2])
    env.close()
    [episode] = read_episodes(path)
    assert episode["env_id"] == "EmpathyDialogueText-v0"
    assert [s["agent"] for s in episode["steps"]] == [EXAMPLE_UTTERANCES[2]] * 2
    assert episode["steps"][0]["acts"][0] == "Reflection of feelings"


def test_reset_cuts_an_episode_and_an_empty_one_is_not_written(tmp_path):
    path = tmp_path / "log.jsonl"
    env = make(path)
    env.reset(seed=0)
    env.reset(seed=1)  # no step: nothing to log
    env.step(0)
    env.reset(seed=2)  # one step in flight: logged as incomplete
    assert [(e["seed"], e["complete"], e["turns"]) for e in read_episodes(path)] == [(1, False, 1)]
    env.close()
    env.close()  # idempotent
    assert len(lines(path)) == 1


def test_append_false_empties_the_file(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"old": true}\n')
    env = EpisodeLogger(gym.make("EmpathyDialogue-v0", voice="template"), path, append=False)
    play(env)
    env.close()
    assert len(lines(path)) == 1 and "old" not in read_episodes(path)[0]


def test_writes_to_a_file_object_and_leaves_it_open(tmp_path):
    stream = io.StringIO()
    env = make(stream)
    play(env)
    env.close()
    assert not stream.closed
    assert json.loads(stream.getvalue())["complete"] is True
    binary = io.BytesIO()
    env = make(binary)
    play(env)
    assert json.loads(binary.getvalue().decode("utf-8"))["complete"] is True
    with pytest.raises(TypeError, match="give it a path"):
        pickle.dumps(env)
    with pytest.raises(TypeError, match="path or a writable file"):
        EpisodeLogger(env.env, 42)


def test_pickles_and_the_copy_appends_to_the_same_path(tmp_path):
    path = tmp_path / "log.jsonl"
    env = make(path, extra={"who": "original"})
    play(env, steps=1)
    clone = pickle.loads(pickle.dumps(env))
    clone.extra["who"] = "clone"
    env.close()  # writes the original's episode in flight, closes its file
    *_, terminated, truncated, _ = clone.step(0)  # the copy goes on with the same episode
    while not (terminated or truncated):
        *_, terminated, truncated, _ = clone.step(0)
    clone.close()
    cut, finished = read_episodes(path)
    assert (cut["who"], cut["complete"], cut["turns"]) == ("original", False, 1)
    assert (finished["who"], finished["complete"]) == ("clone", True)
    assert finished["steps"][0] == cut["steps"][0]


def test_read_episodes_skips_a_torn_last_line_and_rejects_a_bad_one(tmp_path):
    path = tmp_path / "log.jsonl"
    env = make(path)
    play(env)
    play(env, seed=1)
    env.close()
    whole = path.read_text(encoding="utf-8")
    path.write_text(whole + whole[:50], encoding="utf-8")  # died while writing a line
    with pytest.warns(UserWarning, match="cut short"):
        assert len(read_episodes(path)) == 2
    path.write_text("{not json\n" + whole, encoding="utf-8")
    with pytest.raises(ValueError, match="line 1"):
        read_episodes(path)


def test_appending_after_a_torn_line_loses_no_episode(tmp_path):
    """A crash cut the last line short; the next logger, appending, ends it and writes its own
    episode on a line of its own, and every complete episode is read back."""
    path = tmp_path / "log.jsonl"
    env = make(path)
    play(env)
    play(env, seed=1)
    env.close()
    whole = path.read_text(encoding="utf-8")
    path.write_text(whole + whole[:50], encoding="utf-8")  # died while writing a third line
    again = make(path)  # appends
    play(again, seed=2)
    again.close()
    with pytest.warns(UserWarning, match="line 3, cut short"):
        episodes = read_episodes(path)
    assert [ep["seed"] for ep in episodes] == [0, 1, 2]
    assert all(ep["complete"] for ep in episodes)


def test_under_sb3_ppo_one_line_per_finished_episode(tmp_path):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    path = tmp_path / "ppo.jsonl"

    def make_env() -> gym.Env:
        env = gym.make("EmpathyDialogue-v0", voice="template")
        return Monitor(EpisodeLogger(env, path, extra={"learner": "ppo", "reward": "sparse"}))

    venv = DummyVecEnv([make_env, make_env])  # two envs, one file
    model = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0)
    model.learn(total_timesteps=384)
    monitors = venv.envs
    finished = sum(len(m.get_episode_rewards()) for m in monitors)
    episodes = read_episodes(path)
    assert finished >= 20 and len(episodes) == finished
    assert all(e["complete"] and e["learner"] == "ppo" for e in episodes)
    lengths = sorted(n for m in monitors for n in m.get_episode_lengths())
    assert sorted(e["turns"] for e in episodes) == lengths
    returns = sorted(r for m in monitors for r in m.get_episode_rewards())
    assert sorted(e["episode_return"] for e in episodes) == pytest.approx(returns, abs=1e-5)
    in_flight = sum(m.env.unwrapped.core.state.turn > 0 for m in monitors)
    venv.close()
    assert len(read_episodes(path)) == finished + in_flight
    assert len(read_episodes(path, complete_only=True)) == finished


#: The crash test's child: episodes in a loop, each padded to ~100 KB so that a good share of
#: the time is spent inside write() (a kill then cuts a line), one byte appended to the side
#: file after each episode is on disk (its size counts the episodes the logger completed).
_CRASH_CHILD = """
import os, sys
import gymnasium as gym
import dialogue_gym
from dialogue_gym.evaluation.episode_log import EpisodeLogger
path, side, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
env = EpisodeLogger(
    gym.make("EmpathyDialogue-v0", voice="template", scenarios="test"),
    path,
    extra={"round": base, "padding": "x" * 100_000},
)
fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
for k in range(1_000_000):
    env.reset(seed=base + k)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(k % 8)
        done = terminated or truncated
    os.write(fd, b".")  # after the logger's line: never counts an episode not on disk
"""


def _ends_mid_line(path) -> bool:
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        if size == 0:
            return False
        f.seek(size - 1)
        return f.read(1) != b"\n"


@pytest.mark.slow
def test_kill_9_mid_write_then_append_keeps_every_complete_episode(tmp_path):
    """Real crashes: a logging process is killed with SIGKILL at seeded random moments, a new
    logger appends after each, and every episode a dead process completed is read back, once,
    in order, beside the new ones; a line cut by a kill is skipped with a warning."""
    import os
    import signal
    import time
    import warnings

    path = tmp_path / "log.jsonl"
    rng = np.random.default_rng(12)
    completed: list[tuple[int, int]] = []  # per round: (seed base, episodes counted)
    for r in range(6):  # each kill cuts a line about half the time
        side = tmp_path / f"done-{r}"
        base = 1_000_000 * (r + 1)
        child = subprocess.Popen(
            [sys.executable, "-c", _CRASH_CHILD, str(path), str(side), str(base)],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while (not side.exists() or side.stat().st_size == 0) and child.poll() is None:
            assert time.monotonic() < deadline, "the child wrote no episode in 120 s"
            time.sleep(0.01)
        assert child.poll() is None, child.stderr.read().decode()
        # Killed at a seeded moment, or sooner, the moment the log is seen ending mid-line
        # (a write under way), so that some kills really do cut a line.
        moment = time.monotonic() + rng.uniform(0.0, 0.1)
        while time.monotonic() < moment and not _ends_mid_line(path):
            pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        completed.append((base, side.stat().st_size))
    again = make(path)  # a new logger, appending after whatever the last kill left
    play(again, seed=0)
    play(again, seed=1)
    again.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        episodes = read_episodes(path)
    cut = [str(w.message) for w in caught]
    assert all("cut short" in m for m in cut) and len(cut) <= len(completed), cut
    print(f"{len(cut)} of {len(completed)} kills cut a line short")
    assert all(e["complete"] for e in episodes)  # killed loggers never flush an episode
    seeds = [e["seed"] for e in episodes]
    total = 0
    for base, counted in completed:
        mine = [s for s in seeds if base <= s < base + 1_000_000]
        # The side file is written just after the episode's line, so a kill between the two
        # leaves one more episode on disk than counted, never one fewer.
        assert counted >= 1 and len(mine) in (counted, counted + 1), (base, counted, len(mine))
        assert mine == list(range(base, base + len(mine)))  # in order, none lost or doubled
        total += len(mine)
    assert seeds[-2:] == [0, 1] and len(episodes) == total + 2
