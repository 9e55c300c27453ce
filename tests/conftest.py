"""Shared fixtures: template-voice envs (fast, deterministic) over every registered id."""

from __future__ import annotations

import os

import gymnasium as gym
import pytest
import torch
from hypothesis import settings

import dialogue_gym

# pytest-xdist runs one worker per core; torch's own intra-op threads on top of that
# oversubscribe the cores and make small SB3 updates many times slower.
torch.set_num_threads(1)

#: The fast tier's selection, pyproject.toml's default ``-m``.
FAST_TIER = "not slow and not llm and not server and not benchmark"

# The fuzz suite's budgets (tests/test_fuzz.py). "fast", the default, keeps the fast tier fast;
# `make test` sets HYPOTHESIS_PROFILE=ci. Both are derandomised, so a failure in CI replays
# exactly from the same code; "explore" draws fresh examples each run, for a longer hunt.
settings.register_profile("fast", max_examples=12, deadline=None, derandomize=True)
settings.register_profile("ci", max_examples=150, deadline=None, derandomize=True)
settings.register_profile("explore", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


#: Set by `make test` (CI): every optional integration must be installed there, so a test that
#: would skip for a missing extra fails instead, naming it (a skip would hide a missing install).
STRICT_EXTRAS = os.environ.get("DIALOGUE_GYM_STRICT_EXTRAS") == "1"

if STRICT_EXTRAS:
    _importorskip = pytest.importorskip

    def _importorfail(modname: str, minversion: str | None = None, reason: str | None = None):
        try:
            return _importorskip(modname, minversion=minversion, reason=reason)
        except pytest.skip.Exception as skipped:
            pytest.fail(
                f"{modname} is missing, and make test installs every extra its tests need: "
                f"{reason or skipped}",
                pytrace=False,
            )

    pytest.importorskip = _importorfail


def pytest_configure(config: pytest.Config) -> None:
    # Naming a test (`pytest tests/test_study.py::test_resume...`) runs it whatever its tier:
    # the default selection is for plain `pytest` runs, and would otherwise deselect it silently.
    if config.option.markexpr == FAST_TIER and any("::" in arg for arg in config.args):
        config.option.markexpr = ""


@pytest.fixture(params=dialogue_gym.ENV_IDS)
def env_id(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_env(env_id: str):
    made = []

    def _make(**kwargs):
        env = gym.make(env_id, **{"voice": "template", **kwargs})
        made.append(env)
        return env

    yield _make
    for env in made:
        env.close()


@pytest.fixture
def act(env_id: str):
    """``act(i)``: the action of ``env_id``'s action space that means strategy ``i``.

    The index itself for a strategy env; for a free-text env (a ``Text`` action space) an
    utterance its recogniser reads as strategy ``i`` (``text_env.EXAMPLE_UTTERANCES``).
    """
    env = gym.make(env_id, voice="template")
    text = isinstance(env.action_space, gym.spaces.Text)
    env.close()
    if text:
        from dialogue_gym.envs.text import EXAMPLE_UTTERANCES

        return EXAMPLE_UTTERANCES.__getitem__
    return int
