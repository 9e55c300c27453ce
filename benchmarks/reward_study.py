"""The reward study, as a script: ``python benchmarks/reward_study.py --quick``.

The study lives in :mod:`dialogue_gym.study.run` (one readable file, a dataclass of arguments, as
CleanRL) so that ``dialogue-gym study`` can run it from an installed package; this script is the
same command line. See ``docs/study.md``.
"""

from dialogue_gym.study.run import main, parse_args

if __name__ == "__main__":
    main(parse_args())
