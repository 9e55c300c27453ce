"""The reward study: which reward replaces the coarse bonus, for which learner.

- :mod:`~dialogue_gym.study.run`: the grid (settings x rewards x learners x seeds), CleanRL style;
- :mod:`~dialogue_gym.study.report`: rliable statistics, verdicts, plots and ``report.md``.

``python -m dialogue_gym.study`` (or ``dialogue-gym study``) runs it.
"""

from dialogue_gym.study import run
from dialogue_gym.study.run import (
    LEARNERS,
    Args,
    main,
    parse_args,
    quick_args,
    register_learner,
)

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
