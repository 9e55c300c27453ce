"""Processes read from ``/proc`` (Linux): the crash tests' view of who is still alive.

Shared by ``tests/test_study_crash.py`` and ``tests/test_study_ray.py``; imported as
``procs`` (the tests folder is on ``sys.path``, as for ``fake_backends``).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def stat(pid: int) -> tuple[str, int, str] | None:
    """``(state, parent pid, start time)`` of a process, or None when there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return fields[0], int(fields[1]), fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root``: pid -> start time (which tells a reused pid apart)."""
    children: dict[int, list[int]] = defaultdict(list)
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := stat(int(entry.name))) is not None:
            children[found[1]].append(int(entry.name))
            starts[int(entry.name)] = found[2]
    found_: dict[int, str] = {}
    todo = list(children[root])
    while todo:
        pid = todo.pop()
        if pid in starts and pid not in found_:
            found_[pid] = starts[pid]
            todo.extend(children[pid])
    return found_


def alive(pid: int, start: str) -> bool:
    """Whether ``pid`` is still the process that started at ``start``, and not a zombie."""
    state = stat(pid)
    # A zombie has freed its memory and waits only to be reaped by whoever adopted it.
    return state is not None and state[2] == start and state[0] not in "ZX"


def command_line(pid: int) -> str:
    """A process's command line ("" once it is gone); a Ray worker's is ``ray::<task name>``."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""
