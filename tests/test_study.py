"""The reward study: a tiny run through the CLI (every output file), seeded reproducibility,
the plan and the report's verdict rules on hand-built rows."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import sys

import pytest

from dialogue_gym import InvalidArgument
from dialogue_gym.cli import main as cli
from dialogue_gym.evaluation.episode_log import read_episodes
from dialogue_gym.study import aggregate, intervals, resume, settings, tables, verdicts
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
def tiny_output(tmp_path_factory):
    """The tiny study's folder and what it printed."""
    with pytest.MonkeyPatch.context() as mp:
        printed = []
        mp.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
        folder = _run(tmp_path_factory.mktemp("study"), "tiny", "--workers", "1")
    return folder, "\n".join(printed)


@pytest.fixture(scope="module")
def tiny_run(tiny_output):
    return tiny_output[0]


@pytest.mark.slow
def test_the_terminal_says_what_runs_first_and_ends_with_the_answer(tiny_output):
    folder, printed = tiny_output
    lines = printed.splitlines()
    # Before anything trains: how many runs, and that the sweep is off unless asked for.
    assert lines[0].startswith("study: 4 runs (default setting: 2 rewards x 2 learners x 1 seeds")
    assert "no simulator sweep: --sweep adds" in lines[0]
    # At the end: the answer in words and where the report and the plots are.
    assert "The answer:" in printed and "- ppo — the coarse bonus scores" in printed
    assert f"report: {folder / 'report.md'}" in printed
    assert str(folder / "learning_curves.png") in printed and str(folder / "needs.png") in printed
    table = lines[lines.index("Main setting: default (test cards)") : lines.index("The answer:")]
    table = [line for line in table if line]
    assert len(table) == 3 + 4 and max(map(len, table)) <= 100  # not a 190-column table


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
        "needs.png",
        "needs.csv",
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
        # PPO (and hppo, PPO over options) trains whole 512-step rollouts: 128 asked, 512 done.
        assert r["budget"] == 256 and [p["steps"] for p in r["curve"]] == [512, 1024]
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
    main_table = text.split("## Main setting", 1)[1].split("Reference policies", 1)[0]
    table = [line for line in main_table.splitlines() if line.startswith(("| ppo", "| hppo"))]
    assert len(table) == 4
    assert "dialogue-gym study --rewards sparse emotion_delta" in text
    assert "## The answer" in text and "stage-heuristic" in text
    assert "## Per hidden need" in text and "## Per problem type" in text
    assert "load average" in text
    settings = json.loads(text.split("Settings: `", 1)[1].split("`", 1)[0])
    assert settings["quick"] is False and settings["sweep"] is False
    summary = json.loads((tiny_run / "summary.json").read_text())
    sparse = [r for r in summary["rows"] if r["reward"] == "sparse"]
    assert all(r["verdict"] == "reference" for r in sparse)
    for row in summary["rows"]:
        assert row["success_lo"] <= row["success_iqm"] <= row["success_hi"]
        # The curve's seed band holds the mean (one seed here: a band of zero width).
        for lo, mid, hi in zip(row["curve_lo"], row["curve"], row["curve_hi"], strict=True):
            assert lo <= mid + 1e-9 and mid <= hi + 1e-9
        # The per-need breakdown pools the seeds' cards of each need: its mean is the rate.
        assert len(row["need_success"]) == 6 and len(row["problem_success"]) == 11
        assert set(row["need_soothing"]) == set(row["need_success"])
    for run in runs:
        assert len(run["card_problem"]) == len(run["card_resolved"]) == 72


@pytest.mark.slow
def test_seeded_runs_give_the_same_numbers_twice_in_parallel(tiny_run, tmp_path):
    again = _run(tmp_path, "again", "--workers", "2")

    def numbers(folder):
        rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
        for r in rows:
            r.pop("train_seconds")
        return sorted(rows, key=lambda r: r["run"])  # written as runs finish, in any order

    assert numbers(again) == numbers(tiny_run)


def test_the_sweep_runs_only_when_asked_for():
    args = study.Args(rewards=("sparse", "emotion_delta"), learners=("ppo",), seeds=3)
    assert not args.sweep and len(study.plan(args)) == 6
    assert len(study.plan(dataclasses.replace(args, sweep=True))) > 6


