"""Where the study's runs execute: worker processes of this machine, or Ray tasks.

The study plans its runs (:func:`~dialogue_gym.study.settings.plan`) and hands them to an executor
with the function that trains one (:func:`~dialogue_gym.study.run.run_one`). The executor calls
``on_done(record)`` in the study's own process as each run finishes, so the study appends
``runs.jsonl`` there and only there (one synced line per run, whatever executes the runs), and
returns the records in the order they finished:

- :func:`run_local` (``--executor local``, the default): ``--workers`` processes of this machine,
  each ending itself soon after the study is gone;
- :func:`run_ray` (``--executor ray``): one Ray task per run, on a Ray instance of its own
  (started with ``ray.init`` on loopback, without the dashboard, with ``--workers`` CPUs) or on
  the cluster at ``--ray-address``. Each task asks for one CPU and has ``max_retries``
  (:data:`RAY_MAX_RETRIES`): when the process running it dies (``kill -9``, the OOM killer, a
  lost node) Ray runs it again from the start. A run is a pure function of its spec and the
  settings, so the retry gives the same record, and the study sees one result per run.

A Ray task writes its transcripts to a folder of its own and returns them with the record; the
study writes them to ``episodes/`` itself, so the nodes of a cluster need no shared file system.
They need ``dialogue_gym`` (and any ``--plugins`` module) importable, the same version as the
study's: installed on every node (the same image), or shipped with the job's runtime
environment (``docs/study.md``, "Running the grid on Ray").

Ray is imported only when the Ray executor is used: it is optional.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for the annotations only: run.py imports this module
    from dialogue_gym.study.settings import Args, RunSpec

#: The executors ``--executor`` chooses from.
EXECUTORS = ("local", "ray")
#: How many times Ray runs a study task again after the process running it died (Ray's
#: ``max_retries``; a run that raises is not retried: the same settings would raise again).
RAY_MAX_RETRIES = 3
#: A Ray task's name (what ``ray::`` shows in the process list) is this plus the run id.
RAY_TASK_PREFIX = "study:"
#: Ray's switch (read when Ray is imported) that keeps a node of this machine on 127.0.0.1.
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

#: ``task(spec, args, episodes_dir) -> record``: :func:`~dialogue_gym.study.run.run_one`.
Task = Callable[["RunSpec", "Args", str], dict[str, Any]]
#: Called in the study's process with each finished run's record.
OnDone = Callable[[dict[str, Any]], None]


# --- local worker processes -------------------------------------------------------------------


def run_local(
    task: Task, specs: Sequence[RunSpec], args: Args, episodes: Path, on_done: OnDone
) -> list[dict[str, Any]]:
    """Run the specs in ``args.workers`` processes of this machine (in this one for 1).

    Args:
        task: Trains one run and writes its transcripts under the folder it is given.
        specs: The runs to train.
        args: The study's settings (``workers``; the whole of it goes to ``task``).
        episodes: The study's ``episodes/`` folder (it exists).
        on_done: Called here with each record as its run finishes.

    Returns:
        The records, in the order the runs finished.

    Example:
        >>> from types import SimpleNamespace
        >>> specs = [SimpleNamespace(run_id="a"), SimpleNamespace(run_id="b")]
        >>> task = lambda spec, args, folder: {"run": spec.run_id}
        >>> [r["run"] for r in run_local(task, specs, SimpleNamespace(workers=1), Path("."), print)]
        {'run': 'a'}
        {'run': 'b'}
        ['a', 'b']
    """
    done: list[dict[str, Any]] = []
    if args.workers == 1:
        for spec in specs:
            record = task(spec, args, str(episodes))
            done.append(record)
            on_done(record)
        return done
    # spawn, not fork: forking a process that has started torch's threads can deadlock.
    context = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(
        args.workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
    )
    with pool:
        futures = [pool.submit(task, spec, args, str(episodes)) for spec in specs]
        try:
            for future in cf.as_completed(futures):
                record = future.result()
                done.append(record)
                on_done(record)
        except BaseException:
            # Leaving the block waits for the pool: without this it would first train every
            # run still queued, not just those in flight.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return done


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """A worker's initializer: end the worker soon after the study process is gone.

    A worker waits for its next run on the pool's pipe, whose writing end it holds itself, so
    it never reads the end of it: after ``kill -9`` of the study its workers would live on, and
    multiprocessing's resource tracker, which waits for them, too. An orphan is adopted by
    another process (init, or a subreaper), so its parent's pid changes (POSIX): a daemon
    thread looks every ``every`` seconds.

    Args:
        parent: The pid of the study process, which spawned the worker.
        every: Seconds between looks.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        # At once, without clean-up: the run in flight is lost with the parent anyway.
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


# --- Ray tasks --------------------------------------------------------------------------------


