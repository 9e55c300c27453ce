"""Reference policies, the evaluation loop, and the command line."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from dialogue_gym.agents.reference import ConstantPolicy, RandomPolicy, make_policy
from dialogue_gym.cli import main
from dialogue_gym.evaluation.episodes import evaluate, run_episode, summarize


def test_constant_policy_by_name_and_index():
    assert ConstantPolicy("Information").strategy == 6
    assert ConstantPolicy(2).strategy == 2
    with pytest.raises(ValueError, match="unknown strategy"):
        ConstantPolicy("Hug")


def test_unknown_policy_lists_valid():
    with pytest.raises(ValueError, match="stage-heuristic"):
        make_policy("psychic", None)


def test_random_policy_seeded():
    a, b = RandomPolicy(), RandomPolicy()
    a.reset(seed=3)
    b.reset(seed=3)
    assert [a({}) for _ in range(20)] == [b({}) for _ in range(20)]


def test_evaluation_is_reproducible():
    first = summarize(evaluate("random", seed=4))
    assert first == summarize(evaluate("random", seed=4))


def test_run_episode_keeps_messages():
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    result = run_episode(env, make_policy("oracle", env), seed=0, card=0, keep_messages=True)
    assert result.turns == len(result.strategies) == len(result.emotions) - 1
    assert len(result.messages) == 1 + 2 * result.turns


def test_cli_episode_writes_jsonl(tmp_path, capsys):
    out = tmp_path / "ep.jsonl"
    assert (
        main(["episode", "--policy", "stage-heuristic", "--episodes", "3", "--out", str(out)]) == 0
    )
    lines = out.read_text().splitlines()
    assert len(lines) == 3
    record = json.loads(lines[0])
    assert record["policy"] == "stage-heuristic" and record["messages"]


def test_cli_episode_prints_transcript(capsys):
    assert main(["episode", "--policy", "oracle", "--seed", "1"]) == 0
    assert "Agent [" in capsys.readouterr().out


def test_cli_evaluate_table(capsys):
    assert main(["evaluate", "--policies", "random", "oracle"]) == 0
    out = capsys.readouterr().out
    assert "oracle" in out and "success" in out


def test_cli_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["episode", "--policy", "psychic"])
    with pytest.raises(SystemExit):
        main(["episode", "--episodes", "0"])
    assert main(["episode", "--scenarios", "/no/such/dir"]) == 2
    assert "error" in capsys.readouterr().err
