"""The study on Ray (issue 14, part 3): a Ray head and a worker node on this machine, on loopback.

Both nodes are Ray's own processes, started as its users start them (``ray start --head`` and
``ray start --address=...``, one CPU each), and the study is the real command line
(``dialogue-gym study --executor ray --ray-address 127.0.0.2:PORT``; why not 127.0.0.1: see
``LOOPBACK``) in a subprocess:

- the tiny grid on the cluster gives exactly the local executor's numbers (every table but the
  timing columns, every record, every transcript), and the worker node trains part of it;
- ``kill -9`` of the process running a run on the worker node, mid-run: Ray runs the task again
  (another process runs the same run), the study ends well, ``runs.jsonl`` holds every run once
  and the tables are the uninterrupted ones;
- without ``--ray-address`` the executor starts a Ray instance of its own, on loopback, and
  stops it at the end, and a run that raises raises its own error (stand-in tasks here: the
  grid is the tests above).

The nodes live in a temporary folder of their own (``--temp-dir``: their sockets, logs and the
address file ``ray.init("auto")`` reads), so nothing here sees or touches another Ray on the
machine. For the same reason the teardown does not call ``ray stop``: it cannot name a cluster
and stops every Ray process of the machine. Each ``ray start --block`` runs in a session of its
own, is stopped with SIGTERM (which stops the processes it started) and then its process group
and every process seen under it are killed, by pid.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import procs
import pytest
from study_files import records, table

pytest.importorskip("ray")

from dialogue_gym.ports import free_port  # noqa: E402 (after the skip)
from dialogue_gym.study import run as study  # noqa: E402
from dialogue_gym.study.executors import RAY_TASK_PREFIX  # noqa: E402

pytestmark = [
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/self/stat").is_file(), reason="reads processes from Linux's /proc"
    ),
]

#: The tiny grid: two runs (two rewards, one seed, PPO), 128 decisions, one evaluation point.
GRID = [
    "--rewards", "sparse", "emotion_delta",
    "--learners", "ppo",
    "--seeds", "1",
    "--steps", "128",
    "--eval-points", "1",
    "--no-sweep",
    "--bootstrap-reps", "50",
    "--no-plots",
    "--no-progress",
]  # fmt: skip
RUNS = {"default__sparse__ppo__s0", "default__emotion_delta__ppo__s0"}
#: Ray's processes: no usage report, a SIGTERM that stops a node at once instead of draining it
#: for 30 s, and token authentication (Ray's default for a cluster) with a token of the test's
#: own, which the study's process needs as well, as a cluster's users do.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(32),
}
#: Every node's address: on loopback (all of 127.0.0.0/8 is), but not the spelling Ray rewrites.
#: Ray turns "127.0.0.1" (and "localhost") into the machine's outward address, unless
#: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, and with that ``ray start`` refuses to start a
#: worker node: 127.0.0.1 cannot hold a cluster of two nodes; 127.0.0.2 can.
LOOPBACK = "127.0.0.2"


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # never someone's cluster
    return {**env, **extra}


# --- the cluster ------------------------------------------------------------------------------


@dataclass
class Cluster:
    """A Ray head and one worker node, each a ``ray start --block`` process."""

    address: str
    folder: Path
    nodes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def processes(self) -> dict[int, tuple[str, str]]:
        """pid -> (node, start time) of every process under the nodes' ``ray start``."""
        return {
            pid: (node, start)
            for node, proc in self.nodes.items()
            for pid, start in procs.descendants(proc.pid).items()
        }


def _ray_start(cluster: Cluster, node: str, *flags: str) -> None:
    """Start one node (``ray start ... --block``) and wait until it says it runs."""
    log = cluster.folder / f"{node}.log"
    ray = Path(sys.executable).with_name("ray")
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [str(ray), "start", *flags, "--block", f"--node-ip-address={LOOPBACK}"]
            + ["--num-cpus=1", f"--temp-dir={cluster.folder}", "--object-store-memory=100000000"]
            + ["--disable-usage-stats"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=_environment(**RAY_ENV),
            start_new_session=True,  # its own process group: the teardown's handle on it
        )
    cluster.nodes[node] = proc
    deadline = time.monotonic() + 120
    while b"Ray runtime started" not in log.read_bytes():
        assert proc.poll() is None, f"ray start ({node}) failed: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"ray start ({node}) hangs: {log.read_text()[-3000:]}"
        time.sleep(0.2)


