"""Planner + realiser on the free-text env (PPDPP's plug-and-play planner)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

import dialogue_gym  # noqa: F401
from dialogue_gym.agents.planner_realiser import PlannerRealiserAgent
from dialogue_gym.agents.reference import StageHeuristicPolicy


def play(agent, env, seed, card):
    obs, info = env.reset(seed=seed, options={"card": card})
    agent.reset(seed=seed)
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(agent.act(env, obs))
        agent.observe(info)
        done = term or trunc
    return info


def test_heuristic_planner_with_template_realiser_succeeds_in_words():
    env = gym.make("EmpathyDialogueText-v0", voice="template", scenarios="test")
    agent = PlannerRealiserAgent(StageHeuristicPolicy(), realiser="template")
    wins, fidelity = [], []
    for k in range(24):
        wins.append(play(agent, env, seed=k, card=k)["success"])
        fidelity.append(agent.fidelity)
    # The recogniser reads most realised strategies back; the words carry the plan.
    assert np.mean(fidelity) >= 0.7
    assert np.mean(wins) >= 0.5


def test_sb3_planner_trained_on_the_strategy_env_drives_the_text_env():
    model = PPO("MultiInputPolicy", gym.make("EmpathyDialogue-v0", voice="template"), n_steps=64)
    model.learn(64)
    env = gym.make("EmpathyDialogueText-v0", voice="template", scenarios="test")
    agent = PlannerRealiserAgent(model, realiser="template")
    info = play(agent, env, seed=0, card=0)
    assert len(agent.planned) == info["turn"] and all(0 <= a < 8 for a in agent.planned)


@pytest.mark.llm
def test_llm_realiser_writes_the_utterances():
    env = gym.make("EmpathyDialogueText-v0", voice="template", scenarios="test", max_turns=3)
    agent = PlannerRealiserAgent(StageHeuristicPolicy(), realiser="llm")
    obs, _ = env.reset(seed=1)
    agent.reset(seed=1)
    text = agent.act(env, obs)
    assert isinstance(text, str) and text.strip()
    _, _, _, _, info = env.step(text)
    assert info["agent_utterance"] == text