def import_ray(local: bool) -> Any:
    """Import Ray; for a Ray instance of the study's own, one that listens on loopback only.

    Ray takes the address its processes listen on from the machine's outward interface unless
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (read once, when Ray is imported): then a node is
    on ``127.0.0.1``, which nothing outside this machine can reach. It is set (unless the
    environment already says otherwise) only for a local instance and only before Ray's first
    import (``dialogue-gym study`` imports Ray nowhere else); in a process that imported Ray
    before, Ray's default stays, and a note says so.

    Args:
        local: Whether the study starts its own instance (no ``--ray-address``).

    Returns:
        The ``ray`` module.

    Raises:
        ModuleNotFoundError: Ray is not installed.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ONLY, "0")
    elif local and os.environ.get(_LOOPBACK_ONLY) != "0":
        print(
            "note: Ray was imported before the study started its Ray instance, which listens "
            "on this machine's network address (guarded by Ray's token), not on loopback only",
            file=sys.stderr,
        )
    import ray

    return ray


def connect_ray(ray: Any, address: str, workers: int) -> bool:
    """Connect to the cluster at ``address``, or start a local instance with ``workers`` CPUs.

    A local instance (``address="local"`` to Ray: a new one, never another program's that
    happens to run here) has no dashboard and lives as long as the study's process. An
    address is anything ``ray.init`` takes: ``HOST:PORT`` of a head's GCS (``ray start
    --head --port=PORT``), ``auto`` (the cluster named by ``RAY_ADDRESS``, or the latest one
    ``ray start`` started on this machine) or ``ray://HOST:10001`` (Ray Client).

    Args:
        ray: The ``ray`` module (:func:`import_ray`).
        address: The cluster's address; ``""`` for a local instance.
        workers: The local instance's CPUs: the runs trained at once.

    Returns:
        Whether this call connected (so the caller disconnects at the end); False when the
        process was connected already (a plugin, a notebook), whose connection is used as is.
    """
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(
            address="local",
            num_cpus=workers,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    return True


def _ray_task(task: Task, spec: RunSpec, args: Args) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One run, as a Ray task: its record and the transcripts it wrote, by file name.

    The transcripts go to a folder of the task's own, on whichever node it runs, and travel
    back with the record; a retried task starts from an empty folder.
    """
    with tempfile.TemporaryDirectory(prefix="dialogue-gym-run-") as folder:
        record = task(spec, args, folder)
        files = {path.name: path.read_bytes() for path in Path(folder).iterdir()}
    return record, files


def _write_file(path: Path, data: bytes) -> None:
    """Write a file whole or not at all (a study killed mid-write leaves no half file)."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def _result(ray: Any, ref: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A finished task's result; a run that raised raises its own exception here.

    Ray wraps it in a ``RayTaskError`` whose message is the remote traceback; the study raises
    the run's exception as the local executor does (the CLI prints a ``ValueError`` on one
    line), with Ray's error, traceback and all, as its cause.
    """
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, Exception):
            raise cause from err
        raise


def run_ray(
    task: Task,
    specs: Sequence[RunSpec],
    args: Args,
    episodes: Path,
    on_done: OnDone,
    address: str = "",
) -> list[dict[str, Any]]:
    """Run each spec as a Ray task, on a local Ray instance or the cluster at ``address``.

    Every run is submitted at once; Ray schedules them on the free CPUs (one each) of every
    node. As each finishes, its transcripts are written to ``episodes/`` and then ``on_done``
    gets its record, so a record in ``runs.jsonl`` always has its transcripts. A task whose
    process dies is run again by Ray (:data:`RAY_MAX_RETRIES`). When the study stops early
    (an error, Ctrl-C) the runs not yet finished are cancelled, so a cluster does not go on
    training for nobody.

    Args:
        task: Trains one run and writes its transcripts under the folder it is given (a
            module-level function: Ray's workers import it by name).
        specs: The runs to train.
        args: The study's settings (``workers``: the CPUs of a local instance; the whole of it
            goes to ``task``).
        episodes: The study's ``episodes/`` folder (it exists).
        on_done: Called here with each record as its run finishes.
        address: The cluster (:func:`connect_ray`); ``""`` for a local instance.

    Returns:
        The records, in the order the runs finished.

    Raises:
        Exception: A run raised: its own exception (Ray's ``RayTaskError`` is its cause).
        ray.exceptions.WorkerCrashedError: A run's process died more than ``max_retries``
            times.
    """
    ray = import_ray(local=not address)
    connected = connect_ray(ray, address, args.workers)
    remote = ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES)(_ray_task)
    pending = {
        remote.options(name=RAY_TASK_PREFIX + spec.run_id).remote(task, spec, args): spec
        for spec in specs
    }
    done: list[dict[str, Any]] = []
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(ready[0])
            record, files = _result(ray, ready[0])
            for name, data in files.items():
                _write_file(episodes / name, data)
            done.append(record)
            on_done(record)
    except BaseException:
        for ref in pending:
            # Best effort: the error that stopped the study is the one to report.
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if connected:
            ray.shutdown()  # a local instance stops; a cluster only loses this driver
    return done