def _stop(cluster: Cluster) -> None:
    """Stop both nodes (SIGTERM to ``ray start``), then kill by pid whatever is left of them."""
    seen = {pid: start for pid, (_, start) in cluster.processes().items()}
    for proc in reversed(cluster.nodes.values()):  # the worker node first, then the head
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in cluster.nodes.values():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this fixture created
            proc.wait()
    deadline = time.monotonic() + 10
    while any(procs.alive(p, s) for p, s in seen.items()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, start in seen.items():
        if procs.alive(pid, start):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # A short folder of its own: Ray's Unix sockets live in it, and their paths have a limit.
    folder = Path(tempfile.mkdtemp(prefix="dg-ray-", dir="/tmp"))
    port = free_port()
    made = Cluster(address=f"{LOOPBACK}:{port}", folder=folder)
    try:
        _ray_start(made, "head", "--head", f"--port={port}", "--include-dashboard=false")
        _ray_start(made, "worker", f"--address={made.address}")
        yield made
    finally:
        _stop(made)
        shutil.rmtree(folder, ignore_errors=True)


# --- the study ----------------------------------------------------------------------------------


def _study(out: Path, name: str, *flags: str, env: dict[str, str]) -> subprocess.Popen:
    log = out / f"{name}.log"
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "dialogue_gym.cli", "study", *GRID, *flags]
            + ["--out", str(out), "--name", name],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _finish(proc: subprocess.Popen, log: Path, limit: float = 300.0) -> None:
    try:
        code = proc.wait(limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    assert code == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def local_study(tmp_path_factory) -> Iterator[Callable[[], Path]]:
    """The tiny grid with the local executor (two worker processes): the reference.

    It starts at once and is waited for when first needed (``local_study()``), so it trains
    while the cluster starts.
    """
    out = tmp_path_factory.mktemp("study_local")
    proc = _study(out, "local", "--workers", "2", env=_environment())

    def folder() -> Path:
        _finish(proc, out / "local.log")
        return out / "local"

    try:
        yield folder
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class TaskWatcher:
    """Records, every 50 ms, which process of which node runs which study run (by its title)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.seen: dict[tuple[int, str], tuple[str, str]] = {}  # (pid, start) -> (node, run)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> TaskWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for pid, (node, start) in self.cluster.processes().items():
                title = procs.command_line(pid)
                if title.startswith("ray::" + RAY_TASK_PREFIX):
                    self.seen[(pid, start)] = (node, title.removeprefix("ray::" + RAY_TASK_PREFIX))
            time.sleep(0.05)

    def wait_for(self, found: Callable[[], bool], proc: subprocess.Popen, limit: float) -> None:
        deadline = time.monotonic() + limit
        while not found():
            assert proc.poll() is None, f"the study ended (exit {proc.returncode}) too early"
            assert time.monotonic() < deadline, "no study run started on the worker node"
            time.sleep(0.05)


def assert_same_results(folder: Path, reference: Path) -> None:
    assert {r["run"] for r in records(folder / "runs.jsonl")} == RUNS
    assert records(folder / "runs.jsonl") == records(reference / "runs.jsonl")
    for name in ("runs.csv", "curves.csv", "aggregate.csv", "baselines.csv"):
        assert table(folder / name) == table(reference / name), name
    # The transcripts travelled back from the nodes' own folders, byte for byte.
    for run in RUNS:
        episodes = f"episodes/{run}.jsonl"
        assert (folder / episodes).read_bytes() == (reference / episodes).read_bytes(), run


def test_the_executor_is_not_part_of_a_runs_identity():
    local = study.Args(rewards=("sparse",), learners=("ppo",), sweep=False)
    on_ray = dataclasses.replace(local, executor="ray", ray_address="10.0.0.5:6379")
    spec = study.plan(local)[0]
    assert study.run_fingerprint(spec, on_ray) == study.run_fingerprint(spec, local)
    # --resume takes a folder started with the other executor.
    assert (
        study.settings_differences(json.loads(json.dumps(dataclasses.asdict(local))), on_ray) == []
    )


def test_an_address_without_the_ray_executor_is_refused():
    args = study.Args(rewards=("sparse",), learners=("ppo",), sweep=False, ray_address="h:1")
    with pytest.raises(ValueError, match="give --executor ray"):
        study.check(args)


def test_the_grid_on_a_ray_cluster_gives_the_local_numbers(local_study, cluster, tmp_path):
    flags = ["--executor", "ray", "--ray-address", cluster.address]
    with TaskWatcher(cluster) as watcher:
        proc = _study(tmp_path, "ray", *flags, env=_environment(**RAY_ENV))
        _finish(proc, tmp_path / "ray.log")

    assert_same_results(tmp_path / "ray", local_study())
    ran = set(watcher.seen.values())
    assert {run for _, run in ran} == RUNS, ran  # every run was a task of the cluster
    assert "worker" in {node for node, _ in ran}, ran  # and the worker node trained one


def test_a_run_whose_worker_is_killed_is_retried_and_nothing_is_lost(
    local_study, cluster, tmp_path
):
    flags = ["--executor", "ray", "--ray-address", cluster.address]
    with TaskWatcher(cluster) as watcher:
        proc = _study(tmp_path, "killed", *flags, env=_environment(**RAY_ENV))
        try:

            def on_the_worker_node() -> list[tuple[int, str, str]]:
                return [
                    (pid, start, run)
                    for (pid, start), (node, run) in list(watcher.seen.items())
                    if node == "worker" and procs.alive(pid, start)
                ]

            watcher.wait_for(lambda: bool(on_the_worker_node()), proc, limit=180)
            pid, start, run = on_the_worker_node()[0]
            time.sleep(1.0)  # into the run: past the imports, training
            assert procs.command_line(pid) == f"ray::{RAY_TASK_PREFIX}{run}", (
                "the run ended before the kill"
            )
            os.kill(pid, signal.SIGKILL)
            _finish(proc, tmp_path / "killed.log")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # Ray ran the killed run again, in another process.
    again = [key for key, (_, other) in watcher.seen.items() if other == run and key[0] != pid]
    assert again, f"{run} was not run again after its process was killed: {watcher.seen}"
    # One record per run, none lost or doubled, and the numbers of the uninterrupted grid.
    runs = [json.loads(line)["run"] for line in (tmp_path / "killed/runs.jsonl").open()]
    assert sorted(runs) == sorted(RUNS)
    assert_same_results(tmp_path / "killed", local_study())


# Without --ray-address: a Ray instance of the executor's own. The task is a stand-in (the
# tests above train the grid): it reports the address of the node it ran on.
LOCAL_INSTANCE = """
import json, sys
from pathlib import Path
from types import SimpleNamespace

from dialogue_gym.study.executors import run_ray


def task(spec, args, folder):
    import ray

    (Path(folder) / f"{spec.run_id}.jsonl").write_text(f"episodes of {spec.run_id}")
    return {"run": spec.run_id, "node": ray.util.get_node_ip_address()}


def fails(spec, args, folder):
    raise ValueError(f"no such reward in {spec.run_id}")


assert "ray" not in sys.modules  # as in dialogue-gym study: the executor imports Ray first
specs = [SimpleNamespace(run_id=f"r{k}") for k in range(3)]
seen = []
done = run_ray(task, specs, SimpleNamespace(workers=2), Path(sys.argv[1]), seen.append)
import ray

connected = ray.is_initialized()
try:  # a run that raises: its own error, as the local executor raises it
    run_ray(fails, specs[:1], SimpleNamespace(workers=1), Path(sys.argv[1]), seen.append)
except ValueError as err:
    error = [type(err).__name__, str(err)]
print(json.dumps({"done": done, "seen": seen, "still_connected": connected, "error": error}))
"""


def test_without_an_address_the_executor_starts_its_own_instance_on_loopback(tmp_path):
    folder = Path(tempfile.mkdtemp(prefix="dg-ray-", dir="/tmp"))  # short: Ray's sockets
    try:
        out = subprocess.run(
            [sys.executable, "-c", LOCAL_INSTANCE, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=180,
            env=_environment(**RAY_ENV, RAY_TMPDIR=str(folder)),  # its session: in our folder
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert sorted(r["run"] for r in result["done"]) == ["r0", "r1", "r2"]
    assert result["seen"] == result["done"]  # on_done got each record, in finishing order
    assert {r["node"] for r in result["done"]} == {"127.0.0.1"}
    assert not result["still_connected"]  # the instance was stopped
    assert result["error"] == ["ValueError", "no such reward in r0"]
    for k in range(3):  # the transcripts came back from the task's own folder
        assert (tmp_path / f"r{k}.jsonl").read_text() == f"episodes of r{k}"
