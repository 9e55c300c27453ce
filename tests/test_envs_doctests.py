"""The doctests of the env modules, which pytest's doctest collection cannot reach.

``envs/`` sits at the top of the repository and is installed as ``dialogue_gym.envs``; collecting
it by path would import each module a second time under another name (``envs.empathy``), so its
doctests run here through the installed name.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import dialogue_gym.envs

MODULES = sorted(
    info.name for info in pkgutil.iter_modules(dialogue_gym.envs.__path__, "dialogue_gym.envs.")
)


def test_every_env_module_is_found() -> None:
    assert {
        "dialogue_gym.envs.empathy",
        "dialogue_gym.envs.text",
        "dialogue_gym.envs.vector",
    } <= set(MODULES)


@pytest.mark.parametrize("name", ["dialogue_gym.envs", *MODULES])
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed"
