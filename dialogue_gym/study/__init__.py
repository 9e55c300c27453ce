"""The reward study: which reward replaces the coarse bonus, for which learner.

- :mod:`~dialogue_gym.study.settings`: its arguments, reward labels, per-user plateau budgets
  and the plan (settings x rewards x learners x seeds);
- :mod:`~dialogue_gym.study.learners`: the learner registry and the ``--plugins`` that add to it;
- :mod:`~dialogue_gym.study.resume`: a run's fingerprint, ``--resume``, crash-safe records;
- :mod:`~dialogue_gym.study.run`: training and evaluating each run, ``main`` and the command
  line, CleanRL style;
- :mod:`~dialogue_gym.study.intervals`: rliable's stratified bootstrap, one generator per row;
- :mod:`~dialogue_gym.study.verdicts`: each reward against the coarse bonus, by the difference
  interval and a declared margin;
- :mod:`~dialogue_gym.study.aggregate`: a row per learner, reward, setting and user, with
  intervals and breakdowns;
- :mod:`~dialogue_gym.study.tables`: the rows in words: cells, tables, the answer;
- :mod:`~dialogue_gym.study.plots`: the PNG plots;
- :mod:`~dialogue_gym.study.report`: the files (CSVs, ``report.md``, ``summary.json``);
- :mod:`~dialogue_gym.study.executors`: where the runs execute (local processes, Ray);
- :mod:`~dialogue_gym.study.llm_level`: GRPO runs beside the strategy level's verdicts.

``dialogue-gym study`` runs it (``main(parse_args())`` from Python).
"""

from dialogue_gym.study import run
from dialogue_gym.study.learners import LEARNERS, register_learner
from dialogue_gym.study.run import main, parse_args
from dialogue_gym.study.settings import Args, quick_args

__all__ = [
    "LEARNERS",
    "STUDY_LEARNERS",  # noqa: F822 (module __getattr__)
    "STUDY_REWARDS",  # noqa: F822 (module __getattr__)
    "Args",
    "main",
    "parse_args",
    "quick_args",
    "register_learner",
]


def __getattr__(name: str) -> object:
    # Read from the registries on access, so rewards and learners that plugins add are listed.
    if name in ("STUDY_REWARDS", "STUDY_LEARNERS", "BASELINES", "HIERARCHICAL"):
        return getattr(run, name)
    raise AttributeError(f"module 'dialogue_gym.study' has no attribute {name!r}")
