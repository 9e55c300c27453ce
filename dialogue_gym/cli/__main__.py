"""``python -m dialogue_gym.cli``: the ``dialogue-gym`` command."""

import sys

from dialogue_gym.cli import main

sys.exit(main())
