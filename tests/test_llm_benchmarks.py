"""Smoke runs of the LLM-training benchmarks: ``llm_train_throughput.py``, ``gpu_train_llm.py``
and ``llm_rollout_speed.py``.

Each runs real GRPO steps with a tiny random-weights model on the CPU (tens of seconds on a
busy machine): slow and benchmark tiers. The vLLM path of ``gpu_train_llm.py`` needs a GPU and
vLLM and is not run here; its model shapes and its missing-vLLM message are.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from repo_scripts import load_script

pytest.importorskip("trl")
pytest.importorskip("datasets")

pytestmark = [pytest.mark.slow, pytest.mark.benchmark]

ROOT = Path(__file__).resolve().parents[1]
#: The four parts of a GRPO step whose shares sum to 1.
PARTS = {"env", "generation", "rollout_rest", "update"}
#: Small settings: one user, two conversations, two turns of eight tokens.
SMALL = ["--prompts-per-step", "1", "--num-generations", "2", "--max-turns", "2"]
SMALL += ["--turn-tokens", "8"]


def load(name: str) -> ModuleType:
    module = load_script(ROOT / "benchmarks" / f"{name}.py", name)
    return module


def check_shares(row: dict) -> None:
    assert set(row["share"]) == PARTS
    assert all(0.0 <= v <= 1.0 for v in row["share"].values())
    assert sum(row["share"].values()) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 <= row["env_share_of_rollout"] <= 1.0
    # the parts' seconds add up to the step's: the rollout ran inside the timed step
    parts = sum(row[f"{k}_s"] for k in PARTS)
    assert parts == pytest.approx(row["step_s"], rel=1e-6)
    assert row["step_s"] >= row["rollout_s"] >= row["generation_s"] + row["env_s"] > 0


def test_llm_rollout_speed_tiny(tmp_path: Path) -> None:
    bench = load("llm_rollout_speed")
    out = tmp_path / "speed.json"
    args = ["--tiny", "--batches", "2", "--threads", "1", "--max-turns", "1", "--turn-tokens", "8"]
    results = bench.main(bench.parse_args([*args, "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert saved["rows"] == json.loads(json.dumps(results["rows"]))
    (row,) = saved["rows"]
    assert (row["threads"], row["batch"]) == (1, 2)
    assert row["bound"] == pytest.approx(2 * row["bandwidth_gb_s"] * 1e9 / saved["weight_bytes"])
    assert row["plain"] > 0 and row["rollout"]["tokens_per_s"] > 0
    # Two conversations of one turn: the policy's tokens, at most 8 a turn.
    assert 0 < row["rollout"]["policy_tokens"] <= 2 * 8
    assert "rollout / bound" in bench.report(saved)


def test_llm_train_throughput_tiny(tmp_path: Path) -> None:
    bench = load("llm_train_throughput")
    out = tmp_path / "throughput.json"
    results = bench.main(bench.parse_args(["--tiny", "--steps", "1", *SMALL, "--out", str(out)]))
    saved = json.loads(out.read_text())
    assert set(saved) >= {"reward", "model", "machine", "args", "steps", "total", "target"}
    assert saved["total"] == results["total"]  # the file holds what main returned
    assert len(saved["steps"]) == 1 and saved["steps"][0]["step"] == 1
    assert saved["steps"][0]["episodes"] == 2 and saved["steps"][0]["policy_tokens"] > 0
    for row in [*saved["steps"], saved["total"]]:
        check_shares(row)
    assert saved["target"]["env_share_of_rollout_max"] == 0.10
    assert saved["target"]["met"] == (saved["total"]["env_share_of_rollout"] < 0.10)
    assert "env / rollout" in bench.report(saved)


def test_gpu_train_llm_cpu_tiny(tmp_path: Path) -> None:
    bench = load("gpu_train_llm")
    out = tmp_path / "gpu.json"
    argv = ["--device", "cpu", "--tiny", "--steps", "1", *SMALL, "--out", str(out)]
    args = bench.parse_args(argv)
    assert not args.vllm  # the CPU path never asks for vLLM
    bench.main(args)
    saved = json.loads(out.read_text())
    assert set(saved) >= {"model", "device", "generation", "args", "setup_s", "steps", "total"}
    assert saved["generation"] == "transformers" and saved["args"]["dtype"] == "float32"
    assert saved["after_first_step"] is None  # one step: nothing after the warm-up step
    (row,) = saved["steps"]
    for r in (row, saved["total"]):
        check_shares(r)
        assert r["episodes"] == 2
        assert r["episodes_per_rollout_s"] > 0 and r["policy_tokens_per_generate_s"] > 0


def test_gpu_train_llm_shapes() -> None:
    """The hand-built configs have the real models' parameter counts (random weights)."""
    import torch
    import transformers

    from dialogue_gym.integrations.trl import smollm2_tokenizer

    bench = load("gpu_train_llm")
    tokenizer = smollm2_tokenizer()
    expected = {"smollm2-135m": 134_515_008, "qwen2.5-0.5b": 494_032_768}
    for shape, parameters in expected.items():
        config = bench.model_config(shape, tokenizer)
        assert config.vocab_size >= len(tokenizer) and config.tie_word_embeddings
        assert config.eos_token_id == tokenizer.eos_token_id
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(config)
        assert sum(p.numel() for p in model.parameters()) == parameters


def test_gpu_train_llm_says_how_to_get_vllm() -> None:
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    bench = load("gpu_train_llm")
    with pytest.raises(SystemExit, match="pip install vllm"):
        bench.require_vllm()
