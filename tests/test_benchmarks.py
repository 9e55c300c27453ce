"""Smoke runs of the benchmark scripts (CleanRL style: the script itself, tiny settings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_scripts import load_script

# Each test runs a benchmark script end to end (seconds each): `make test` runs them.
pytestmark = pytest.mark.benchmark

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    module = load_script(ROOT / "benchmarks" / f"{name}.py", name)
    return module


def test_throughput_quick(tmp_path):
    bench = load("throughput")
    out = tmp_path / "throughput.json"
    results = bench.main(bench.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert saved["raw_ratio"] == results["raw_ratio"] > 0
    assert set(saved["ppo_steps_per_s"]) == set(results["ppo_steps_per_s"])
    assert all(v > 0 for v in saved["raw_steps_per_s"].values())
    # The LLM rows, with a tiny random model: one env per backend, then make_vec per N.
    llm = saved["llm"]
    assert llm["llm_voice"]["transformers"]["turns_per_s"] > 0
    rows = llm["make_vec"]["rows"]
    assert [r["users"] for r in rows] == [1, 2]
    for row in rows:
        assert row["turns_per_s"] > 0 and row["generate_turns_per_s"] > 0
        assert row["backend_calls_per_step"] == 1  # N users, one batched call a step
        assert row["env_overhead"] < 1 and row["vs_n_singles"] > 0


def test_dual_process_quick(tmp_path):
    bench = load("dual_process")
    out = tmp_path / "dp.json"
    results = bench.main(bench.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert set(saved) >= {"system1", "mcts", "dual_process", "oracle"}
    assert saved["mcts"]["forks"] == results["mcts"]["forks"] > 0
    assert 0.0 <= saved["dual_process"]["system2_share"] <= 1.0


def test_train_feudal_quick(tmp_path):
    bench = load("train_feudal")
    out = tmp_path / "feudal.json"
    bench.main(bench.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    for key in ("worker_goal_rate", "manager_success", "random_manager_success"):
        assert 0.0 <= saved[key] <= 1.0


def test_gpu_throughput_tiny_on_cpu(tmp_path):
    bench = load("gpu_throughput")
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--tiny", "--threads", "1", "--caches", "dynamic,static"]
    results = bench.main(bench.parse_args([*args, "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert [(r["cache"], r["batch"]) for r in saved["rows"]] == [
        ("dynamic", 1),
        ("dynamic", 4),
        ("static", 1),
        ("static", 4),
    ]
    for row in results["rows"]:
        assert row["plain"] > 0 and row["backend"] > 0
        assert row["make_vec"]["turns_per_s"] > 0 and row["make_vec"]["backend_seconds"] > 0


@pytest.mark.llm
def test_voice_speed_quick(tmp_path):
    bench = load("voice_speed")
    out = tmp_path / "voice_speed.json"
    # The in-process rows only: the server's words equal the in-process backend's in
    # test_backends.py::test_llama_server_batch_is_seeded.
    bench.main(bench.parse_args(["--quick", "--backends", "llama_cpp", "--out", str(out)]))
    quiet = json.loads(out.read_text())["phases"]["quiet"]
    assert set(quiet["best"]) == {"engine", "llama_cpp before", "llama_cpp after"}
    assert all(row["turns_per_s"] > 0 for row in quiet["best"].values())
    assert quiet["best"]["engine"]["ratio_to_engine"] == 1.0
    # The state cache changes the speed, never the words: every row says the same lines.
    assert all(quiet["same_words_as_llama_cpp_before"].values())
    # The cache does read fewer prompt tokens than the prompts hold.
    after = quiet["best"]["llama_cpp after"]
    assert after["prompt_tokens_read"] < after["prompt_tokens"]
