"""A run's identity and a study folder's safety: fingerprints, ``--resume``, crash-safe records.

Each record carries :func:`run_fingerprint` (a hash of everything that changes its numbers), so
a resumed study reuses only its own runs; ``--resume`` refuses a folder whose settings differ in
anything that changes a result (:func:`settings_differences`), lets the grid grow, and repairs a
``runs.jsonl`` cut off mid-line (:func:`repair_runs_file`). Records are written whole and synced
(:func:`append_record`), files atomically (:func:`write_atomic`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

from dialogue_gym.study.settings import DEFAULT_ENV, Args, RunSpec, learner_budgets, parse_overrides

#: The ``Args`` fields that change a run's numbers, besides its ``RunSpec``: with the spec, what
#: :func:`run_fingerprint` hashes. (``plugins`` because a plugin may define what a name means.)
RUN_FIELDS = ("steps", "eval_points", "max_turns", "plugins")
#: The ``Args`` fields that change no result (where and how the study runs, what it shows):
#: ``--resume`` lets them differ from the folder's ``args.json``. Every other field, one added
#: later included, must match: new fields are compared unless listed here.
NEUTRAL_FIELDS = (
    "workers",
    "executor",
    "ray_address",
    "progress",
    "resume",
    "report_only",
    "out",
    "name",
    "plots",
    "quick",
    "tensorboard",
    "llm_results",
)


def _canonical_sim(sim: dict[str, Any]) -> dict[str, Any]:
    """Overrides in one spelling: sorted, numbers as floats (``40`` and ``40.0`` are one run)."""
    return {
        key: float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else value
        for key, value in sorted(sim.items())
    }


def run_fingerprint(spec: RunSpec, args: Args) -> str:
    """A hash of everything that changes a run's result: its spec and the ``RUN_FIELDS``.

    Each record carries it, and a resumed study reuses a record only when the fingerprint is
    the one it would write itself, so a run trained under other settings is never taken for
    one of this study, whatever ``args.json`` says. (The run id stays readable and stable;
    the fingerprint is the identity.) The code's version is not in it.

    Example:
        >>> from dialogue_gym.study.settings import plan
        >>> args = Args(rewards=("sparse",), learners=("ppo",), sweep=False)
        >>> spec = plan(args)[0]
        >>> run_fingerprint(spec, args) == run_fingerprint(spec, dataclasses.replace(args, workers=8))
        True
        >>> longer = dataclasses.replace(args, steps=99)
        >>> run_fingerprint(spec, args) == run_fingerprint(plan(longer)[0], longer)
        False
        >>> other_user = dataclasses.replace(spec, env="EmpathyDialogueHard-v0")
        >>> run_fingerprint(spec, args) == run_fingerprint(other_user, args)
        False
        >>> same = dataclasses.replace(args, steps=99, learner_steps=("ppo=12000",))
        >>> run_fingerprint(spec, args) == run_fingerprint(plan(same)[0], same)
        True
    """
    identity: dict[str, Any] = {
        "setting": spec.setting,
        "sim": _canonical_sim(spec.sim),
        "reward": spec.reward,
        "learner": spec.learner,
        "seed": spec.seed,
    }
    if spec.env != DEFAULT_ENV:
        # Absent for the default user, so records written before --envs keep their identity.
        identity["env"] = spec.env
    for name in RUN_FIELDS:
        value = getattr(args, name)
        identity[name] = list(value) if isinstance(value, tuple) else value
    # The run's own budget in the place of --steps: a run whose learner trains --steps (no
    # per-learner budget) keeps the fingerprint it had before per-learner budgets existed.
    identity["steps"] = spec.steps or args.steps
    if float(args.margin) != Args.margin:
        # The margin is declared before the runs: records judged under one margin are not
        # taken for those of another (absent at the default, so older records keep theirs).
        identity["margin"] = float(args.margin)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _comparable(name: str, value: Any) -> Any:
    """A setting as compared: tuples for lists (JSON's), the overrides parsed and sorted."""
    if isinstance(value, list):
        value = tuple(value)
    if name == "sim":
        try:
            return _canonical_sim(parse_overrides(tuple(value)))
        except (TypeError, ValueError):
            return tuple(map(str, value))  # not valid overrides (now): compared as written
    return value


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        value = tuple(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
        )
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "(none)"
    return str(value)


#: The fields that only say which runs the grid has: ``--resume`` may grow them (more users,
#: learners, rewards or seeds; the sweep turned on), because each record's fingerprint already
#: says the settings it was trained under. Shrinking one is still a difference: a resumed
#: study never hides runs of its folder from its report.
GRID_FIELDS = ("envs", "learners", "rewards", "seeds", "sweep", "sweep_seeds")


def _grows(then: Any, now: Any) -> bool:
    """Whether a grid field's value ``now`` holds everything ``then`` did (and maybe more)."""
    if isinstance(then, bool) or isinstance(now, bool):
        return now or not then
    if isinstance(then, int) and isinstance(now, int):
        return now >= then
    if isinstance(then, tuple) and isinstance(now, tuple):
        return set(then) <= set(now)
    return False


def settings_differences(saved: dict[str, Any], args: Args) -> list[str]:
    """Each result-changing field where ``args`` differs from a folder's ``args.json``.

    Every field but the ``NEUTRAL_FIELDS`` is compared; the sweep's learner and seeds only
    when either study sweeps. A field the saved file lacks (an older version's) counts as
    its default. The ``GRID_FIELDS`` may grow (``--learners`` gains one, ``--seeds`` rises,
    ``--sweep`` is turned on), and the budgets are compared for the learners both name: a
    study extended this way trains only its new runs.

    Args:
        saved: The folder's ``args.json``, as read.
        args: The new arguments (after ``quick_args``, as ``args.json`` is written).

    Returns:
        ``"steps: 256 in the folder, 4096 now"`` and the like, in field order.

    Example:
        >>> saved = dataclasses.asdict(Args(steps=256, workers=1))
        >>> settings_differences(saved, Args(steps=4096, workers=4))
        ['steps: 256 in the folder, 4096 now']
        >>> settings_differences(saved, Args(steps=256, seeds=8))  # grown: more seeds
        []
    """
    sweeping = bool(saved.get("sweep", Args.sweep)) or args.sweep
    differences = []
    for f in dataclasses.fields(Args):
        if f.name in NEUTRAL_FIELDS:
            continue
        if f.name in ("sweep_learner", "sweep_seeds") and not sweeping:
            continue
        if f.name in BUDGET_FIELDS:
            if f.name == "steps":  # the budgets, compared per learner, where --steps stood
                differences += _budget_differences(saved, args)
            continue
        then = _comparable(f.name, saved.get(f.name, _field_default(f)))
        now = _comparable(f.name, getattr(args, f.name))
        if then != now and not (f.name in GRID_FIELDS and _grows(then, now)):
            flag = f.name.replace("_", "-")
            differences.append(f"{flag}: {_shown(then)} in the folder, {_shown(now)} now")
    return differences


#: The fields that set the learners' budgets: ``settings_differences`` compares what they
#: make of each learner's steps, not the fields themselves (``--steps 40000`` with
#: ``--learner-steps ppo=12000`` trains PPO's runs as ``--steps 12000`` does).
BUDGET_FIELDS = ("steps", "learner_steps", "budgets")
#: The key of ``args.json`` that records each learner's budget as the study trained it.
BUDGETS_KEY = "steps_per_learner"
#: The key of ``args.json`` that records them per user (``--envs``), where plateaus differ.
USER_BUDGETS_KEY = "steps_per_user"


def _budget_differences(saved: dict[str, Any], args: Args) -> list[str]:
    """The budget differences between a folder's ``args.json`` and ``args``, one line per
    user whose budgets differ: ``steps: A in the folder, B now`` where both give every
    learner ``--steps``, else ``steps per learner: ...`` (``... of USER`` for a user after
    the first)."""
    values = {
        name: saved.get(name, _field_default(Args.__dataclass_fields__[name]))
        for name in BUDGET_FIELDS
    }
    try:
        then_args = dataclasses.replace(
            args,
            steps=int(values["steps"]),
            learner_steps=tuple(map(str, values["learner_steps"] or ())),
            budgets=str(values["budgets"]),
        )
    except (TypeError, ValueError):  # an args.json this version cannot read: differs
        then_args = None
    recorded = saved.get(BUDGETS_KEY)
    per_user = saved.get(USER_BUDGETS_KEY)
    lines = []
    trained_with = saved.get("envs") or [DEFAULT_ENV]
    for k, env_id in enumerate(args.envs):
        if env_id not in trained_with:
            continue  # a user added on resume: nothing of it was trained
        then = learner_budgets(then_args, env_id) if then_args is not None else {}
        # As trained (PLATEAU_STEPS may have changed since): the per-user record, else the
        # first user's, which a version before per-user budgets gave every user.
        as_trained = per_user.get(env_id) if isinstance(per_user, dict) else None
        if not isinstance(as_trained, dict):
            as_trained = recorded if isinstance(recorded, dict) else None
        if as_trained is not None:
            then = {key: v for key, v in as_trained.items() if key in then} or then
        now = learner_budgets(args, env_id)
        line = _budget_line(then, now, then_args.steps if then_args else None, args.steps)
        if line:
            lines.append(line if k == 0 else line.replace(":", f" of {env_id}:", 1))
    return lines


def _budget_line(then: dict[str, int], now: dict[str, int], then_steps: Any, steps: int) -> str:
    """One user's budget difference in words, or ``""`` when there is none."""
    if then and set(then) != set(now):  # a learner added (or dropped): compare the shared ones
        shared = then.keys() & now.keys()
        then = {k: v for k, v in then.items() if k in shared}
        now = {k: v for k, v in now.items() if k in shared}
    if then == now:
        return ""
    uniform = all(len(set(b.values())) <= 1 for b in (then, now)) and then
    if uniform and set(then.values()) == {then_steps} and set(now.values()) == {steps}:
        return f"steps: {then_steps} in the folder, {steps} now"

    def shown(budgets: dict[str, int]) -> str:
        return " ".join(f"{k}={v}" for k, v in budgets.items()) or "(unreadable)"

    return f"steps per learner: {shown(then)} in the folder, {shown(now)} now"


def saved_args(out: Path) -> dict[str, Any] | None:
    """The folder's ``args.json``, or None when it is missing or unreadable."""
    try:
        saved = json.loads((out / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def with_folder_settings(args: Args, saved: dict[str, Any] | None) -> Args:
    """``args`` with every setting left at its default read from the folder's ``args.json``.

    ``--report-only`` rebuilds a folder's report from its records: ``dialogue-gym study
    --name full_hard --report-only`` needs no other flag. A setting given on the command line
    (not the default) stands, so a folder's records are re-judged under, say, another
    ``--margin`` only when asked (and then each record's fingerprint decides what is reused).
    Where the study runs and what it shows (``NEUTRAL_FIELDS``) is not read.

    Example:
        >>> with_folder_settings(Args(margin=5.0), {"seeds": 10, "margin": 10.0, "workers": 8})
        ... # doctest: +ELLIPSIS
        Args(...seeds=10...margin=5.0...)
        >>> with_folder_settings(Args(), {"seeds": 10, "workers": 8}).workers == Args().workers
        True
    """
    if not saved:
        return args
    defaults = Args()
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(Args):
        if f.name in NEUTRAL_FIELDS or f.name not in saved:
            continue
        if getattr(args, f.name) != getattr(defaults, f.name):
            continue
        value = saved[f.name]
        changes[f.name] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(args, **changes)


def check_resumable(out: Path, args: Args) -> None:
    """Refuse to resume a study folder whose settings differ in anything that changes a result.

    Without ``args.json`` (lost, or unreadable) nothing is refused: the records' fingerprints
    still keep every run of other settings out.

    Raises:
        ValueError: One line naming each difference.
    """
    saved = saved_args(out)
    if saved is None:
        if (out / "runs.jsonl").is_file():
            print(
                f"note: no readable args.json in {out}: reusing only the runs whose "
                "fingerprint matches these settings",
                file=sys.stderr,
            )
        return
    differences = settings_differences(saved, args)
    if differences:
        raise ValueError(
            f"--resume: {out} was run with other settings ({'; '.join(differences)}): "
            "resume with the folder's settings, or give another --name"
        )


def append_record(file: BinaryIO, record: dict[str, Any]) -> None:
    """Append one finished run to ``runs.jsonl``: one line, written whole, synced to disk.

    One write of the whole line (unbuffered file) leaves a crash at most this line cut off,
    which :func:`repair_runs_file` drops; the sync keeps it through a power cut as well.
    """
    view = memoryview((json.dumps(record) + "\n").encode("utf-8"))
    while view:
        view = view[file.write(view) :]
    os.fsync(file.fileno())


def repair_runs_file(path: Path) -> None:
    """Drop a record cut off mid-line at the end of ``runs.jsonl`` (the study was killed).

    A last line that is a whole record and lacks only its newline is kept and ended. So an
    append after a crash starts on a line of its own, and the cut-off run is trained again.
    """
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        whole = isinstance(json.loads(data[start:]), dict)
    except ValueError:
        whole = False
    with path.open("r+b") as f:
        if whole:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(start)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all: a study killed mid-write leaves the old one."""
    part = path.with_name(path.name + ".part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


def finished_runs(path: Path, fingerprints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run id -> record, for the records of ``runs.jsonl`` that this study would write itself.

    Args:
        path: The ``runs.jsonl``.
        fingerprints: Run id -> :func:`run_fingerprint`, of the planned runs.

    Returns:
        The complete records whose fingerprint is the planned run's: a cut-off line, a run
        of other settings and a record of a version without fingerprints are left out (and
        trained again).
    """
    found: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line being written when the study was stopped
            run = record.get("run") if isinstance(record, dict) else None
            if run in fingerprints and record.get("fingerprint") == fingerprints[run]:
                found[run] = record
    return found
