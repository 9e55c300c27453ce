"""Shared fixtures: template-voice envs (fast, deterministic) over every registered id."""

from __future__ import annotations

import gymnasium as gym
import pytest

import dialogue_gym


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
