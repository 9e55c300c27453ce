"""The recipes of docs/architecture.md: add a reward, an env id, a backend.

Each recipe is one module file plus one registration line. The module sources below are the
ones the page shows, verbatim (``RECIPE_REWARD``, ``RECIPE_ENV``, ``RECIPE_BACKEND``); each
test writes its recipe into a fresh folder, imports it, uses what it registered exactly as a
user would, and removes the registration afterwards.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.llm.backends import available_backends, unregister_backend
from dialogue_gym.registration import ENVS, register_env, unregister_env
from dialogue_gym.rewards import REWARDS, unregister_reward

RECIPE_REWARD = '''\
"""A reward for asking: ``bonus`` on every turn whose strategy is a question."""

from dialogue_gym.rewards import ComponentRewardWrapper, register_reward


class CuriosityReward(ComponentRewardWrapper):
    """Pays ``bonus`` when the agent asks; logs whether it asked as ``curiosity/asked``."""

    parts = ("asked",)

    def __init__(self, env, bonus=0.1, name="curiosity"):
        super().__init__(env, name)
        self.bonus = bonus

    def reward(self, reward, terminated, truncated, info):
        asked = float(info["strategy"] == "Question")
        return self.bonus * asked, (asked,)


register_reward("curiosity", CuriosityReward)
'''

RECIPE_ENV = '''\
"""A short variant of EmpathyDialogue: six turns, the template voice, the test cards."""

from dialogue_gym.envs.empathy import EmpathyDialogueEnv
from dialogue_gym.registration import register_env


class ShortDialogueEnv(EmpathyDialogueEnv):
    """EmpathyDialogue with other defaults (any keyword still overrides them)."""

    def __init__(self, max_turns=6, voice="template", scenarios="test", **kwargs):
        super().__init__(max_turns=max_turns, voice=voice, scenarios=scenarios, **kwargs)


register_env("ShortDialogue-v0", ShortDialogueEnv)
'''

RECIPE_BACKEND = '''\
"""A backend that answers every chat with one line: the protocol is one batched method."""

from dialogue_gym.llm.backends import register_backend


class ParrotBackend:
    """Replies ``line`` to every chat (a stand-in for a model server)."""

    name = "parrot"

    def __init__(self, line="It has been a lot, honestly."):
        self.line = line

    def generate(self, chats, params):
        return [self.line for _ in chats]


register_backend("parrot", ParrotBackend, main_arg="line")
'''


def load_recipe(tmp_path, monkeypatch, module: str, source: str) -> ModuleType:
    """Write ``source`` as ``<tmp_path>/<module>.py`` and import it, as a user's file would be."""
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    loaded = importlib.import_module(module)
    monkeypatch.setitem(sys.modules, module, loaded)  # removed again after the test
    return loaded


@pytest.fixture
def curiosity(tmp_path, monkeypatch):
    yield load_recipe(tmp_path, monkeypatch, "my_curiosity_reward", RECIPE_REWARD)
    unregister_reward("curiosity")


@pytest.fixture
def short_env(tmp_path, monkeypatch):
    yield load_recipe(tmp_path, monkeypatch, "my_short_env", RECIPE_ENV)
    unregister_env("ShortDialogue-v0")


@pytest.fixture
def parrot(tmp_path, monkeypatch):
    yield load_recipe(tmp_path, monkeypatch, "my_parrot_backend", RECIPE_BACKEND)
    unregister_backend("parrot")


def test_add_a_reward(curiosity):
    env = gym.make(
        "EmpathyDialogue-v0", voice="template", reward="curiosity", reward_kwargs={"bonus": 0.5}
    )
    _, info = env.reset(seed=0)
    assert info["reward_components"] == {"curiosity": 0.0, "curiosity/asked": 0.0}
    asked = env.step(0)  # strategy 0 is Question
    assert asked[1] == 0.5 and asked[-1]["reward_components"]["curiosity/asked"] == 1.0
    told = env.step(6)  # Information
    assert told[1] == 0.0 and told[-1]["reward_components"] == {
        "curiosity": 0.0,
        "curiosity/asked": 0.0,
    }
    # Its arguments are in the spec without the recipe recording them.
    assert env.spec.additional_wrappers[-1].kwargs == {"bonus": 0.5, "name": "curiosity"}
    # The probes measure it, and the study (which imports it in its workers with --plugins)
    # lists it among its rewards.
    from dialogue_gym.rewards import reward_probes
    from dialogue_gym.study import run as study

    assert "curiosity" in reward_probes() and "curiosity" in study.study_rewards()


