"""Load a script of the repository (a benchmark, a docs hook, the conftest) as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
