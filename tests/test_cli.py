"""The ``dialogue-gym`` command line: play (piped stdin), episode JSONL, help, bad arguments,
and the bench/study pass-through."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from repo_scripts import load_script

from dialogue_gym import cli
from dialogue_gym.cli import main
from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES
from dialogue_gym.evaluation.episode_log import EPISODE_FIELDS, STEP_FIELDS, read_episodes

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).with_name("dialogue-gym")
# A fixed user, so the transcripts are the same each run: the template voice, card 0, seed 1.
GAME = ["--voice", "template", "--scenarios", "test", "--card", "0", "--seed", "1"]


def run(monkeypatch, capsys, argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """``main(argv)`` with ``stdin`` piped in: (exit status, stdout, stderr)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


# -- play -------------------------------------------------------------------------------


def test_play_text_rejects_bad_input_and_keeps_every_turn(monkeypatch, capsys, tmp_path):
    log = tmp_path / "play.jsonl"
    said = [EXAMPLE_UTTERANCES[0], EXAMPLE_UTTERANCES[1]]
    stdin = "\n".join(["", "   ", said[0], "x" * 1001, "hello \u4f60", said[1]]) + "\n"  # EOF
    code, out, err = run(monkeypatch, capsys, ["play", *GAME, "--log", str(log)], stdin)
    assert code == 0, err
    assert out.count("Say something to them") == 2
    assert "That is 1001 characters; the most is 1000" in out
    assert "'\u4f60' cannot be used" in out
    assert "(heard as: Question" in out and "(heard as: Restatement or Paraphrasing" in out
    assert "Stopped after 2 turn(s)" in out and "hidden need was" in out
    assert "Traceback" not in out + err
    [episode] = read_episodes(log)
    # The rejected lines cost no turn; the valid ones were said exactly as typed.
    assert [s["agent"] for s in episode["steps"]] == said
    assert episode["complete"] is False and episode["turns"] == 2
    assert episode["player"] == "human" and episode["mode"] == "text"
    assert episode["env_id"] == "EmpathyDialogueText-v0"
    assert episode["steps"][0]["acts"][0] == "Question"


def test_play_text_to_the_end(monkeypatch, capsys, tmp_path):
    log = tmp_path / "play.jsonl"
    stdin = "\n".join(EXAMPLE_UTTERANCES[:3]) + "\nnever read\n"
    code, out, _ = run(
        monkeypatch, capsys, ["play", *GAME, "--max-turns", "3", "--log", str(log)], stdin
    )
    assert code == 0
    assert "Final emotion" in out and "Replay: --card test-" in out
    assert "never read" not in out
    [episode] = read_episodes(log)
    assert episode["complete"] is True and episode["turns"] == 3
    assert episode["steps"][-1]["truncated"] or episode["steps"][-1]["terminated"]


@pytest.mark.parametrize("stop", ["quit", "EXIT", ""])
def test_play_stops_cleanly_on_quit_or_eof(monkeypatch, capsys, tmp_path, stop):
    log = tmp_path / "play.jsonl"
    stdin = f"{stop}\n" if stop else ""
    code, out, err = run(monkeypatch, capsys, ["play", *GAME, "--log", str(log)], stdin)
    assert code == 0 and "Stopped after 0 turn(s)" in out and not err
    assert read_episodes(log) == []  # no turn taken: no episode to log


def test_play_strategy_menu_and_bad_choices(monkeypatch, capsys, tmp_path):
    log = tmp_path / "play.jsonl"
    answers = ["0", "9", "-1", "hug", "re", "", "menu", "1", "question", "reflection", "2", "quit"]
    code, out, err = run(
        monkeypatch,
        capsys,
        ["play", "--strategy", *GAME, "--explain", "--log", str(log)],
        "\n".join(answers) + "\n",
    )
    assert code == 0, err
    for i, name in enumerate(STRATEGIES, start=1):
        assert f"  {i}  {name}" in out
    assert out.count("Strategies:") == 2  # at the start and for 'menu'
    assert "There is no strategy 0" in out and "There is no strategy 9" in out
    assert "There is no strategy -1" in out
    assert "'hug' is not a strategy" in out
    assert "'re' could be 2 Restatement or Paraphrasing or 3 Reflection of feelings" in out
    assert "Pick a strategy: a number from 1 to 8" in out
    assert "Agent [Question]:" in out and "Agent [Reflection of feelings]:" in out
    assert "Stopped after 4 turn(s)" in out
    [episode] = read_episodes(log)
    strategies = [s["strategy"] for s in episode["steps"]]
    assert strategies == [STRATEGIES[0], STRATEGIES[0], STRATEGIES[2], STRATEGIES[1]]
    assert episode["mode"] == "strategy" and episode["env_id"] == "EmpathyDialogue-v0"


