"""Smoke run of benchmarks/consistency.py with the template voice (the LLM run is in the docs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_scripts import load_script

pytestmark = pytest.mark.benchmark

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "consistency.py"


def test_consistency_benchmark_writes_its_figures(tmp_path, monkeypatch):
    module = load_script(SCRIPT, "consistency_bench")
    out = tmp_path / "consistency.json"
    module.main(module.Args(cards=2, max_questions=2, voices=("template",), out=str(out)))
    (voice,) = json.loads(out.read_text())["voices"]
    assert voice["voice"] == "template" and voice["questions"] == 4
    # The template voice never contradicts its card and never answers questions.
    assert voice["prompt_to_line"] == 1.0 and voice["line_to_line"] == 1.0
    assert voice["qa_consistency"] < 0.2