def test_plan_covers_the_sweep_with_the_sweep_learner():
    args = study.Args(
        rewards=("sparse", "emotion_delta"), learners=("ppo", "a2c"), seeds=2, sweep=True
    )
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
        (["--rewards", "dense"], "study.rewards = 'dense': must be one of sparse,"),
        (["--learners", "sac"], "unknown learner 'sac'"),
        (["--sim", "soothing_ceiling"], "is not name=value"),
        (["--sim", "ceiling=3"], "unknown SimConfig parameter"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--rewards", "emotion_delta", "--sweep"], "include the sparse reward"),
        (["--plugins", "no_such_plugin_module"], "study.plugins = 'no_such_plugin_module'"),
        (["--plugins", "missing/plugin.py"], "study.plugins = 'missing/plugin.py'"),
        (["--envs", "NoSuchUser-v0"], "study.envs = 'NoSuchUser-v0': is not registered: must"),
        (["--envs", "EmpathyDialogueText-v0"], "has other actions: must be a registered env id"),
        (["--envs", "CartPole-v1"], "(EmpathyDialogue-v0"),
        (["--learner-steps", "sac=100"], "study.learner_steps = 'sac=100': must be LEARNER=STEPS"),
        (["--learner-steps", "ppo=0"], "study.learner_steps = 'ppo=0': must be LEARNER=STEPS"),
        (["--learner-steps", "ppo"], "with LEARNER one of ppo, a2c, dqn, recurrent_ppo, hppo"),
        (["--learner-steps", "ppo=9", "ppo=8"], "'ppo=8': names ppo twice"),
        (
            ["--learner-steps", "ppo=3", "--eval-points", "5"],
            "study.learner_steps = 'ppo=3': gives ppo 3 steps: must be at least --eval-points (5)",
        ),
    ],
)
def test_bad_settings_fail_before_anything_runs(argv, message, tmp_path, capsys):
    assert cli(["study", *argv, "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _row(reward, iqm, lo, hi, soothing, auc, setting="default", diff=None):
    """A constructed row; ``diff``: its difference interval against the bonus (lo, hi)."""
    row = {
        "setting": setting,
        "learner": "ppo",
        "reward": reward,
        "success_iqm": iqm,
        "success_lo": lo,
        "success_hi": hi,
        "soothing_index": soothing,
        "curve_auc": auc,
    }
    if diff is not None:
        row |= {"diff_iqm": (diff[0] + diff[1]) / 2, "diff_lo": diff[0], "diff_hi": diff[1]}
    return row


def test_verdicts_follow_the_stated_rules():
    rows = [
        _row("sparse", 0.8, 0.7, 0.9, 0.1, 0.5),
        _row("final_emotion", 0.75, 0.65, 0.85, 0.2, 0.6, diff=(-0.08, 0.02)),  # within δ
        _row("emotion_delta", 0.1, 0.05, 0.2, 0.9, 0.1, diff=(-0.8, -0.6)),  # below, soothing
        _row("next_turn", 0.4, 0.3, 0.5, 0.2, 0.3, diff=(-0.5, -0.3)),  # below, not soothing
        # A setting where the coarse bonus itself did not learn:
        _row("sparse", 0.0, 0.0, 0.1, 0.8, 0.02, setting="hard"),
        _row("next_turn", 0.5, 0.3, 0.6, 0.1, 0.3, setting="hard", diff=(0.2, 0.55)),
        _row("multi_turn", 0.05, 0.0, 0.2, 0.2, 0.02, setting="hard", diff=(-0.05, 0.15)),
        _row("emotion_delta", 0.0, 0.0, 0.0, 0.9, 0.0, setting="hard", diff=(-0.1, 0.0)),
        # It learned where the bonus did not, but the difference straddles -δ.
        _row("potential_emotion", 0.23, 0.05, 0.43, 0.3, 0.1, setting="hard", diff=(-0.2, 0.4)),
        # A bonus that learned on some seeds (17% [0, 37]): a reward at 0% [0, 0] is not
        # shown to fall more than δ below it (its difference reaches 0): inconclusive, not a
        # replacement; one at 20% [5, 30] is within δ of it.
        _row("sparse", 0.17, 0.0, 0.37, 0.4, 0.1, setting="wide"),
        _row("final_emotion", 0.0, 0.0, 0.0, 1.0, 0.0, setting="wide", diff=(-0.37, 0.0)),
        _row("next_turn", 0.2, 0.05, 0.3, 0.1, 0.1, setting="wide", diff=(-0.09, 0.2)),
    ]
    verdicts.verdicts(rows)
    assert [(r["verdict"], r["speed"]) for r in rows] == [
        ("reference", ""),
        ("matches", "faster"),
        ("soothes", "slower"),
        ("falls short", "slower"),
        ("reference", ""),
        ("beats", "faster"),
        # Learning areas of 0.02 and 0.00 against 0.02: neither learned, no speed to compare.
        ("both fail", ""),
        ("soothes", ""),
        ("inconclusive", "faster"),
        ("reference", ""),
        ("inconclusive", "slower"),
        ("matches", "as fast"),
    ]
    can, cannot = tables.conditions(rows, "ppo")
    assert can == ["`final_emotion`: default", "`next_turn`: hard, wide"]
    assert cannot == [
        "`final_emotion`: wide (inconclusive)",
        "`emotion_delta`: default (soothes), hard (soothes)",
        "`next_turn`: default (falls short)",
        "`multi_turn`: hard (both fail)",
        "`potential_emotion`: hard (inconclusive)",
    ]
    assert set(verdicts.rules()) >= {
        "beats",
        "matches",
        "soothes",
        "both fail",
        "inconclusive",
        "falls short",
    }


def test_speed_needs_a_floor_and_a_ratio():
    assert verdicts.speed(0.0, 0.0) == verdicts.speed(0.04, 0.0) == ""  # neither learned
    assert verdicts.speed(0.06, 0.0) == "faster"
    assert verdicts.speed(0.30, 0.27) == "as fast"  # +11% but only 0.03
    assert verdicts.speed(0.5, 0.3) == "faster" and verdicts.speed(0.1, 0.3) == "slower"


def test_unsettled_verdicts_are_those_with_a_curve_still_climbing():
    rows = [
        {**_row("sparse", 0.6, 0.4, 0.8, 0.0, 0.3), "flattened": False},
        {**_row("next_turn", 0.9, 0.85, 1.0, 0.0, 0.6, diff=(0.1, 0.5)), "flattened": True},
        {**_row("final_emotion", 0.0, 0.0, 0.0, 1.0, 0.0, diff=(-0.8, -0.4)), "flattened": True},
    ]
    verdicts.verdicts(rows)
    assert [r["settled"] for r in rows[1:]] == [False, False]  # the bonus still climbs
    assert tables.verdict_cell(rows[1]) == "beats, faster (unsettled)"
    assert tables.unsettled(rows, "default") == [
        "- **ppo**: next_turn, final_emotion (still climbing at the last evaluation: sparse)"
    ]
    rows[0]["flattened"] = True
    verdicts.verdicts(rows)
    assert [r["settled"] for r in rows[1:]] == [True, True] and not tables.unsettled(
        rows, "default"
    )
    assert verdicts.flattened([0.0, 0.5, 0.54]) and not verdicts.flattened([0.0, 0.5, 0.55])


def test_the_breakdown_solves_and_soothes_per_need():
    rec = {
        "card_need": ["a", "a", "b", "b"],
        "card_problem": ["p", "q", "p", "q"],
        "card_success": [1.0, 1.0, 0.0, 0.0],
        "card_resolved": [1.0, 1.0, 0.0, 0.0],
        "card_initial_emotion": [40.0, 40.0, 40.0, 40.0],
        "card_final_emotion": [75.0, 70.0, 50.0, 45.0],
    }
    got = aggregate.breakdown([rec])
    assert got["need_success"] == {"a": 1.0, "b": 0.0}
    assert got["need_soothing"] == {"a": 0.0, "b": 1.0}
    assert got["problem_success"] == {"p": 0.5, "q": 0.5}
    row = {"setting": "default", "learner": "ppo", "reward": "final_emotion", **got}
    assert tables.need_table([row], "default").splitlines()[-1] == (
        "| ppo | final_emotion | 100% solves | 0% soothes (1.00) |"
    )
    assert tables.need_summary([row], "default") == [
        "- ppo / `final_emotion`: solves a; only soothes b."
    ]
    # Records of a version without the per-card outcome: success per need only.
    old = {k: v for k, v in rec.items() if k in ("card_need", "card_success")}
    assert aggregate.breakdown([old]) == {"need_success": {"a": 1.0, "b": 0.0}}


def test_quick_keeps_its_name_in_the_settings():
    quick = study.quick_args(study.Args(quick=True))
    assert quick.quick and quick.learners == ("ppo", "hppo") and not quick.sweep
    assert study.quick_args(quick) == quick


def test_the_multi_turn_reward_trains_in_the_advantage_form_and_the_value_form_is_a_variant():
    from dialogue_gym.rewards import MultiTurnValueReward

    def mode(reward):
        spec = study.RunSpec("default", {}, reward, "ppo", 0)
        env = study.train_env(spec, 10)
        while not isinstance(env, MultiTurnValueReward):
            env = env.env
        return env.mode

    assert mode("multi_turn") == "advantage" and mode("multi_turn_value") == "value"
    rewards = study.study_rewards()
    assert rewards[rewards.index("multi_turn") + 1] == "multi_turn_value"
    assert "multi_turn_value" in study.reward_choices()
    with pytest.raises(InvalidArgument, match="register_reward_variant.label = 'sparse'"):
        settings.register_reward_variant("sparse", "next_turn")
    with pytest.raises(InvalidArgument, match="register_reward_variant.reward = 'nope'"):
        settings.register_reward_variant("mine", "nope")


def test_tensorboard_without_the_package_fails_at_once(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.raises(study.MissingExtraError, match="pip install tensorboard"):
        study.check_dependencies(study.Args(tensorboard=True, plots=False))
    assert "tensorboard" in resume.NEUTRAL_FIELDS  # logs change no result


def test_task_scores_stratify_by_need():
    rec = {"card_success": [1.0, 0.0, 1.0, 1.0], "card_need": ["b", "a", "a", "b"]}
    assert intervals.task_scores([rec, rec]).tolist() == [[0.5, 1.0], [0.5, 1.0]]


@pytest.mark.slow
@pytest.mark.parametrize("given", ["name", "path"])
def test_plugins_register_a_reward_and_a_learner(given, tmp_path, monkeypatch, request):
    plugin = tmp_path / "my_study_plugin.py"
    plugin.write_text(
        "from dialogue_gym.rewards import EmotionDeltaReward, register_reward\n"
        "from dialogue_gym.study import LEARNERS, register_learner\n"
        "register_reward('half_delta', lambda env: EmotionDeltaReward(env, scale=0.05))\n"
        "register_learner('my_hppo', LEARNERS['ppo'], hierarchical=True)\n"
    )
    # As docs/study.md shows it: the plugin in the current folder, no PYTHONPATH; or its path.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    plugin_arg = "my_study_plugin" if given == "name" else str(plugin)
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
        "--bootstrap-reps", "50", "--no-plots", "--no-progress", "--plugins", plugin_arg,
        "--out", str(tmp_path), "--name", "plug",
    ]  # fmt: skip
    assert cli(args) == 0
    runs = [json.loads(x) for x in (tmp_path / "plug" / "runs.jsonl").read_text().splitlines()]
    assert [(r["reward"], r["learner"]) for r in runs] == [
        ("sparse", "my_hppo"),
        ("half_delta", "my_hppo"),
    ]
    assert f"--plugins {plugin_arg}" in (tmp_path / "plug" / "report.md").read_text()
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

    assert study.STUDY_REWARDS == study.study_rewards() == study.Args().rewards
    # Every probed reward, each followed by its variants (multi_turn_value after multi_turn).
    assert [r for r in study.STUDY_REWARDS if r not in study.REWARD_VARIANTS] == list(
        reward_probes()
    )
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


@pytest.mark.slow
def test_tensorboard_logs_each_run_and_change_no_number(tiny_run, tmp_path):
    pytest.importorskip("tensorboard")
    folder = tmp_path / "tb"
    code = cli(
        [
            "study", "--rewards", "sparse", "--learners", "ppo", "--seeds", "1", "--steps", "256",
            "--eval-points", "2", "--bootstrap-reps", "50", "--no-plots", "--no-progress",
            "--workers", "1", "--tensorboard", "--out", str(tmp_path), "--name", "tb",
        ]
    )  # fmt: skip
    assert code == 0
    # One log folder per run (each of the curve's learn() calls adds an event file to it).
    logs = list((folder / "tensorboard").iterdir())
    assert [log.name for log in logs] == ["default__sparse__ppo__s0_0"]
    assert list(logs[0].glob("events.out.tfevents.*"))
    logged = json.loads((folder / "runs.jsonl").read_text())
    plain = next(
        json.loads(x)
        for x in (tiny_run / "runs.jsonl").read_text().splitlines()
        if json.loads(x)["run"] == "default__sparse__ppo__s0"
    )
    for record in (logged, plain):
        record.pop("train_seconds")
    assert logged == plain


def test_a_learner_that_never_learns_the_bonus_is_dropped_from_the_verdicts():
    def learner(name, auc, chance=0.06):
        rows = [
            _row("sparse", 0.01, 0.0, 0.08, 0.3, auc),
            _row("multi_turn", 0.15, 0.05, 0.3, 0.5, 0.09, diff=(-0.05, 0.25)),
            _row("next_turn", 0.0, 0.0, 0.02, 0.2, 0.01, diff=(-0.4, -0.2)),
        ]
        for row in rows:
            row |= {"learner": name, "chance_success": chance, "curve_steps": [6000, 12000]}
            row["grounding_vs_heuristic"] = 1.0
            row["flattened"] = True
        return rows

    # A2C and recurrent PPO in the full study: areas 0.03 and 0.07 against chance 0.06.
    rows = learner("a2c", 0.03) + learner("recurrent_ppo", 0.07) + learner("dqn", 0.25)
    rows[6] |= {"success_iqm": 0.28, "success_lo": 0.17, "success_hi": 0.42}  # DQN learned
    verdicts.verdicts(rows, "default")
    assert [r["verdict"] for r in rows[:6]] == ["reference", "dropped", "dropped"] * 2
    assert all(r["dropped"] for r in rows[:6]) and not any(r["dropped"] for r in rows[6:])
    assert [r["verdict"] for r in rows[6:]] == ["reference", "matches", "falls short"]
    assert tables.verdict_cell(rows[1]) == "dropped (bonus unlearned)"
    assert "both fail" not in {r["verdict"] for r in rows}
    lines = tables.answer(rows, "default")
    assert lines[0] == (
        "- **a2c** — the coarse bonus scores 1% [0%, 8%]: dropped from the verdicts, it never "
        "learned the coarse bonus in 12000 decisions (learning area 0.03, below the random "
        "policy's success 0.06 + 0.05). Without verdicts: multi_turn 15%, next_turn 0%."
    )
    assert lines[2].startswith("- **dqn** — the coarse bonus scores 28% [17%, 42%]. **matches**")
    # Nothing dropped stays unsettled; the sweep's cells keep "both fail" (the setting is hard,
    # not the learner), and without a main setting nothing is dropped.
    assert tables.unsettled(rows, "default") == []
    swept = [{**r, "setting": "resolution_uplift=15"} for r in learner("ppo", 0.0)]
    verdicts.verdicts(swept, "default")
    # (multi_turn's difference, [-5, +25] points, lies above -δ: it matches the unlearned bonus)
    assert [r["verdict"] for r in swept] == ["reference", "matches", "both fail"]
    verdicts.verdicts(rows)
    assert not any(r["dropped"] for r in rows)
    assert verdicts.learns_bonus({"curve_auc": 0.11, "chance_success": 0.06})


def test_each_user_is_planned_checked_and_fingerprinted_apart():
    args = study.Args(rewards=("sparse",), learners=("ppo",), seeds=1)
    two = dataclasses.replace(args, envs=("EmpathyDialogue-v0", "EmpathyDialogueHard-v0"))
    specs = study.plan(two)
    # The default user's run ids and fingerprints are those of the versions before --envs.
    assert [s.run_id for s in specs] == [
        "default__sparse__ppo__s0",
        "EmpathyDialogueHard-v0__default__sparse__ppo__s0",
    ]
    assert study.plan(args)[0] == specs[0]
    fingerprints = {study.run_fingerprint(s, two) for s in specs}
    assert len(fingerprints) == 2
    assert study.run_fingerprint(specs[0], two) == study.run_fingerprint(study.plan(args)[0], args)
    # The sweep moves the first user's simulator only.
    swept = study.plan(dataclasses.replace(two, sweep=True))
    assert {s.env for s in swept if s.setting != "default"} == {"EmpathyDialogue-v0"}
    # --resume may add a user (the records' fingerprints keep the users apart) but names one
    # taken away; an args.json without envs counts as the default user.
    saved = dataclasses.asdict(args)
    assert study.settings_differences(saved, two) == []
    assert study.settings_differences(dataclasses.asdict(two), args) == [
        "envs: EmpathyDialogue-v0 EmpathyDialogueHard-v0 in the folder, EmpathyDialogue-v0 now"
    ]
    del saved["envs"]
    assert study.settings_differences(saved, args) == []
    with pytest.raises(InvalidArgument) as err:
        study.check_envs(("EmpathyDialogue-v0", "EmpathyDialogue-v0"))
    assert err.value.field == "envs" and "given twice" in err.value.allowed


@pytest.fixture
def hard_user():
    """A test-only user: the default env registered with a harder simulator (undone after)."""
    from dialogue_gym.registration import register_env, unregister_env

    register_env(
        "StudyTestHard-v0",
        "dialogue_gym.envs.empathy:EmpathyDialogueEnv",
        sim={"resolution_uplift": 15.0},
    )
    try:
        yield "StudyTestHard-v0"
    finally:
        unregister_env("StudyTestHard-v0")


def test_overrides_go_over_the_users_own_simulator(hard_user):
    assert study.sim_kwargs(hard_user, {}) == {}  # its registered settings stay
    assert study.sim_kwargs(hard_user, {"drift": 0.2}) == {
        "sim": {"resolution_uplift": 15.0, "drift": 0.2}
    }
    env = study.eval_env({}, 10, probe_rewards=False, env_id=hard_user)
    assert env.unwrapped.sim_config.resolution_uplift == 15.0
    env = study.eval_env({"premature_penalty": 0.0}, 10, probe_rewards=True, env_id=hard_user)
    config = env.unwrapped.sim_config
    assert (config.resolution_uplift, config.premature_penalty) == (15.0, 0.0)
    assert hard_user in study.strategy_envs()


@pytest.mark.slow
def test_two_users_each_get_a_main_table_and_verdicts(hard_user, tmp_path, capsys):
    argv = [
        "study", "--envs", "EmpathyDialogue-v0", hard_user, "--rewards", "sparse", "next_turn",
        "--learners", "ppo", "--seeds", "1", "--steps", "128", "--eval-points", "1",
        "--bootstrap-reps", "50", "--no-plots", "--no-progress", "--workers", "1",
        "--out", str(tmp_path), "--name", "two",
    ]  # fmt: skip
    assert cli(argv) == 0
    folder = tmp_path / "two"
    printed = capsys.readouterr().out
    assert printed.startswith("study: 4 runs (default setting: 2 envs x 2 rewards x 1 learners")
    assert f"Main setting: default, {hard_user} (test cards)" in printed
    runs = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    assert sorted(r["env"] for r in runs) == ["EmpathyDialogue-v0"] * 2 + [hard_user] * 2
    assert len({r["fingerprint"] for r in runs}) == 4
    baselines = json.loads((folder / "baselines.json").read_text())
    heuristic = {
        b["env"]: b["metrics"]["success_rate"]
        for b in baselines
        if b["policy"] == "stage-heuristic"
    }
    assert heuristic[hard_user] < heuristic["EmpathyDialogue-v0"]  # its own simulator ran
    text = (folder / "report.md").read_text()
    for env in ("EmpathyDialogue-v0", hard_user):
        assert f"## Main setting: `default`, user `{env}`" in text
        assert f"## Per hidden need ({env})" in text and f"**{env}**:" in text
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["envs"] == ["EmpathyDialogue-v0", hard_user] and len(summary["tables"]) == 2
    assert {r["env"] for r in summary["rows"]} == set(summary["envs"])
    # Resuming with the same users trains nothing; with other users it is refused.
    assert cli([*argv, "--resume"]) == 0
    assert "4 already in the folder (--resume), 0 to train" in capsys.readouterr().out
    assert cli([*argv[:3], *argv[4:], "--resume"]) == 2
    assert "envs: EmpathyDialogue-v0 StudyTestHard-v0 in the folder" in capsys.readouterr().err


def test_per_learner_budgets_flow_into_the_plan_and_the_fingerprints():
    args = study.Args(rewards=("sparse",), learners=("ppo", "hppo"), seeds=1, steps=8000)
    uniform = study.plan(args)
    assert [s.steps for s in uniform] == [8000, 8000]
    # A run without a per-learner budget keeps the fingerprint of the versions before them
    # (computed by the previous version of run_fingerprint), so old folders still resume.
    old = study.Args(rewards=("sparse",), learners=("ppo",), seeds=1)
    assert study.run_fingerprint(study.plan(old)[0], old) == "3e1b9835c3c15463"
    mixed = dataclasses.replace(args, learner_steps=("hppo=20000",))
    specs = study.plan(mixed)
    assert [(s.learner, s.steps) for s in specs] == [("ppo", 8000), ("hppo", 20000)]
    assert [s.run_id for s in specs] == [s.run_id for s in uniform]
    fingerprint = {s.learner: study.run_fingerprint(s, mixed) for s in specs}
    assert fingerprint["ppo"] == study.run_fingerprint(uniform[0], args)
    assert fingerprint["hppo"] != study.run_fingerprint(uniform[1], args)
    # The budget is what counts, however it was given.
    same = dataclasses.replace(args, steps=20000, learner_steps=("ppo=8000",))
    assert {s.learner: study.run_fingerprint(s, same) for s in study.plan(same)} == fingerprint
    # The plan line and --resume say which learner trains how long.
    line = study.describe_plan(mixed, specs, 0, study.Path("out"))
    assert "of ppo 8000, hppo 20000 decisions, 2 at a time" in line
    assert "of 8000 decisions each" in study.describe_plan(args, uniform, 0, study.Path("out"))
    saved = dataclasses.asdict(args)
    assert study.settings_differences(saved, mixed) == [
        "steps per learner: ppo=8000 hppo=8000 in the folder, ppo=8000 hppo=20000 now"
    ]
    assert study.settings_differences(dataclasses.asdict(mixed), same) == []
    assert study.settings_differences(saved, dataclasses.replace(args, steps=99)) == [
        "steps: 8000 in the folder, 99 now"
    ]
    # args.json records each learner's budget as trained: --budgets plateau's table may change.
    plateau = dataclasses.replace(args, budgets="plateau")
    recorded = dataclasses.asdict(plateau) | {study.BUDGETS_KEY: {"ppo": 8000, "hppo": 20000}}
    assert study.settings_differences(recorded, mixed) == []
    # The sweep's learner trains its own budget too.
    swept = study.plan(dataclasses.replace(mixed, sweep=True, learners=("hppo",)))
    assert {s.steps for s in swept if s.setting != "default"} == {8000}


def test_the_plateau_budgets_fill_each_learners_steps():
    for table in study.PLATEAU_STEPS.values():
        assert set(table) <= set(study.LEARNERS)
        assert all(isinstance(v, int) and v >= 1 for v in table.values())
    args = study.Args(budgets="plateau", steps=777)
    budgets = study.learner_budgets(args)
    for learner in args.learners:
        assert budgets[learner] == study.PLATEAU_STEPS[study.DEFAULT_ENV].get(learner, 777)
    # Each user trains to its own plateau; a user nobody measured gets the default user's.
    hard = "EmpathyDialogueHard-v0"
    both = dataclasses.replace(args, envs=(study.DEFAULT_ENV, hard))
    assert study.user_budgets(both) == {
        study.DEFAULT_ENV: budgets,
        hard: {k: study.PLATEAU_STEPS[hard].get(k, 777) for k in args.learners},
    }
    assert {(s.env, s.learner, s.steps) for s in study.plan(both)} == {
        (env, learner, steps)
        for env, table in study.user_budgets(both).items()
        for learner, steps in table.items()
    }
    assert settings.plateau_steps("SomeoneElse-v0") == study.PLATEAU_STEPS[study.DEFAULT_ENV]
    line = study.describe_plan(both, study.plan(both), 0, study.Path("out"))
    if study.PLATEAU_STEPS[hard] != study.PLATEAU_STEPS[study.DEFAULT_ENV]:
        assert f"({hard}: " in line
    # The folder records each user's budgets; resuming under another table is refused, per user.
    saved = dataclasses.asdict(both) | {
        study.BUDGETS_KEY: study.learner_budgets(both),
        study.USER_BUDGETS_KEY: {**study.user_budgets(both), hard: {"ppo": 5}},
    }
    assert study.settings_differences(saved, both) == [
        f"steps per learner of {hard}: ppo=5 in the folder, ppo={study.PLATEAU_STEPS[hard]['ppo']} now"
    ]
    # --learner-steps wins over the preset for the learner it names.
    given = dataclasses.replace(args, learner_steps=("ppo=1234",))
    assert study.learner_budgets(given)["ppo"] == 1234
    assert study.command_line(given).endswith("--learner-steps ppo=1234 --budgets plateau")
    with pytest.raises(InvalidArgument, match="must be one of steps, plateau"):
        study.check(dataclasses.replace(args, budgets="long"))
    # The quick study keeps one budget for both its learners (8,000 decisions).
    quick = study.quick_args(study.Args(quick=True))
    assert study.learner_budgets(quick) == {"ppo": 8000, "hppo": 8000}


@pytest.mark.slow
def test_two_learners_train_their_own_budgets(tmp_path, capsys):
    argv = [
        "study", "--rewards", "sparse", "--learners", "ppo", "hppo", "--seeds", "1",
        "--steps", "256", "--learner-steps", "hppo=128", "--eval-points", "2",
        "--bootstrap-reps", "50", "--no-plots", "--no-progress", "--workers", "1",
        "--out", str(tmp_path), "--name", "budgets",
    ]  # fmt: skip
    assert cli(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("study: 2 runs (") and "of ppo 256, hppo 128 decisions" in printed
    folder = tmp_path / "budgets"
    runs = {
        r["learner"]: r for r in map(json.loads, (folder / "runs.jsonl").read_text().splitlines())
    }
    # Each run's budget as asked, and the decisions it trained (whole 512-step rollouts).
    assert (runs["ppo"]["budget"], runs["hppo"]["budget"]) == (256, 128)
    assert (runs["ppo"]["steps"], runs["hppo"]["steps"]) == (1024, 1024)
    assert [p["steps"] for p in runs["ppo"]["curve"]] == [512, 1024]
    summary = json.loads((folder / "summary.json").read_text())
    assert {r["learner"]: r["budget"] for r in summary["rows"]} == {"ppo": 256, "hppo": 128}
    text = (folder / "report.md").read_text()
    assert "2 runs, agent decisions per learner: ppo 256 (1024 trained), hppo 128 (1024 " in text
    assert "--learner-steps hppo=128" in text
    # Resuming with the same budgets trains nothing; with another budget it is refused.
    assert cli([*argv, "--resume"]) == 0
    assert "2 already in the folder (--resume), 0 to train" in capsys.readouterr().out
    assert cli([*argv, "--learner-steps", "hppo=256", "--resume"]) == 2
    assert "steps per learner: ppo=256 hppo=128 in the folder, ppo=256 hppo=256 now" in (
        capsys.readouterr().err
    )
    # Grown by a learner, the resumed study trains that learner's run only and reports all three.
    assert cli([*argv, "--learners", "ppo", "hppo", "a2c", "--resume"]) == 0
    assert "2 already in the folder (--resume), 1 to train" in capsys.readouterr().out
    summary = json.loads((folder / "summary.json").read_text())
    assert {r["learner"] for r in summary["rows"]} == {"ppo", "hppo", "a2c"}


def test_resume_may_grow_the_grid_but_never_shrink_it():
    args = study.Args(rewards=("sparse",), learners=("ppo",), seeds=2, budgets="plateau")
    saved = dataclasses.asdict(args) | {study.BUDGETS_KEY: study.learner_budgets(args)}
    grown = dataclasses.replace(
        args,
        learners=("ppo", "recurrent_ppo"),
        rewards=("next_turn", "sparse"),
        seeds=3,
        sweep=True,
        envs=("EmpathyDialogue-v0", "EmpathyDialogueHard-v0"),
    )
    assert study.settings_differences(saved, grown) == []
    # The new runs are planned; the old ones keep their fingerprints, so they are reused.
    old = {study.run_fingerprint(s, args) for s in study.plan(args)}
    assert old < {study.run_fingerprint(s, grown) for s in study.plan(grown)}
    # Shrinking (the report would hide runs of the folder) and other budgets are differences.
    assert study.settings_differences(dataclasses.asdict(grown), args) == [
        "rewards: next_turn sparse in the folder, sparse now",
        "envs: EmpathyDialogue-v0 EmpathyDialogueHard-v0 in the folder, EmpathyDialogue-v0 now",
        "learners: ppo recurrent_ppo in the folder, ppo now",
        "seeds: 3 in the folder, 2 now",
        "sweep: True in the folder, False now",
    ]
    longer = dataclasses.replace(grown, learner_steps=("ppo=99",))
    assert study.settings_differences(saved, longer) == [
        f"steps per learner: ppo={study.PLATEAU_STEPS[study.DEFAULT_ENV]['ppo']} in the folder, "
        "ppo=99 now"
    ]


@pytest.mark.slow
def test_the_report_is_rebuilt_from_the_records_alone(tiny_run, tmp_path):
    # A folder of committed records (runs.jsonl and args.json) rebuilds the whole report: the
    # reference policies are seeded template episodes, measured again to the same numbers.
    # No setting is given: --report-only reads them from the folder's args.json.
    folder = tmp_path / "tiny"
    folder.mkdir()
    for name in ("runs.jsonl", "args.json"):
        (folder / name).write_bytes((tiny_run / name).read_bytes())
    command = ["study", "--out", str(tmp_path), "--name", "tiny", "--report-only", "--no-plots"]
    assert cli(command) == 0
    assert json.loads((folder / "baselines.json").read_text()) == json.loads(
        (tiny_run / "baselines.json").read_text()
    )
    rebuilt = json.loads((folder / "summary.json").read_text())["rows"]
    original = json.loads((tiny_run / "summary.json").read_text())["rows"]
    drop = ("train_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rebuilt] == [
        {k: v for k, v in r.items() if k not in drop} for r in original
    ]
