"""What hearing costs: a text-env step of v0 (the strategy alone) against v1 (the hearing user).

One script, CleanRL style. Each configuration plays ``--steps`` turns of natural support lines
(the counterfactual benchmark's dev half) to the test users with the template voice, on one torch
thread, after a warm-up (the model's load). Every turn's text is new to the run (a counter is
appended), so the embedding cache never answers: the figure is the cost of words the listener
has not heard. Ratios to v0 are what to compare across machines; it prints the CPU it ran on.

    python benchmarks/hearing_speed.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import torch
import tyro
import yaml

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.evaluation.machine import cpu_model

LINES = Path(dialogue_gym.__file__).parent / "user" / "data" / "counterfactual_dev.yaml"
CONFIGS = (
    ("EmpathyDialogueText-v0", {}),
    ("EmpathyDialogueText-v1", {"listener": "lexical", "recogniser": "lexical"}),
    ("EmpathyDialogueText-v1", {"recogniser": "lexical"}),
    ("EmpathyDialogueText-v1", {}),
)


@dataclass
class Args:
    steps: int = 300
    """timed turns per configuration"""
    users: int = 8
    """users of the vector env (gym.make_vec) timed with and without one embedding pass a step"""


def time_steps(env_id: str, kwargs: dict, lines: list[str], steps: int, tag: str) -> float:
    """Milliseconds per step, each turn's words new to the listener."""
    env = gym.make(env_id, voice="template", scenarios="test", **kwargs)
    env.reset(seed=0)
    k = 0

    def turn() -> None:
        nonlocal k
        *_, terminated, truncated, _ = env.step(f"{lines[k % len(lines)]} ({tag} {k})")
        k += 1
        if terminated or truncated:
            env.reset(seed=k)

    for _ in range(20):
        turn()
    started = time.perf_counter()
    for _ in range(steps):
        turn()
    return (time.perf_counter() - started) / steps * 1000


def time_vector(users: int, lines: list[str], steps: int, batched: bool, tag: str) -> float:
    """Milliseconds per user-turn of ``gym.make_vec("EmpathyDialogueText-v1", users)``, with
    the vector env's one embedding pass a step (``batched``) or with each user embedding its own
    words."""
    import dialogue_gym.envs.vector as vector

    saved = vector.prime_embeddings
    if not batched:
        vector.prime_embeddings = lambda envs, actions: 0
    try:
        envs = gym.make_vec(
            "EmpathyDialogueText-v1", num_envs=users, voice="template", scenarios="test"
        )
        envs.reset(seed=0)
        rounds = max(1, steps // users)
        k = 0

        def turn() -> None:
            nonlocal k
            envs.step([f"{lines[(k + i) % len(lines)]} ({tag} {k} {i})" for i in range(users)])
            k += 1

        for _ in range(3):
            turn()
        started = time.perf_counter()
        for _ in range(rounds):
            turn()
        return (time.perf_counter() - started) / (rounds * users) * 1000
    finally:
        vector.prime_embeddings = saved


def main(args: Args) -> None:
    torch.set_num_threads(1)
    styles = yaml.safe_load(LINES.read_text("utf-8"))["styles"]
    lines = [line for by in styles["natural"].values() for line in by]
    print(f"{cpu_model()}, 1 torch thread, {args.steps} steps\n")
    base = None
    for i, (env_id, kwargs) in enumerate(CONFIGS):
        ms = time_steps(env_id, kwargs, lines, args.steps, f"run{i}")
        base = base or ms
        print(f"{env_id} {kwargs or '(defaults)'}: {ms:.2f} ms/step ({ms / base:.1f}x v0)")
    for batched in (False, True):
        ms = time_vector(args.users, lines, args.steps, batched, f"vec{batched}")
        how = "one embedding pass a step" if batched else "each user embeds its own words"
        print(f"make_vec EmpathyDialogueText-v1 x{args.users}, {how}: {ms:.2f} ms/user-turn")


if __name__ == "__main__":
    main(tyro.cli(Args))
