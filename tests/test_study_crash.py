"""The reward study's crash safety (issue 12, defects 1 and 5), on the real command line.

- ``--resume`` refuses a folder whose arguments differ in anything that changes a result, naming
  each difference, and a run's record carries a fingerprint of its settings, so a record trained
  under other settings is never reused, even when ``args.json`` is lost;
- the worker processes die with the study (``kill -9`` of the parent leaves nothing behind);
- ``kill -9`` at seeded random points, one of them in the middle of writing a record, then
  ``--resume``, gives exactly the tables of an uninterrupted study.

Every study here is a ``python -m dialogue_gym.cli study`` subprocess, killed as a user would.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import procs
import pytest
from study_files import records, table

from dialogue_gym.study import run as study

#: The smallest study that still trains: one reward, one learner, one seed.
ONE_RUN = [
    "--rewards", "sparse",
    "--learners", "ppo",
    "--seeds", "1",
    "--eval-points", "1",
    "--no-sweep",
    "--bootstrap-reps", "50",
    "--no-plots",
    "--no-progress",
]  # fmt: skip
#: The crash test's grid: six runs, long enough to be killed in several places.
SIX_RUNS = [
    "--rewards", "sparse", "emotion_delta",
    "--learners", "ppo",
    "--seeds", "3",
    "--steps", "128",
    "--eval-points", "1",
    "--no-sweep",
    "--bootstrap-reps", "100",
    "--no-plots",
    "--no-progress",
    "--plugins", "tear_plugin",
]  # fmt: skip

# Loaded with --plugins in the crash test. With STUDY_TEAR_MARKER set it replaces the study's
# record writer in that process: the first record is written half, the marker file is created,
# and the process waits to be killed, so runs.jsonl really ends in a cut-off line.
TEAR_PLUGIN = """
import json
import os
import time
from pathlib import Path

import dialogue_gym.study.run as run

