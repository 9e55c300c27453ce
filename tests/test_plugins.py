"""A reward added by a plugin with one ``register_reward`` call appears everywhere.

The plugin module below registers "my_reward" and does nothing else. With it imported (or
named by ``dialogue-gym study --plugins``), the reward is among the choices of ``dialogue-gym
study --help`` and in its default reward list, the metrics' probes measure
``return/my_reward``, and the study trains with it and reports it. Every registration is
undone after each test.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import math
import re
import sys

import numpy as np
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.cli import main as cli
from dialogue_gym.evaluation import ALL_REWARDS, evaluate
from dialogue_gym.evaluation.metrics import METRIC_DOCS, compute_metrics
from dialogue_gym.rewards import COMPONENT_WRAPPERS, REWARDS
from dialogue_gym.study import learners
from dialogue_gym.study import run as study

PLUGIN = "my_reward_plugin"
PLUGIN_SOURCE = '''\
"""A plugin: one more reward, half the emotion-delta reward, logged under its own name."""

from functools import partial

from dialogue_gym.rewards import EmotionDeltaReward, register_reward

register_reward("my_reward", partial(EmotionDeltaReward, scale=0.005, name="my_reward"))
'''


@pytest.fixture
def registries(request):
    """Undo, after the test, whatever it registers in the rewards and learners registries."""
    with contextlib.ExitStack() as stack:
        for registry in (REWARDS, COMPONENT_WRAPPERS, study.LEARNERS):
            stack.enter_context(registry.restoring())
        yield


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch, registries):
    """The plugin module, importable (not imported yet)."""
    (tmp_path / f"{PLUGIN}.py").write_text(PLUGIN_SOURCE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, PLUGIN, raising=False)
    yield
    sys.modules.pop(PLUGIN, None)


@pytest.fixture
def plugin(plugin_on_path):
    """The plugin module, imported."""
    return importlib.import_module(PLUGIN)


def study_help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli(["study", *argv, "--help"])
    assert exit_.value.code == 0
    return re.sub(r"[\s│]+", " ", capsys.readouterr().out)  # unwrap the help's box


def rewards_choices(help_text: str) -> list[str]:
    match = re.search(r"--rewards \{([^}]*)\}", help_text)
    assert match, help_text
    return match.group(1).replace(" ", "").split(",")


def test_the_study_help_lists_a_plugin_reward_named_by_plugins(plugin_on_path, capsys):
    assert "my_reward" not in rewards_choices(study_help(capsys))
    text = study_help(capsys, "--plugins", PLUGIN)
    # The registered rewards, the plugin's last, then the study's variants of them.
    assert list(REWARDS)[-1] == "my_reward"
    assert rewards_choices(text) == [*REWARDS, *study.REWARD_VARIANTS]
    assert "my_reward" in study.STUDY_REWARDS  # a default of --rewards too
    assert re.search(r"--rewards .*\(default: sparse [a-z_ ]*my_reward\)", text)


def test_the_study_help_lists_a_plugin_reward_imported_before(plugin, capsys):
    assert "my_reward" in rewards_choices(study_help(capsys))


def test_the_probes_measure_the_plugin_reward(plugin):
    assert "return/my_reward" in METRIC_DOCS
    results = evaluate("stage-heuristic", reward=ALL_REWARDS, seed=0, repeats=1)
    metrics = compute_metrics(results)
    # Half the emotion-delta reward, turn by turn, so half its return.
    assert not math.isnan(metrics["return/my_reward"])
    assert metrics["return/my_reward"] == pytest.approx(metrics["return/emotion_delta"] / 2)


class _NoTraining:
    """A learner that learns nothing and always reassures: the study's plumbing, in seconds."""

    def __init__(self, env, common, steps):
        self.env = env

    def learn(self, total_timesteps, reset_num_timesteps=True):
        return self

    def predict(self, obs, deterministic=True):
        return np.array(4), None


@pytest.mark.slow
def test_the_study_trains_with_and_reports_the_plugin_reward(plugin_on_path, tmp_path):
    learners.register_learner("no_training", _NoTraining)  # undone by the registries fixture
    argv = [
        "study", "--plugins", PLUGIN, "--rewards", "sparse", "my_reward",
        "--learners", "no_training", "--seeds", "2", "--steps", "2", "--eval-points", "1",
        "--no-sweep", "--workers", "1", "--bootstrap-reps", "50", "--no-plots",
        "--no-progress", "--out", str(tmp_path), "--name", "plugin",
    ]  # fmt: skip
    assert cli(argv) == 0
    out = tmp_path / "plugin"
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in runs] == ["sparse", "sparse", "my_reward", "my_reward"]
    for r in runs:  # every run measures the plugin's return, whatever it trained with
        assert not math.isnan(r["metrics"]["return/my_reward"])
    report = (out / "report.md").read_text()
    assert re.search(r"^\| no_training \| my_reward \|", report, flags=re.MULTILINE)
    assert "`return/my_reward`" in report
    with (out / "runs.csv").open() as f:
        assert "return/my_reward" in next(csv.reader(f))
    summary = json.loads((out / "summary.json").read_text())
    assert {row["reward"] for row in summary["rows"]} == {"sparse", "my_reward"}


def test_the_registrations_are_undone():
    """Runs after the tests above (file order): the plugin's reward is gone again."""
    assert "my_reward" not in REWARDS and "my_reward" not in COMPONENT_WRAPPERS
    assert "my_reward" not in METRIC_DOCS and "my_reward" not in study.STUDY_REWARDS
    assert "no_training" not in study.LEARNERS
