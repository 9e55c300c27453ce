"""RLlib's PPO (new API stack) on EmpathyDialogue-v0: a tiny real run on a local Ray instance.

One remote env runner, two training iterations of 128 decisions, the template voice: RLlib's
own algorithm, runners, ``FlattenObservations`` connector and learner, started the way its
users start them (``ray.init`` on this machine, loopback only). About 25 s on two busy cores,
most of it Ray's start and the runner actor's.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from repo_scripts import load_script

from dialogue_gym.integrations.rllib import (
    RLModulePolicy,
    env_config,
    envs_created_here,
    evaluate_rllib,
    ppo_config,
    runner_report,
)

TINY = {"train_batch_size_per_learner": 128, "minibatch_size": 64, "num_epochs": 2}


@pytest.fixture
def local_ray():
    # Skipped, not failed, without the extra; imported here, not at the top, so that collecting
    # this file in the fast tier does not import Ray (the adapter itself imports it lazily).
    pytest.importorskip("ray.rllib")
    import ray

    # address="local" starts a fresh instance even when a `ray start` cluster runs on this
    # machine (a plain ray.init() would join it); two CPUs: the learner and one runner.
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ppo_trains_in_a_runner_and_evaluates_on_the_test_cards(local_ray) -> None:
    driver_envs = len(envs_created_here())  # doctests in this process may have built some
    algo = ppo_config(num_env_runners=1, training=TINY, seed=0).build_algo()
    try:
        results = [algo.train() for _ in range(2)]

        # Training ran: timesteps advanced by a batch per iteration, the losses are numbers.
        steps = [r["num_env_steps_sampled_lifetime"] for r in results]
        assert steps[0] >= 128 and steps[1] >= steps[0] + 128
        learner = results[-1]["learners"]["default_policy"]
        for key in ("policy_loss", "vf_loss", "total_loss", "entropy"):
            assert math.isfinite(float(learner[key])), (key, learner[key])
        assert results[-1]["env_runners"]["num_episodes_lifetime"] > 0

        # The runner built its own env (another process) and the driver built none.
        (report,) = runner_report(algo)
        assert report["pid"] != os.getpid()
        assert report["envs_created"] == ["EmpathyDialogue-v0"]
        assert report["voices"] == ["TemplateUserVoice"]
        assert len(envs_created_here()) == driver_envs

        # The module takes the flattened observation: RLlib's connector, 39 floats.
        module = algo.get_module()
        assert module.observation_space.shape == (39,)

        # Greedy on the 72 test cards, as the study evaluates: sane numbers.
        summary = evaluate_rllib(algo)
        assert summary["episodes"] == 72
        assert 0.0 <= summary["success_rate"] <= 1.0
        assert 0.0 <= summary["final_emotion"] <= 100.0
        assert 1.0 <= summary["mean_turns"] <= 10.0
        assert evaluate_rllib(algo) == summary  # greedy and seeded: the same episodes again

        # The policy callable: greedy = the most probable action.
        env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
        policy = RLModulePolicy(algo, env.observation_space, env.action_space)
        obs, _ = env.reset(seed=0)
        probs = policy.action_probs(obs)
        assert probs.shape == (8,) and np.isclose(probs.sum(), 1.0)
        assert policy(obs) == int(np.argmax(probs))
        env.close()
    finally:
        algo.stop()


def test_env_config_refuses_a_live_backend() -> None:
    class Live:  # stands in for a loaded backend object
        pass

    with pytest.raises(TypeError, match="name or spec"):
        env_config(voice="llm", backend=Live())
    assert env_config(voice="llm", backend={"name": "llama_cpp"})["env_kwargs"]["backend"] == {
        "name": "llama_cpp"
    }


@pytest.mark.benchmark
def test_rllib_vs_sb3_benchmark_quick(tmp_path) -> None:
    """The benchmark script end to end in its quick mode (one update per checkpoint, ~30 s)."""
    pytest.importorskip("ray.rllib")
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "rllib_vs_sb3.py"
    bench = load_script(path, "rllib_vs_sb3")
    out = {name: tmp_path / name for name in ("runs.csv", "summary.json", "fig.png")}
    argv = ["--quick", "--csv", str(out["runs.csv"]), "--summary", str(out["summary.json"])]
    summary = bench.main(bench.parse_args([*argv, "--figure", str(out["fig.png"])]))
    rows = list(csv.DictReader(out["runs.csv"].open()))
    assert [(r["engine"], int(r["steps"])) for r in rows] == [
        ("sb3", 512),
        ("sb3", 1024),
        ("rllib", 512),
        ("rllib", 1024),
    ]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    assert json.loads(out["summary.json"].read_text())["engines"] == summary["engines"]
    assert out["fig.png"].stat().st_size > 0