def test_play_strategy_eof_at_once(monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, ["play", "--strategy", *GAME], "")
    assert code == 0 and "Stopped after 0 turn(s)" in out and not err


def test_play_same_seed_same_game(monkeypatch, capsys):
    stdin = "1\n3\n"
    first = run(monkeypatch, capsys, ["play", "--strategy", *GAME], stdin)
    second = run(monkeypatch, capsys, ["play", "--strategy", *GAME], stdin)
    assert first == second


# -- episode --out ----------------------------------------------------------------------


def test_episode_out_writes_one_valid_line_per_episode(monkeypatch, capsys, tmp_path):
    out_file = tmp_path / "runs" / "ep.jsonl"  # the folder is created
    argv = ["episode", "--policy", "stage-heuristic", "--episodes", "3", "--seed", "5"]
    argv += ["--reward", "emotion_delta", "--out", str(out_file)]
    code, out, _ = run(monkeypatch, capsys, argv)
    assert code == 0 and f"wrote 3 episode(s) to {out_file}" in out
    lines = out_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    episodes = [json.loads(line) for line in lines]
    for k, episode in enumerate(episodes):
        assert set(EPISODE_FIELDS) <= set(episode)
        assert episode["policy"] == "stage-heuristic" and episode["reward"] == "emotion_delta"
        assert episode["seed"] == 5 + k and episode["episode"] == k
        assert episode["complete"] is True
        assert episode["turns"] == len(episode["steps"]) >= 1
        assert len(episode["messages"]) == 1 + 2 * episode["turns"]
        assert episode["messages"][0]["role"] == "user"
        assert episode["success"] == episode["steps"][-1]["terminated"] or episode["user_left"]
        assert episode["episode_return"] == pytest.approx(
            sum(s["reward"] for s in episode["steps"])
        )
        for step in episode["steps"]:
            assert set(step) == set(STEP_FIELDS)
            assert step["strategy"] in STRATEGIES and step["agent"] and step["user"]
            assert step["reward"] == step["reward_components"]["emotion_delta"]
    # The same seeds give the same file.
    run(monkeypatch, capsys, argv)
    assert out_file.read_text(encoding="utf-8").splitlines() == lines


def test_episode_out_append_and_stdout(monkeypatch, capsys, tmp_path):
    out_file = tmp_path / "ep.jsonl"
    run(monkeypatch, capsys, ["episode", "--out", str(out_file)])
    run(monkeypatch, capsys, ["episode", "--out", str(out_file), "--append", "--seed", "1"])
    assert [e["seed"] for e in read_episodes(out_file)] == [0, 1]
    run(monkeypatch, capsys, ["episode", "--out", str(out_file)])  # replaces by default
    assert len(read_episodes(out_file)) == 1
    code, out, _ = run(monkeypatch, capsys, ["episode", "--episodes", "2", "--out", "-"])
    assert code == 0
    assert [json.loads(line)["seed"] for line in out.splitlines()] == [0, 1]


def test_episode_by_card_index_and_id(monkeypatch, capsys, tmp_path):
    by_index, by_id = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run(monkeypatch, capsys, ["episode", "--card", "2", "--out", str(by_index)])
    [episode] = read_episodes(by_index)
    run(monkeypatch, capsys, ["episode", "--card", episode["card_id"], "--out", str(by_id)])
    assert read_episodes(by_id) == [episode]


# -- help and bad arguments -------------------------------------------------------------


@pytest.mark.parametrize("command", ["demo", "episode", "play", "evaluate", "bench"])
def test_help_of_each_subcommand(monkeypatch, capsys, command):
    code, out, _ = run(monkeypatch, capsys, [command, "--help"])
    assert code == 0
    assert f"usage: dialogue-gym {command}" in out


