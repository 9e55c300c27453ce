"""The LLM experiment script: a tiny smoke run writes every output file, with sane contents."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

from dialogue_gym.cli import main as cli_main  # noqa: E402
from dialogue_gym.integrations.train_llm import parse_args  # noqa: E402

SMOKE = [
    "--tiny",
    "--steps", "2",
    "--prompts-per-step", "1",
    "--num-generations", "2",
    "--max-turns", "2",
    "--turn-tokens", "8",
    "--eval-cards", "3",
]  # fmt: skip


@pytest.mark.slow
def test_smoke_run_writes_every_output_file(tmp_path: Path) -> None:
    code = cli_main(["train-llm", *SMOKE, "--reward", "emotion_delta", "--out", str(tmp_path)])
    assert code == 0
    run = tmp_path / "emotion_delta-tiny"
    for name in (
        "args.json",
        "curves.csv",
        "eval.json",
        "episodes_before.jsonl",
        "episodes_after.jsonl",
        "audit.md",
        "report.md",
        "curves.png",
    ):
        assert (run / name).stat().st_size > 0, name
    rows = list(csv.DictReader((run / "curves.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["env_s"]) <= float(r["rollout_s"]) for r in rows)
    result = json.loads((run / "eval.json").read_text())
    for phase in ("before", "after"):
        assert result[phase]["episodes"] == 3
        assert 0.0 <= result[phase]["success"] <= 1.0
        assert abs(sum(result[phase]["strategy_distribution"].values()) - 1.0) < 1e-6
    before = [json.loads(line) for line in (run / "episodes_before.jsonl").open()]
    assert len(before) == 3 and all(len(ep["utterances"]) == ep["turns"] for ep in before)
    assert all(len(ep["emotions"]) == ep["turns"] + 1 for ep in before)
    assert "| success |" in (run / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reward", "dense"], "unknown reward 'dense'"),
        (["--reward-kwargs", "[1]"], "must be a JSON object"),
        (["--num-generations", "1"], "must be >= 2"),
        (["--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_bad_arguments_name_the_field(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)