MARKER = os.environ.get("STUDY_TEAR_MARKER")
if MARKER:
    def append_record(file, record):
        data = (json.dumps(record) + "\\n").encode()
        file.write(data[: len(data) // 2])
        file.flush()
        Path(MARKER).touch()
        time.sleep(600)

    run.append_record = append_record
"""


def _study(out: Path, name: str, *flags: str, env: dict[str, str] | None = None):
    """Start ``dialogue-gym study`` as a subprocess; its output goes to files beside ``out``."""
    log = out / f"{name}.log"
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "dialogue_gym.cli", "study", *flags]
            + ["--out", str(out), "--name", name],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def _finish(proc: subprocess.Popen, limit: float = 240.0) -> int:
    try:
        return proc.wait(limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


# --- processes, read from /proc ------------------------------------------------------------


def _kill_and_expect_no_orphans(
    proc: subprocess.Popen, seen: dict[int, str], within: float = 15.0
) -> None:
    """``kill -9`` the study, then check that each process it started is gone in ``within`` s."""
    seen.update(procs.descendants(proc.pid))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + within
    while (
        left := [p for p, s in seen.items() if procs.alive(p, s)]
    ) and time.monotonic() < deadline:
        time.sleep(0.2)
    described = [f"{p}: {procs.command_line(p)[:120]}" for p in left]
    for pid in left:  # leave no process of this test behind, whatever the verdict
        if procs.alive(pid, seen[pid]):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"still alive {within:.0f} s after kill -9 of the study: {described}"


def _watch(
    proc: subprocess.Popen, until: Callable[[], bool], seen: dict[int, str], limit: float = 120.0
) -> None:
    """Poll until ``until()`` holds, recording the study's descendants as they come and go."""
    deadline = time.monotonic() + limit
    while not until():
        seen.update(procs.descendants(proc.pid))
        assert proc.poll() is None, f"the study ended (exit {proc.returncode}) too early"
        assert time.monotonic() < deadline, "the study never got there"
        time.sleep(0.1)


needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="reads processes from Linux's /proc"
)


# --- defect 1: a resumed study reuses only runs trained under its own settings -------------


@pytest.fixture(scope="module")
def one_run(tmp_path_factory) -> Path:
    """A finished one-run study: 128 decisions, soothing ceiling 40."""
    out = tmp_path_factory.mktemp("study_first")
    flags = [*ONE_RUN, "--steps", "128", "--sim", "soothing_ceiling=40", "--workers", "1"]
    assert _finish(_study(out, "x", *flags)) == 0, (out / "x.log").read_text()
    return out / "x"


def _copy(folder: Path, tmp_path: Path) -> Path:
    shutil.copytree(folder, tmp_path / "x")
    return tmp_path / "x"


@pytest.mark.slow
def test_resume_refuses_other_steps_and_sim_naming_each_difference(one_run, tmp_path):
    folder = _copy(one_run, tmp_path)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    flags = [*ONE_RUN, "--steps", "4096", "--sim", "soothing_ceiling=85", "--resume"]
    proc = _study(tmp_path, "x", *flags)
    assert _finish(proc) == 2
    err = (tmp_path / "x.log").read_text().strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("dialogue-gym study: error:")
    assert "steps: 128 in the folder, 4096 now" in err
    assert "sim: soothing_ceiling=40 in the folder, soothing_ceiling=85 now" in err
    # Nothing was trained, and nothing of the folder was touched.
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before

    # Fields that change no result may differ: other workers, progress bar and plots.
    same = [*ONE_RUN, "--steps", "128", "--sim", "soothing_ceiling=40.0", "--resume"]
    proc = _study(tmp_path, "x", *same, "--workers", "2", "--progress", "--plots")
    assert _finish(proc) == 0, (tmp_path / "x.log").read_text()
    assert (folder / "runs.jsonl").read_bytes() == before["runs.jsonl"]  # nothing retrained


@pytest.mark.slow
def test_records_of_other_settings_are_not_reused_when_args_json_is_lost(one_run, tmp_path):
    folder = _copy(one_run, tmp_path)
    (folder / "args.json").unlink()
    flags = [*ONE_RUN, "--steps", "256", "--sim", "soothing_ceiling=40", "--resume"]
    assert _finish(_study(tmp_path, "x", *flags, "--workers", "1")) == 0
    with (folder / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    # Retrained, not the 128-decision run (both train one whole 512-step rollout of PPO: the
    # budget asked is what tells them apart).
    assert [(row["budget"], row["steps"]) for row in rows] == [("256", "512")]
    with (folder / "curves.csv").open() as f:
        assert [row["steps"] for row in csv.DictReader(f)] == ["512"]


def test_the_fingerprint_covers_every_setting_that_changes_a_run():
    args = study.Args(rewards=("sparse",), learners=("ppo",), sweep=False)
    spec = study.plan(args)[0]
    base = study.run_fingerprint(spec, args)
    assert base == study.run_fingerprint(spec, dataclasses.replace(args, workers=7, plots=False))
    for change in (
        {"steps": 99},
        {"learner_steps": ("ppo=99",)},
        {"eval_points": 2},
        {"max_turns": 8},
        {"plugins": ("m",)},
    ):
        changed = dataclasses.replace(args, **change)
        assert study.run_fingerprint(study.plan(changed)[0], changed) != base, change
    for change in ({"sim": {"drift": 0.2}}, {"reward": "next_turn"}, {"seed": 1}, {"steps": 99}):
        assert study.run_fingerprint(dataclasses.replace(spec, **change), args) != base, change
    # The same overrides written differently are the same run.
    a = dataclasses.replace(spec, sim={"drift": 0.2, "noise": 1})
    b = dataclasses.replace(spec, sim={"noise": 1.0, "drift": 0.2})
    assert study.run_fingerprint(a, args) == study.run_fingerprint(b, args)


def test_settings_differences_compare_results_not_housekeeping():
    saved = dataclasses.asdict(study.Args(steps=256, sim=("soothing_ceiling=40",), workers=1))
    now = study.Args(steps=256, sim=("soothing_ceiling=40.0",), workers=4, progress=False)
    assert study.settings_differences(json.loads(json.dumps(saved)), now) == []
    now = dataclasses.replace(now, steps=4096, seeds=2, rewards=("sparse",))
    assert study.settings_differences(saved, now) == [
        f"rewards: {' '.join(study.Args().rewards)} in the folder, sparse now",
        "seeds: 5 in the folder, 2 now",
        "steps: 256 in the folder, 4096 now",
    ]


def test_a_record_cut_off_mid_line_is_dropped_and_a_whole_one_is_kept(tmp_path):
    path = tmp_path / "runs.jsonl"
    whole = json.dumps({"run": "a", "fingerprint": "f"})
    path.write_text(whole + "\n" + whole[:10])
    study.repair_runs_file(path)
    assert path.read_text() == whole + "\n"
    path.write_text(whole + "\n" + whole)  # killed between the record and its newline
    study.repair_runs_file(path)
    assert path.read_text() == whole + "\n" + whole + "\n"


# --- defect 5: the workers die with the study ------------------------------------------------


@needs_proc
@pytest.mark.slow
def test_workers_exit_when_the_study_is_killed(tmp_path):
    # Runs of 4,096 decisions: the workers are busy training when the parent dies.
    flags = [*ONE_RUN, "--rewards", "sparse", "emotion_delta", "--steps", "4096"]
    proc = _study(tmp_path, "orphans", *flags, "--workers", "2")
    seen: dict[int, str] = {}
    try:

        def two_workers() -> bool:
            workers = [
                p for p in procs.descendants(proc.pid) if "spawn_main" in procs.command_line(p)
            ]
            return len(workers) >= 2

        _watch(proc, two_workers, seen)
        time.sleep(1.0)  # into the runs, past the workers' start-up
    finally:
        _kill_and_expect_no_orphans(proc, seen)


# --- kill -9 at random points, then --resume --------------------------------------------------


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except OSError:
        return 0


@needs_proc
@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_uninterrupted_tables(tmp_path):
    (tmp_path / "tear_plugin.py").write_text(TEAR_PLUGIN)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    rng = random.Random(12)  # the kill points: seeded, so a failure replays
    whole = _study(tmp_path, "whole", *SIX_RUNS, "--workers", "2", env=env)
    assert _finish(whole) == 0, (tmp_path / "whole.log").read_text()

    folder = tmp_path / "crashed"
    runs = folder / "runs.jsonl"
    seen: dict[int, str] = {}

    def kill_after(
        until: Callable[[], bool], delay: float, *extra: str, marker: Path | None = None
    ) -> None:
        flags = [*SIX_RUNS, "--workers", "2", *extra]
        tear = {"STUDY_TEAR_MARKER": str(marker)} if marker else {}
        proc = _study(tmp_path, "crashed", *flags, env={**env, **tear})
        try:
            _watch(proc, until, seen)
            time.sleep(delay)
        finally:
            _kill_and_expect_no_orphans(proc, seen)

    # 1. In the start-up or the baselines, before any run has finished.
    kill_after(lambda: True, rng.uniform(0.5, 3.0))
    # 2. Part-way through the training, a random moment after the first record.
    kill_after(lambda: _lines(runs) >= 1, rng.uniform(0.0, 1.5), "--resume")
    # 3. In the middle of writing a record: runs.jsonl ends in a cut-off line.
    marker = tmp_path / "torn"
    kill_after(marker.exists, 0.0, "--resume", marker=marker)
    assert not runs.read_bytes().endswith(b"\n")
    # 4. A random moment once every run is written: the report being written, or done.
    kill_after(lambda: _lines(runs) >= 6, rng.uniform(0.0, 0.5), "--resume")

    resumed = _study(tmp_path, "crashed", *SIX_RUNS, "--workers", "2", "--resume", env=env)
    assert _finish(resumed) == 0, (tmp_path / "crashed.log").read_text()[-2000:]

    assert records(runs) == records(tmp_path / "whole" / "runs.jsonl")
    for name in ("runs.csv", "curves.csv", "aggregate.csv", "baselines.csv"):
        assert table(folder / name) == table(tmp_path / "whole" / name), name
    assert len(list((folder / "episodes").glob("*.jsonl"))) == 6
