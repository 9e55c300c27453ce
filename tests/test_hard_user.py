"""EmpathyDialogueHard-v0: registered, the documented settings, and the calibration script.

The calibration itself (PPO at 100k decisions, five seeds) takes minutes; ``docs/simulator.md``
gives its figures and command. Here: the id is registered and builds, its settings are those
documented (and only those differ), caller overrides merge over them, the default env is
untouched, and the oracle still beats random on a few seeded episodes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import pytest
from repo_scripts import load_script

import dialogue_gym
from dialogue_gym.agents.reference import make_policy
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.envs.hard import HARD_USER_SIM, EmpathyDialogueHardEnv
from dialogue_gym.evaluation.episodes import run_episode

HARD = "EmpathyDialogueHard-v0"
ROOT = Path(__file__).resolve().parents[1]

#: The settings docs/simulator.md and the env's docstring document.
DOCUMENTED = {
    "explore_gain": 0.15,
    "leave_threshold": 20.0,
    "premature_penalty": 12.0,
    "wrong_help_penalty": 8.0,
}


def test_registered_and_makes():
    assert HARD in dialogue_gym.ENV_IDS and HARD in gym.registry
    env = gym.make(HARD, voice="template", scenarios="test")
    assert isinstance(env.unwrapped, EmpathyDialogueHardEnv)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    vec = gym.make_vec(HARD, num_envs=2, voice="template")
    assert all(e.unwrapped.sim_config.explore_gain == 0.15 for e in vec.envs)
    vec.close()


def test_its_settings_differ_from_the_default_exactly_as_documented():
    assert dict(HARD_USER_SIM) == DOCUMENTED
    hard = gym.make(HARD, voice="template").unwrapped.sim_config
    default = gym.make("EmpathyDialogue-v0", voice="template").unwrapped.sim_config
    assert default == SimConfig()  # the default env is untouched
    differ = {
        f.name: getattr(hard, f.name)
        for f in dataclasses.fields(SimConfig)
        if getattr(hard, f.name) != getattr(default, f.name)
    }
    assert differ == DOCUMENTED


def test_caller_overrides_merge_over_the_hard_settings():
    env = gym.make(HARD, voice="template", sim={"noise": 0.0, "leave_threshold": 10.0})
    cfg = env.unwrapped.sim_config
    assert (cfg.noise, cfg.leave_threshold, cfg.explore_gain) == (0.0, 10.0, 0.15)
    # A whole SimConfig names every field: it is taken as it is.
    assert gym.make(HARD, voice="template", sim=SimConfig()).unwrapped.sim_config == SimConfig()
    with pytest.raises(InvalidArgument, match="explore_gain"):
        gym.make(HARD, voice="template", sim={"explore_gain": 2.0})
    with pytest.raises(InvalidArgument, match="success_threshold"):
        gym.make(HARD, voice="template", sim={"success_threshold": 15.0})  # below leaving at 20


def test_same_as_the_default_env_with_the_settings():
    """The hard env is the default env class with HARD_USER_SIM: the same seeded episodes."""

    def trajectory(env):
        obs, _ = env.reset(seed=3)
        out = [float(obs["score"][0])]
        for act in (0, 1, 0, 1, 2, 5, 4, 2):
            obs, _, term, trunc, info = env.step(act)
            out.append((info["emotion"], info["user_act"]))
            if term or trunc:
                break
        return out

    hard = gym.make(HARD, voice="template", scenarios="test")
    same = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test", sim=DOCUMENTED)
    assert trajectory(hard) == trajectory(same)


def test_oracle_succeeds_more_than_random():
    env = gym.make(HARD, voice="template", scenarios="test", reward=None)
    rates = {}
    for name in ("oracle", "stage-heuristic", "random"):
        policy = make_policy(name, env)
        rates[name] = sum(
            run_episode(env, policy, seed=10_000 + k, card=k).success for k in range(12)
        )
    assert rates["oracle"] >= 10  # >= 90% over the 72 cards (docs/simulator.md)
    assert rates["oracle"] > rates["stage-heuristic"] > rates["random"]


@pytest.mark.benchmark
def test_calibration_script_quick(tmp_path, monkeypatch):
    module = load_script(ROOT / "benchmarks" / "hard_user.py", "hard_user")
    from dialogue_gym.study.settings import EVAL_SEED

    assert module.EVAL_SEED == EVAL_SEED  # the study's evaluation episodes
    out = tmp_path / "hard_user.json"
    results = module.main(module.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    entry = saved["envs"][HARD]
    assert entry["sim"]["explore_gain"] == 0.15 == results["envs"][HARD]["sim"]["explore_gain"]
    assert set(entry["baselines"]) >= {"random", "stage-heuristic", "oracle"}
    assert entry["baselines"]["oracle"]["success"] > entry["baselines"]["random"]["success"]
    (run,) = entry["ppo"]["runs"]
    assert [p["steps"] for p in run["curve"]] == [512, 1024]
    assert 0.0 <= run["final"]["success"] <= 1.0
