"""Plugins: modules a user names so that what they register (rewards, learners, voices, env ids)
exists in every process that needs it (the study's workers, RLlib's env runners).

Example:
    >>> load_plugins(("json",))  # a module name; a path to a .py file works too
    >>> load_plugins(("no_such_plugin_module",), owner="rllib")
    Traceback (most recent call last):
    ...
    dialogue_gym.core.validation.InvalidArgument: rllib.plugins = 'no_such_plugin_module': cannot be imported (No module named 'no_such_plugin_module'): must be a module on sys.path, in the current folder, or the path of a .py file
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from dialogue_gym.core.validation import InvalidArgument

__all__ = ["import_file", "load_plugins"]


def load_plugins(modules: Sequence[str], owner: str = "plugins") -> None:
    """Import plugin modules, each of which may register rewards, learners, voices or env ids.

    Each is a module name or the path of a ``.py`` file. A name is looked up on ``sys.path``
    and then in the current folder (as ``python -m`` would): ``--plugins my_plugin`` finds
    ``./my_plugin.py`` without ``PYTHONPATH``. A file is imported under its stem as module
    name. A module already imported is not imported again.

    Args:
        modules: Module names or paths of ``.py`` files.
        owner: Who asked, as errors name it (``study.plugins``, ``rllib.plugins``).

    Raises:
        InvalidArgument: A module that cannot be imported (naming it and why).
    """
    import importlib

    for module in modules:
        if module.endswith(".py") or "/" in module or os.sep in module:
            _load_plugin_file(module, owner)
            continue
        try:
            if importlib.util.find_spec(module) is None and os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())  # after everything installed: shadows nothing
            importlib.import_module(module)
        except ImportError as err:
            raise InvalidArgument(
                owner,
                "plugins",
                module,
                f"cannot be imported ({err}): must be a module on sys.path, in the current "
                "folder, or the path of a .py file",
            ) from None


def _load_plugin_file(path_text: str, owner: str) -> None:
    """Import a plugin given as the path of a ``.py`` file, once per process."""
    path = Path(path_text).expanduser().resolve()
    if not path.is_file() or path.suffix != ".py":
        raise InvalidArgument(
            owner, "plugins", path_text, "must be a module name or the path of a .py file"
        )
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
            return
        raise InvalidArgument(
            owner, "plugins", path_text, f"its name {name!r} is another module's already"
        )
    import_file(path, name)


def import_file(path: str | os.PathLike[str], name: str) -> ModuleType:
    """Import the ``.py`` file ``path`` as the module ``name``.

    The module is in ``sys.modules`` before it runs (dataclasses look their module up there
    while it loads) and taken out again if it fails.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
