"""The reward study: a tiny run through the CLI (every output file), seeded reproducibility,
the plan and the report's verdict rules on hand-built rows."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys

import pytest

from dialogue_gym.cli import main as cli
from dialogue_gym.evaluation.episode_log import read_episodes
from dialogue_gym.study import report
from dialogue_gym.study import run as study

TINY = [
    "--rewards", "sparse", "emotion_delta",
    "--learners", "ppo", "hppo",
    "--seeds", "1",
    "--steps", "256",
    "--eval-points", "2",
    "--no-sweep",
    "--bootstrap-reps", "100",
    "--no-progress",
]  # fmt: skip


def _run(tmp_path, name, *extra):
    code = cli(["study", *TINY, "--out", str(tmp_path), "--name", name, *extra])
    assert code == 0
    return tmp_path / name


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("study"), "tiny", "--workers", "1")


@pytest.mark.slow
def test_smoke_run_writes_every_file(tiny_run, capsys):
    for name in (
        "args.json",
        "runs.jsonl",
        "runs.csv",
        "curves.csv",
        "baselines.csv",
        "aggregate.csv",
        "summary.json",
        "report.md",
        "learning_curves.png",
        "final_success.png",
        "emotion_trajectories.png",
    ):
        path = tiny_run / name
        assert path.is_file() and path.stat().st_size > 0, name
    for png in tiny_run.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    runs = [json.loads(line) for line in (tiny_run / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 4
    assert {(r["reward"], r["learner"]) for r in runs} == {
        (w, lrn) for w in ("sparse", "emotion_delta") for lrn in ("ppo", "hppo")
    }
    for r in runs:
        assert [p["steps"] for p in r["curve"]] == [128, 256]
        assert len(r["card_success"]) == 72 and len(r["emotion_trajectory"]) == 11
        # Every reward's return is measured, whatever the run trained on.
        assert not math.isnan(r["metrics"]["return/multi_turn"])
        episodes = read_episodes(tiny_run / "episodes" / f"{r['run']}.jsonl")
        assert len(episodes) == 72 and all(e["complete"] for e in episodes)
        assert episodes[0]["reward"] == r["reward"] and episodes[0]["learner"] == r["learner"]

    with (tiny_run / "curves.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 8
    with (tiny_run / "baselines.csv").open() as f:
        assert {row["policy"] for row in csv.DictReader(f)} == set(study.BASELINES)

    text = (tiny_run / "report.md").read_text()
    table = [
        line for line in text.splitlines() if line.startswith("| ppo") or line.startswith("| hppo")
    ]
    assert len(table) == 4
    assert "dialogue-gym study --rewards sparse emotion_delta" in text
    assert "## The answer" in text and "stage-heuristic" in text
    summary = json.loads((tiny_run / "summary.json").read_text())
    sparse = [r for r in summary["rows"] if r["reward"] == "sparse"]
    assert all(r["verdict"] == "reference" for r in sparse)
    for row in summary["rows"]:
        assert row["success_lo"] <= row["success_iqm"] <= row["success_hi"]


@pytest.mark.slow
def test_seeded_runs_give_the_same_numbers_twice_in_parallel(tiny_run, tmp_path):
    again = _run(tmp_path, "again", "--workers", "2")

    def numbers(folder):
        rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
        for r in rows:
            r.pop("train_seconds")
        return sorted(rows, key=lambda r: r["run"])  # written as runs finish, in any order

    assert numbers(again) == numbers(tiny_run)


def test_plan_covers_the_sweep_with_the_sweep_learner():
    args = study.Args(rewards=("sparse", "emotion_delta"), learners=("ppo", "a2c"), seeds=2)
    specs = study.plan(args)
    main = [s for s in specs if s.setting == "default"]
    swept = [s for s in specs if s.setting != "default"]
    assert len(main) == 2 * 2 * 2
    n_settings = sum(len(v) for v in study.SWEEP.values())
    assert len(swept) == n_settings * 2 * args.sweep_seeds
    assert {s.learner for s in swept} == {"ppo"}
    assert {"soothing_ceiling", "resolution_uplift", "premature_penalty"} <= {
        k for s in swept for k in s.sim
    }
    assert len({s.run_id for s in specs}) == len(specs)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rewards", "dense"], "unknown reward 'dense'"),
        (["--learners", "sac"], "unknown learner 'sac'"),
        (["--sim", "soothing_ceiling"], "is not name=value"),
        (["--sim", "ceiling=3"], "unknown SimConfig parameter"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--rewards", "emotion_delta"], "include the sparse reward"),
    ],
)
def test_bad_settings_fail_before_anything_runs(argv, message, tmp_path, capsys):
    assert cli(["study", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _row(reward, iqm, lo, hi, soothing, auc, setting="default"):
    return {
        "setting": setting,
        "learner": "ppo",
        "reward": reward,
        "success_iqm": iqm,
        "success_lo": lo,
        "success_hi": hi,
        "soothing_index": soothing,
        "curve_auc": auc,
    }


def test_verdicts_follow_the_stated_rules():
    rows = [
        _row("sparse", 0.8, 0.7, 0.9, 0.1, 0.5),
        _row("final_emotion", 0.75, 0.65, 0.85, 0.2, 0.6),  # overlaps, AUC +20%
        _row("emotion_delta", 0.1, 0.05, 0.2, 0.9, 0.1),  # below, soothing
        _row("next_turn", 0.4, 0.3, 0.5, 0.2, 0.3),  # below, not soothing
        # A setting where the coarse bonus itself did not learn:
        _row("sparse", 0.0, 0.0, 0.1, 0.8, 0.02, setting="hard"),
        _row("next_turn", 0.5, 0.3, 0.6, 0.1, 0.3, setting="hard"),  # wholly above
        _row("multi_turn", 0.05, 0.0, 0.2, 0.2, 0.02, setting="hard"),  # overlaps a failure
        _row("emotion_delta", 0.0, 0.0, 0.0, 0.9, 0.0, setting="hard"),
    ]
    report.verdicts(rows)
    assert [(r["verdict"], r["speed"]) for r in rows] == [
        ("reference", ""),
        ("reaches", "faster"),
        ("soothes", "slower"),
        ("falls short", "slower"),
        ("reference", ""),
        ("beats", "faster"),
        ("both fail", "as fast"),
        ("soothes", "slower"),
    ]
    can, cannot = report.conditions(rows, "ppo")
    assert can == ["`final_emotion`: default", "`next_turn`: hard"]
    assert cannot == [
        "`emotion_delta`: default (soothes), hard (soothes)",
        "`next_turn`: default (falls short)",
        "`multi_turn`: hard (both fail)",
    ]
    assert set(report.RULES) >= {"beats", "reaches", "soothes", "both fail", "falls short"}


def test_task_scores_stratify_by_need():
    rec = {"card_success": [1.0, 0.0, 1.0, 1.0], "card_need": ["b", "a", "a", "b"]}
    assert report.task_scores([rec, rec]).tolist() == [[0.5, 1.0], [0.5, 1.0]]


@pytest.mark.slow
def test_plugins_register_a_reward_and_a_learner(tmp_path, monkeypatch, request):
    plugin = tmp_path / "my_study_plugin.py"
    plugin.write_text(
        "from dialogue_gym.rewards import EmotionDeltaReward, register_reward\n"
        "from dialogue_gym.study.run import LEARNERS, register_learner\n"
        "register_reward('half_delta', lambda env: EmotionDeltaReward(env, scale=0.05))\n"
        "register_learner('my_hppo', LEARNERS['ppo'], hierarchical=True)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # The plugin registers into the module-level registries: undo it afterwards, so other
    # tests in this process see the built-in ones only.
    from dialogue_gym.rewards import registry

    stack = contextlib.ExitStack()
    for reg in (registry.REWARDS, registry.COMPONENT_WRAPPERS, study.LEARNERS):
        stack.enter_context(reg.restoring())
    request.addfinalizer(stack.close)
    monkeypatch.delitem(sys.modules, "my_study_plugin", raising=False)
    args = [
        "study", "--rewards", "sparse", "half_delta", "--learners", "my_hppo", "--seeds", "1",
        "--steps", "128", "--eval-points", "1", "--no-sweep", "--workers", "1",
        "--bootstrap-reps", "50", "--no-plots", "--no-progress", "--plugins", "my_study_plugin",
        "--out", str(tmp_path), "--name", "plug",
    ]  # fmt: skip
    assert cli(args) == 0
    runs = [json.loads(x) for x in (tmp_path / "plug" / "runs.jsonl").read_text().splitlines()]
    assert [(r["reward"], r["learner"]) for r in runs] == [
        ("sparse", "my_hppo"),
        ("half_delta", "my_hppo"),
    ]
    assert "--plugins my_study_plugin" in (tmp_path / "plug" / "report.md").read_text()
    assert study.is_hierarchical("my_hppo") and "my_hppo" in study.STUDY_LEARNERS
    sys.modules.pop("my_study_plugin", None)


@pytest.mark.parametrize("missing", ["rliable", "pandas", "matplotlib"])
def test_a_missing_study_extra_fails_at_once_naming_the_extra(
    missing, tmp_path, monkeypatch, capsys
):
    # As if the package were not installed: importlib.util.find_spec gives None for it.
    monkeypatch.setitem(sys.modules, missing, None)
    started = []
    monkeypatch.setattr(study, "run_baselines", lambda *a: started.append(1) or [])
    assert cli(["study", *TINY, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert missing in err and "pip install 'dialogue_gym[study]'" in err
    assert not started and not any(tmp_path.iterdir())  # nothing ran, nothing was written


def test_plots_off_do_not_need_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    study.check_dependencies(study.Args(plots=False))  # no error
    with pytest.raises(study.MissingExtraError, match="matplotlib"):
        study.check_dependencies(study.Args(plots=True))


def test_the_study_lists_read_the_registries():
    from dialogue_gym.agents.reference import REFERENCE_POLICIES
    from dialogue_gym.rewards import reward_probes

    assert study.STUDY_REWARDS == tuple(reward_probes()) == study.Args().rewards
    assert study.STUDY_REWARDS[0] == "sparse"  # the reference the verdicts compare with
    assert study.STUDY_LEARNERS == tuple(study.LEARNERS) == study.Args().learners
    assert set(study.BASELINES) <= set(REFERENCE_POLICIES)
    assert study.HIERARCHICAL == {"hppo"}


@pytest.mark.slow
def test_resume_trains_only_the_missing_runs(tiny_run, tmp_path, capsys):
    folder = tmp_path / "tiny"
    folder.mkdir()
    lines = (tiny_run / "runs.jsonl").read_text().splitlines()
    # Two finished runs and a third cut off mid-line, as a killed study leaves them.
    (folder / "runs.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:50])
    _run(tmp_path, "tiny", "--workers", "1", "--resume")
    again = [json.loads(x) for x in (folder / "runs.jsonl").read_text().splitlines()[:2]]
    assert again == [json.loads(x) for x in lines[:2]]
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["rows"]) == 4
    # The cut-off line was dropped (its run trained again), not kept as a line of garbage.
    lines = (folder / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4
    assert len({json.loads(x)["run"] for x in lines[2:]}) == 2  # only the two missing runs


def test_intervals_are_seeded_and_leave_numpy_global_state_alone():
    import numpy as np

    rng = np.random.default_rng(1)
    groups = {"a": rng.random((3, 6)), "b": rng.random((3, 6))}
    np.random.seed(5)
    expected_next = np.random.random()
    np.random.seed(5)
    first = report.iqm_intervals(groups, 300)
    assert np.random.random() == expected_next
    assert report.iqm_intervals(groups, 300) == first
    for mid, lo, hi in first.values():
        assert lo <= mid <= hi
