"""``python -m dialogue_gym.evaluation.audit``: see :mod:`~dialogue_gym.evaluation.audit.cli`."""

from dialogue_gym.evaluation.audit.cli import main

if __name__ == "__main__":
    main()
