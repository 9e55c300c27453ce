"""Smoke runs of the benchmark scripts (CleanRL style: the script itself, tiny settings)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    return module


def test_throughput_quick(tmp_path):
    bench = load("throughput")
    out = tmp_path / "throughput.json"
    results = bench.main(bench.parse_args(["--quick", "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert saved["raw_ratio"] == results["raw_ratio"] > 0
    assert set(saved["ppo_steps_per_s"]) == set(results["ppo_steps_per_s"])
    assert all(v > 0 for v in saved["raw_steps_per_s"].values())