def test_a_plain_gym_wrapper_is_probed_like_the_built_in_rewards(tmp_path, monkeypatch):
    from dialogue_gym.agents.reference import make_policy
    from dialogue_gym.evaluation.episodes import run_episode
    from dialogue_gym.evaluation.metrics import all_rewards_env, compute_metrics

    source = (
        "import gymnasium as gym\n"
        "from dialogue_gym.rewards import register_reward\n\n"
        "class Brevity(gym.Wrapper):\n"
        "    def step(self, action):\n"
        "        obs, reward, term, trunc, info = self.env.step(action)\n"
        "        return obs, reward - 0.1, term, trunc, info\n\n"
        "register_reward('brevity', Brevity)\n"
    )
    load_recipe(tmp_path, monkeypatch, "my_brevity_reward", source)
    try:
        kwargs = {"voice": "template", "scenarios": "test"}
        probed = all_rewards_env(kwargs)
        policy = make_policy("stage-heuristic", probed)
        result = run_episode(probed, policy, seed=3, card=0)
        alone = gym.make("EmpathyDialogue-v0", reward="brevity", **kwargs)
        paid = run_episode(alone, make_policy("stage-heuristic", alone), seed=3, card=0)
        metrics = compute_metrics([result])
        assert metrics["return/brevity"] == pytest.approx(sum(paid.rewards))
        # The stack's own reward is still the default one's: the probe passed it on.
        assert sum(result.rewards) == pytest.approx(metrics["return/sparse"])
    finally:
        unregister_reward("brevity")


def test_add_an_env_id(short_env):
    assert "ShortDialogue-v0" in ENVS and "ShortDialogue-v0" in gym.registry
    env = gym.make("ShortDialogue-v0")
    assert isinstance(env.unwrapped, short_env.ShortDialogueEnv)
    assert env.unwrapped.max_turns == 6
    # The default reward wrapper, as for the built-in ids; reward= picks another.
    _, info = env.reset(seed=0)
    assert "sparse" in info["reward_components"]
    assert (
        gym.make("ShortDialogue-v0", reward="emotion_delta", max_turns=3).unwrapped.max_turns == 3
    )
    check_env(gym.make("ShortDialogue-v0").unwrapped, skip_render_check=True)
    # Importing the module again registers nothing new; another class under the id is refused.
    register_env("ShortDialogue-v0", short_env.ShortDialogueEnv)
    with pytest.raises(ValueError, match="'ShortDialogue-v0' is already registered"):
        register_env("ShortDialogue-v0", "dialogue_gym.envs.text:EmpathyDialogueTextEnv")

    envs = gym.make_vec("ShortDialogue-v0", num_envs=2)
    _, _ = envs.reset(seed=0)
    _, rewards, _, _, _ = envs.step(np.array([0, 4]))
    assert rewards.shape == (2,)
    envs.close()


def test_add_a_backend(parrot):
    assert "parrot" in available_backends()
    line = "Work has been piling up on me."
    # The voice's line check is off: a parrot says the same line whatever the user's act, and
    # this test is about the backend reaching the voice, not about the check.
    voice = {"name": "llm", "check": False}
    env = gym.make("EmpathyDialogue-v0", voice=voice, backend={"name": "parrot", "line": line})
    _, info = env.reset(seed=0)
    assert info["user_utterance"].startswith(line)
    info = env.step(0)[-1]
    assert info["user_utterance"].startswith(line)
    # A string spec fills the main argument.
    env = gym.make(
        "EmpathyDialogue-v0", voice=voice, backend="parrot:I am fine, thanks for asking."
    )
    assert env.reset(seed=0)[1]["user_utterance"].startswith("I am fine, thanks for asking.")


def test_recipes_leave_no_registration_behind():
    """Runs after the recipes (file order): their names are gone again."""
    assert "curiosity" not in REWARDS
    assert "ShortDialogue-v0" not in ENVS and "ShortDialogue-v0" not in gym.registry
    assert "parrot" not in available_backends()
