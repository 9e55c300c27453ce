"""Where the package's data lives once installed."""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path


@cache
def envs_dir() -> Path:
    """The installed ``envs/`` data folder (scenario cards, authored parts).

    ``envs/`` sits at the top of the repository and is installed as the package
    ``dialogue_gym.envs`` (see ``setup.cfg``), so a wheel carries it.
    """
    return Path(str(importlib.resources.files("dialogue_gym.envs")))
