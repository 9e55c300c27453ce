"""The LLM level of the reward study: `dialogue-gym train-llm` results beside the strategy level.

Fast tests read run folders written here in train-llm's format; the slow one runs the real
`dialogue-gym train-llm` at tiny settings (a random-weights model, one GRPO step, four test
users: about 20 s) and a one-run study that reads it.
"""

from __future__ import annotations

import json

import pytest

from dialogue_gym import InvalidArgument
from dialogue_gym.cli import main as cli
from dialogue_gym.study import llm_level


def _episodes(emotions, success=None):
    success = success or [False] * len(emotions)
    return [
        {"card": f"test-{k}", "seed": 100 + k, "final_emotion": e, "success": s, "return": e / 100}
        for k, (e, s) in enumerate(zip(emotions, success, strict=True))
    ]


def _recorded_run(root, name, reward, before, after, soothing=1.0, kwargs="{}", success=None):
    """A run folder as `dialogue-gym train-llm` writes it (the files the study reads)."""
    folder = root / name
    folder.mkdir(parents=True)
    metrics = {
        "before": {"episodes": len(before), "success": 0.0, "final_emotion": sum(before) / 4},
        "after": {
            "episodes": len(after),
            "success": sum(success or []) / len(after),
            "final_emotion": sum(after) / 4,
            "soothing_index": soothing,
        },
    }
    result = {"name": name, "reward": reward, **metrics, "wall_s": 60.0, "machine": "a CPU"}
    (folder / "eval.json").write_text(json.dumps(result))
    settings = {"reward": reward, "reward_kwargs": kwargs, "tiny": False, "model": None}
    settings |= {"steps": 20, "prompts_per_step": 1, "num_generations": 4, "max_turns": 4}
    (folder / "args.json").write_text(json.dumps(settings | {"turn_tokens": 32}))
    for phase, emotions, won in (("before", before, None), ("after", after, success)):
        lines = [json.dumps(e) for e in _episodes(emotions, won)]
        (folder / f"episodes_{phase}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def recorded(tmp_path):
    root = tmp_path / "llm"
    _recorded_run(root, "final_emotion-long", "final_emotion", [40, 40, 40, 40], [45, 46, 44, 45])
    _recorded_run(root, "next_turn", "next_turn", [40, 40, 40, 40], [41, 39, 40, 40])
    _recorded_run(
        root,
        "multi_turn-advantage",
        "multi_turn",
        [40] * 4,
        [40] * 4,
        kwargs='{"mode": "advantage"}',
    )
    return root


def test_a_run_folder_its_eval_json_and_a_folder_of_runs_are_read(recorded):
    runs = llm_level.load(recorded)
    assert [r["name"] for r in runs] == ["final_emotion-long", "multi_turn-advantage", "next_turn"]
    # The advantage form is the study's multi_turn; the value form its variant.
    assert [r["label"] for r in runs] == ["final_emotion", "multi_turn", "next_turn"]
    assert llm_level.study_label("multi_turn", {"mode": "value"}) == "multi_turn_value"
    one = llm_level.load(recorded / "next_turn")
    assert one == llm_level.load(recorded / "next_turn" / "eval.json")
    mid, lo, hi = one[0]["paired"]["final_emotion"]
    assert mid == 0.0 and lo < 0 < hi  # paired over the same four users
    assert one[0]["paired"]["success"] == (0.0, 0.0, 0.0)


def test_the_verdicts_follow_the_paired_intervals(tmp_path):
    root = tmp_path / "llm"
    _recorded_run(root, "soothes", "final_emotion", [40] * 4, [45, 46, 44, 45])
    _recorded_run(root, "warms", "final_emotion", [40] * 4, [45, 46, 44, 45], soothing=0.2)
    _recorded_run(root, "helps", "sparse", [40] * 4, [75] * 4, success=[True] * 4)
    _recorded_run(root, "same", "sparse", [40] * 4, [40] * 4)
    found = {
        r["name"]: llm_level.llm_verdict(r["paired"], r["after"]["soothing_index"])
        for r in llm_level.load(root)
    }
    assert found == {
        "soothes": "soothes",
        "warms": "emotion up",
        "helps": "helps",
        "same": "no detectable change",
    }
    (root / "same" / "episodes_after.jsonl").unlink()  # no per-user files: no intervals
    same = next(r for r in llm_level.load(root) if r["name"] == "same")
    assert same["paired"] == {} and llm_level.llm_verdict(same["paired"], 1.0) == ""


def test_the_section_shows_each_run_beside_the_strategy_verdict_and_one_answer_for_both(recorded):
    rows = [
        {"learner": "ppo", "reward": "sparse", "verdict": "reference", "success_iqm": 0.57},
        {"learner": "ppo", "reward": "final_emotion", "verdict": "soothes", "success_iqm": 0.0},
        {"learner": "ppo", "reward": "next_turn", "verdict": "matches", "success_iqm": 0.84},
        {"learner": "a2c", "reward": "next_turn", "verdict": "dropped", "dropped": True,
         "success_iqm": 0.3},
    ]  # fmt: skip
    runs = llm_level.load(recorded)
    text = "\n".join(llm_level.section(runs, rows, "in the `default` setting"))
    assert text.startswith("## The LLM level")
    line = next(x for x in text.splitlines() if x.startswith("| `final_emotion-long`"))
    assert "| 0% → 0% | 40.0 → 45.0 |" in line and "| soothes | ppo: soothes (0%) |" in line
    line = next(x for x in text.splitlines() if x.startswith("| `next_turn`"))
    assert "no detectable change | ppo: matches (84%) |" in line  # a2c was dropped: not shown
    assert "20 GRPO steps x 1 users x 4 conversations, 4 turns" in text and "a CPU" in text

    both = llm_level.combined_answer(runs, {"in the `default` setting": rows})
    assert both.startswith("**Both levels.** At the strategy level, in the `default` setting")
    assert "`next_turn` can replace the coarse bonus" in both
    assert "`final_emotion` can only soothe" in both
    assert "`final_emotion-long` (final_emotion) soothed: final emotion +5.0" in both
    assert "repeats the strategy level's soothing verdict for `final_emotion`" in both
    assert "cannot yet test whether a reward replaces the coarse bonus" in both


def test_without_results_the_section_says_how_to_make_them():
    assert llm_level.section(None, [], "x") == ["## The LLM level", "", llm_level.HOW_TO]
    assert "dialogue-gym train-llm" in llm_level.HOW_TO and "--llm-results" in llm_level.HOW_TO
    assert "the LLM level is not in this report" in llm_level.combined_answer(None, {"x": []})


def test_bad_llm_results_fail_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(["study", "--llm-results", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "study.llm_results = '" in err and "must be a `dialogue-gym train-llm` output" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "eval.json").write_text('{"before": {}}')
    with pytest.raises(InvalidArgument) as err:
        llm_level.load(bad)
    assert err.value.field == "llm_results" and "before and after" in err.value.allowed
    assert not out.exists()


@pytest.fixture(scope="module")
def tiny_train_llm(tmp_path_factory):
    """The real `dialogue-gym train-llm` at tiny settings: random weights, one GRPO step."""
    pytest.importorskip("trl")
    out = tmp_path_factory.mktemp("llm")
    argv = [
        "train-llm", "--tiny", "--reward", "final_emotion", "--steps", "1",
        "--prompts-per-step", "1", "--num-generations", "2", "--max-turns", "2",
        "--turn-tokens", "8", "--eval-cards", "4", "--threads", "1", "--out", str(out),
    ]  # fmt: skip
    assert cli(argv) == 0
    return out


@pytest.mark.slow
def test_the_study_report_has_the_llm_level_from_a_real_train_llm_run(tiny_train_llm, tmp_path):
    run = tiny_train_llm / "final_emotion-tiny"
    assert (run / "eval.json").is_file() and (run / "episodes_after.jsonl").is_file()
    tiny = [
        "study", "--rewards", "sparse", "--learners", "ppo", "--seeds", "1", "--steps", "64",
        "--eval-points", "1", "--bootstrap-reps", "50", "--no-plots", "--no-progress",
        "--workers", "1", "--out", str(tmp_path), "--name", "s",
    ]  # fmt: skip
    assert cli([*tiny, "--llm-results", str(tiny_train_llm)]) == 0
    text = (tmp_path / "s" / "report.md").read_text()
    section = text.split("## The LLM level", 1)[1].split("## Plots", 1)[0]
    assert "| `final_emotion-tiny` | final_emotion |" in section
    assert "tiny random-weights model, 1 GRPO steps x 1 users x 2 conversations" in section
    assert "4 test users" in section
    answer = text.split("## The answer", 1)[1].split("Rules:", 1)[0]
    assert "**Both levels.**" in answer and "at the LLM level (1 GRPO run)" in answer
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["llm"][0]["name"] == "final_emotion-tiny"
    assert summary["answer"][-1].startswith("**Both levels.**")

    # Without --llm-results the section says how to make them; --report-only adds them later.
    assert cli([*tiny, "--name", "t"]) == 0
    assert llm_level.HOW_TO in (tmp_path / "t" / "report.md").read_text()
    assert cli([*tiny, "--name", "t", "--report-only", "--llm-results", str(run)]) == 0
    assert "| `final_emotion-tiny` |" in (tmp_path / "t" / "report.md").read_text()
