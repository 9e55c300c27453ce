"""Load a script of the repository (a benchmark, a docs hook, the conftest) as a module."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

from dialogue_gym.plugins import import_file

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str | Path, name: str | None = None) -> ModuleType:
    """The module of ``path`` (relative to the repository, or absolute), loaded once.

    It is registered in ``sys.modules`` under ``name`` (default: the file's stem) before it
    runs, because dataclasses look their module up there while the script loads.
    """
    path = (ROOT / path).resolve()
    name = name or path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    return import_file(path, name)