def test_top_level_help_lists_every_subcommand(monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, ["--help"])
    assert code == 0
    for command in ("demo", "episode", "play", "evaluate", "bench", "study"):
        assert command in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["episode", "--policy", "psychic"], "invalid choice: 'psychic'"),
        (["episode", "--episodes", "0"], "--episodes: must be at least 1, got 0"),
        (["episode", "--episodes", "two"], "expected a whole number, got 'two'"),
        (["episode", "--max-turns", "-3"], "--max-turns: must be at least 1"),
        (["episode", "--seed", "-1"], "--seed: must be in"),
        (["episode", "--card", "no-such-card"], "no card 'no-such-card' in these scenarios"),
        (["episode", "--card", "999"], "card index 999 is out of range"),
        (["episode", "--scenarios", "/no/such/dir"], "no such file or directory"),
        (["episode", "--out", "/proc/no/such/ep.jsonl"], "cannot write the log"),
        (["evaluate", "--repeats", "0"], "--repeats: must be at least 1"),
        (["play", "--voice", "template", "--card", "nope"], "no card 'nope'"),
        (["play", "--voice", "robot"], "invalid choice: 'robot'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: <command>"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(monkeypatch, capsys, argv, says):
    code, out, err = run(monkeypatch, capsys, argv)
    assert code == 2
    assert says in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("dialogue-gym") and "error:" in err
    assert "Traceback" not in out + err


def test_debug_env_var_shows_the_error(monkeypatch, capsys):
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(cli.UsageError, match="no card"):
        main(["episode", "--card", "no-such-card"])


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed")
def test_console_script_bad_arguments_no_traceback():
    for argv in (["episode", "--policy", "psychic"], ["episode", "--card", "nope"]):
        proc = subprocess.run(
            [str(SCRIPT), *argv],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# -- bench and study: their own command lines -------------------------------------------


def test_bench_passes_its_arguments_through(monkeypatch, capsys):
    import dialogue_gym.evaluation.throughput as bench

    seen = {}
    monkeypatch.setattr(bench, "parse_args", lambda argv: seen.setdefault("argv", argv))
    monkeypatch.setattr(bench, "main", lambda args: seen.setdefault("main", args) and {})
    code, _, _ = run(monkeypatch, capsys, ["bench", "--quick", "--steps", "10"])
    assert code == 0 and seen == {"argv": ["--quick", "--steps", "10"], "main": seen["argv"]}


def test_bench_runs_from_the_package_not_repository_files(monkeypatch, capsys, tmp_path):
    # From an install there is no benchmarks/ folder: bench must not look for one.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(ROOT))])
    code, out, _ = run(monkeypatch, capsys, ["bench", "--help"])
    assert code == 0 and "usage: dialogue-gym bench" in out and "--quick" in out


def test_choices_come_from_the_registries():
    from dialogue_gym.rewards import REWARDS, EmotionDeltaReward, register_reward
    from dialogue_gym.rewards.registry import COMPONENT_WRAPPERS
    from dialogue_gym.user.recognise import RECOGNISERS, LexicalRecogniser
    from dialogue_gym.user.voices import (
        AGENT_REALISERS,
        USER_VOICES,
        TemplateAgentRealiser,
        TemplateUserVoice,
    )

    argv = ["episode", "--voice", "calm", "--agent-voice", "plain", "--reward", "halved"]
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)
    with (
        USER_VOICES.restoring(),
        AGENT_REALISERS.restoring(),
        RECOGNISERS.restoring(),
        REWARDS.restoring(),
        COMPONENT_WRAPPERS.restoring(),
    ):
        USER_VOICES.register("calm", TemplateUserVoice)
        AGENT_REALISERS.register("plain", TemplateAgentRealiser)
        RECOGNISERS.register("cues", LexicalRecogniser)
        register_reward("halved", EmotionDeltaReward)
        args = cli.build_parser().parse_args(argv)
        assert (args.voice, args.agent_voice, args.reward) == ("calm", "plain", "halved")
        assert cli.build_parser().parse_args(["play", "--recogniser", "cues"]).recogniser == "cues"


def test_the_benchmark_script_is_the_package_module():
    script = load_script(ROOT / "benchmarks" / "throughput.py", "_bench_script")
    import dialogue_gym.evaluation.throughput as bench

    assert script.main is bench.main and script.parse_args is bench.parse_args


def _study():
    import dialogue_gym.study.run as study  # a failed import fails the test, never skips it

    return study


def test_study_help_is_the_studys_own(monkeypatch, capsys):
    study = _study()
    code, out, _ = run(monkeypatch, capsys, ["study", "--help"])
    assert code == 0 and "usage: dialogue-gym study" in out
    monkeypatch.setattr(sys, "argv", ["dialogue-gym study"])
    with pytest.raises(SystemExit):
        study.parse_args(["--help"])
    assert capsys.readouterr().out == out


def test_study_passes_its_arguments_through(monkeypatch, capsys):
    study = _study()
    seen = {}
    monkeypatch.setattr(study, "parse_args", lambda argv: seen.setdefault("argv", argv))
    monkeypatch.setattr(study, "main", lambda args: seen.setdefault("main", args) and {})
    code, _, _ = run(monkeypatch, capsys, ["study", "--quick", "--seeds", "1"])
    assert code == 0 and seen == {"argv": ["--quick", "--seeds", "1"], "main": seen["argv"]}


def test_study_bad_argument_exits_2(monkeypatch, capsys):
    _study()
    code, out, err = run(monkeypatch, capsys, ["study", "--no-such-option"])
    assert code == 2 and "Traceback" not in out + err


def test_study_missing_module_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "dialogue_gym.study.run", None)  # import raises ImportError
    monkeypatch.delattr("dialogue_gym.study.run", raising=False)
    code, _, err = run(monkeypatch, capsys, ["study", "--quick"])
    assert code == 2 and "no study module" in err
