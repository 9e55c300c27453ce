"""Old module paths, kept for one release: importing one warns and gives the new module.

The package moved from a flat layout into sub-packages (see ``CHANGELOG.md``). So that code
written against 0.1 keeps working, importing ``dialogue_gym.env`` (or any other name in
:data:`MOVED`, submodules included: ``dialogue_gym.backends.llama_cpp``; nested old paths
too: ``dialogue_gym.user.voice``) raises a
``DeprecationWarning`` naming the new path and returns *the same module object* as the new
path, so classes, registries and ``isinstance`` checks are shared, not copied.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     from dialogue_gym.hierarchy import Options
    >>> from dialogue_gym.agents.options import Options as New
    >>> Options is New, caught[0].category.__name__
    (True, 'DeprecationWarning')
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: Old dotted path (under ``dialogue_gym.``) -> new one. Removed in 0.3.
MOVED: dict[str, str] = {
    "constants": "core.vocabulary",
    "config": "core.config",
    "affect": "core.affect",
    "scenario": "core.scenario",
    "transcript": "core.transcript",
    "paths": "envs",  # 0.1's paths.envs_dir() is envs.envs_dir (data_dir)
    "render": "core.render",
    "llm_task": "llm.client",
    "batching": "llm.batching",
    "backends": "llm.backends",
    "voice": "user.voices",
    "user.voice": "user.voices",
    "recognise": "user.recognise",
    "llm_core": "user.judge",
    "injection": "user.injection",
    "hierarchy": "agents.options",
    "goals": "agents.goals",
    "planning": "agents.planning",
    "planner_realiser": "agents.planner_realiser",
    "metrics": "evaluation.metrics",
    "episode_log": "evaluation.episode_log",
    "report": "study.report",
    "sb3": "integrations.sb3",
    "vector": "envs.vector",
    "env": "envs.empathy",
    "text_env": "envs.text",
}
_PREFIX = "dialogue_gym."


def _new_name(fullname: str) -> str | None:
    """The new dotted path of ``fullname``, or ``None`` if it did not move.

    The longest moved prefix wins, so a nested old path (``user.voice``) maps too.
    """
    if not fullname.startswith(_PREFIX):
        return None
    parts = fullname[len(_PREFIX) :].split(".")
    for n in range(len(parts), 0, -1):
        head = ".".join(parts[:n])
        if head in MOVED:
            return _PREFIX + ".".join([MOVED[head], *parts[n:]])
    return None


def _importer_level() -> int:
    """The ``stacklevel`` of the frame whose import statement asked for the old name.

    ``warnings.warn`` skips importlib's own frames when it counts, so only ours are counted.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    return level


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.new}; the old path works until dialogue_gym 0.3",
            DeprecationWarning,
            stacklevel=_importer_level(),
        )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # the import system stamped the old name's spec on it


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: ANN201
        new = _new_name(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())
