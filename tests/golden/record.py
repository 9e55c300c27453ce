"""Golden outputs: seeded episodes of every env id and reward, recorded before a refactor.

Every episode is played through ``gym.make`` (template voice) with seeded actions; each step's
observation, reward, flags and ``info`` go into one canonical JSON string per episode, whose
SHA-256 is kept beside the final transcript. ``tests/test_golden.py`` replays the same
episodes and compares, so a refactor that changes any number or word fails.

Run ``python tests/golden/record.py`` to (re)write ``tests/golden/episodes.json``: only when
a change of behaviour is intended, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents import make_policy

GOLDEN = Path(__file__).with_name("episodes.json")
REWARDS = (
    None,
    "sparse",
    "final_emotion",
    "next_turn",
    "multi_turn",
    "emotion_delta",
    "potential_emotion",
    "composite",
)
ENV_IDS = ("EmpathyDialogue-v0", "EmpathyDialogueText-v0")
SEEDS = (0, 7)
COMPOSITE = {"weights": {"sparse": 1.0, "emotion_delta": 0.02, "multi_turn": 0.5}}
UTTERANCES = (
    "What has been the hardest part of all this for you?",
    "So if I understand you, things have been piling up for weeks.",
    "It sounds like you're feeling really alone with this.",
    "I went through something similar a few years ago.",
    "You've shown real strength by talking about this.",
    "Maybe you could try writing down what worries you most.",
    "Research shows that stress like this usually eases with time.",
    "Thanks for telling me.",
    "",
    "Tell me more about the money side of it?",
)


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return _plain(x.item())
    if isinstance(x, float):
        return repr(x)  # exact
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in sorted(x.items(), key=lambda kv: str(kv[0]))}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, str | int | bool) or x is None:
        return x
    if hasattr(x, "__iter__"):  # Transcript: a read-only sequence of message dicts
        return [_plain(v) for v in x]
    raise TypeError(f"cannot record {type(x).__name__}")


def play(env_id: str, reward: str | None, seed: int) -> dict[str, Any]:
    """Three episodes in a row from ``reset(seed=seed)``: random, stage heuristic, oracle."""
    kwargs = {"reward_kwargs": COMPOSITE} if reward == "composite" else {}
    env = gym.make(env_id, voice="template", reward=reward, **kwargs)
    rng = np.random.default_rng(seed)
    record: list[Any] = []
    transcripts = []
    policies = [None, make_policy("stage-heuristic", env), make_policy("oracle", env)]
    for episode, policy in enumerate(policies):
        obs, info = env.reset(seed=seed if episode == 0 else None)
        steps: list[Any] = [[_plain(obs), _plain(info)]]
        if policy is not None:
            policy.reset(seed=seed)
        done = False
        while not done:
            if policy is None:
                k = int(rng.integers(len(UTTERANCES) if env_id.endswith("Text-v0") else 8))
            else:
                k = int(policy(obs))
            action = UTTERANCES[k] if env_id.endswith("Text-v0") else k
            obs, r, term, trunc, info = env.step(action)
            steps.append([_plain(action), _plain(obs), repr(float(r)), term, trunc, _plain(info)])
            done = term or trunc
        record.append(steps)
        transcripts.append([f"{m['role']}: {m['content']}" for m in info["messages"]])
    env.close()
    blob = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return {"sha256": hashlib.sha256(blob.encode()).hexdigest(), "transcripts": transcripts}


def cases() -> list[tuple[str, str | None, int]]:
    return [(e, r, s) for e in ENV_IDS for r in REWARDS for s in SEEDS]


def key(env_id: str, reward: str | None, seed: int) -> str:
    return f"{env_id}|{reward}|{seed}"


def main() -> None:
    out = {key(*c): play(*c) for c in cases()}
    GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out)} episodes pairs to {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
