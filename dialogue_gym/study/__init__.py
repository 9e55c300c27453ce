"""The reward study: which reward replaces the coarse bonus, for which learner.

- :mod:`~dialogue_gym.study.run`: the grid (settings x rewards x learners x seeds), CleanRL style;
- :mod:`~dialogue_gym.study.report`: rliable statistics, verdicts, plots and ``report.md``.

``python -m dialogue_gym.study`` (or ``dialogue-gym study``) runs it.
"""

from dialogue_gym.study.run import (
    LEARNERS,
    STUDY_LEARNERS,
    STUDY_REWARDS,
    Args,
    main,
    parse_args,
    quick_args,
    register_learner,
)

__all__ = [
    "LEARNERS",
    "STUDY_LEARNERS",
    "STUDY_REWARDS",
    "Args",
    "main",
    "parse_args",
    "quick_args",
    "register_learner",
]
