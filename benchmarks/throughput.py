"""Throughput of EmpathyDialogue-v0 against CartPole-v1, measured in one run.

CleanRL style: one readable script, a dataclass of arguments. Targets (DESIGN §7):
raw ``step`` with the template voice >= 1/3 of CartPole's steps/s through ``gym.make``;
SB3 PPO training throughput >= 90% of PPO on CartPole; and the LLM voice's user turns per
second in one env, per backend: ``llama_cpp`` (the embedded GGUF), ``transformers`` (the
same GGUF, de-quantised, on the CPU) and ``openai`` (llama.cpp's server with the same GGUF,
started on loopback by this script). Ratios are what matter on a noisy machine: both sides
of each ratio are measured in the same run, interleaved, best of ``repeats``.

    python benchmarks/throughput.py                # full run, writes benchmarks/results/throughput.json
    python benchmarks/throughput.py --quick        # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)

ENV_ID = "EmpathyDialogue-v0"


@dataclass
class Args:
    steps: int = 20_000
    """raw env steps per measurement"""
    repeats: int = 3
    """measurements per env; the best is kept"""
    ppo_steps: int = 8192
    """PPO timesteps per measurement"""
    ppo_repeats: int = 3
    """PPO measurements per env"""
    llm_turns: int = 12
    """user turns with the LLM voice, per backend (0 skips them)"""
    llm_backends: str = "llama_cpp,transformers,openai"
    """comma-separated backends for the LLM voice rows"""
    out: str = "benchmarks/results/throughput.json"
    """where to write the JSON results"""
    quick: bool = False
    """a tiny smoke run"""


def raw_steps_per_second(env_id: str, steps: int, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(env.action_space.n, size=steps)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


class DictCartPole(gym.ObservationWrapper):
    """CartPole with its observation split over as many Dict keys as EmpathyDialogue-v0 has.

    A control: it separates SB3's per-key cost of ``MultiInputPolicy`` from the env's own cost.
    """

    def __init__(self, env: gym.Env, n_keys: int) -> None:
        super().__init__(env)
        self.n_keys = n_keys
        box = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.observation_space = gym.spaces.Dict({f"k{i}": box for i in range(n_keys)})

    def observation(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        return {f"k{i}": obs[i % 4 : i % 4 + 1].copy() for i in range(self.n_keys)}


def ppo_steps_per_second(
    env_id: str, policy: str, steps: int, flatten: bool = False, dict_keys: int = 0, **kwargs
):
    import torch
    from stable_baselines3 import PPO

    torch.manual_seed(0)
    env = gym.make(env_id, **kwargs)
    if flatten:
        env = gym.wrappers.FlattenObservation(env)
    if dict_keys:
        env = DictCartPole(env, dict_keys)
    model = PPO(policy, env, n_steps=1024, batch_size=64, seed=0, verbose=0, device="cpu")
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    env.close()
    return steps / elapsed


def llm_turns_per_second(turns: int, backend: str | dict = "llama_cpp") -> dict[str, float]:
    env = gym.make(ENV_ID, voice="llm", agent_voice="template", scenarios="test", backend=backend)
    env.reset(seed=0)  # loads the model once
    start, n, chars = time.perf_counter(), 0, 0
    while n < turns:
        _, _, term, trunc, info = env.step(n % 8)
        chars += len(info["user_utterance"])
        n += 1
        if term or trunc:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return {"turns_per_s": n / elapsed, "mean_user_chars": chars / n}


def backend_turns_per_second(name: str, turns: int) -> dict[str, float]:
    """One env's LLM-voice turns/s with backend ``name``, all on the embedded SmolLM2 GGUF."""
    name = name.strip()
    if name == "transformers":
        return llm_turns_per_second(turns, {"name": "transformers", "device": "cpu"})
    if name == "openai":
        from dialogue_gym.backends.llama_server import LlamaServer

        with LlamaServer() as server:
            return llm_turns_per_second(turns, f"openai:{server.url}")
    return llm_turns_per_second(turns, name)


def best(fn, repeats: int) -> float:
    return max(fn() for _ in range(repeats))


def main(args: Args) -> dict:
    if args.quick:
        args = dataclasses.replace(
            args, steps=2000, repeats=1, ppo_steps=1024, ppo_repeats=1, llm_turns=0
        )
    results: dict = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"Python {platform.python_version()}",
        "args": dataclasses.asdict(args),
    }
    # Interleave the two envs so both see the same machine load.
    # The raw env (reward=None: the env's own sparse bonus) against CartPole is the target;
    # gym.make's default adds the "sparse" reward wrapper, measured beside it.
    empathy, wrapped, cartpole = [], [], []
    for _ in range(args.repeats):
        empathy.append(raw_steps_per_second(ENV_ID, args.steps, voice="template", reward=None))
        wrapped.append(raw_steps_per_second(ENV_ID, args.steps, voice="template"))
        cartpole.append(raw_steps_per_second("CartPole-v1", args.steps))
    results["raw_steps_per_s"] = {
        "EmpathyDialogue-v0 (reward=None)": max(empathy),
        "EmpathyDialogue-v0 (default reward='sparse')": max(wrapped),
        "CartPole-v1": max(cartpole),
    }
    results["raw_ratio"] = max(empathy) / max(cartpole)
    results["raw_ratio_default_reward"] = max(wrapped) / max(cartpole)

    n_keys = len(gym.make(ENV_ID, voice="template").observation_space.spaces)
    ppo = {"dict": [], "flat": [], "cartpole": [], "cartpole_dict": []}
    for _ in range(args.ppo_repeats):
        ppo["dict"].append(
            ppo_steps_per_second(ENV_ID, "MultiInputPolicy", args.ppo_steps, voice="template")
        )
        ppo["flat"].append(
            ppo_steps_per_second(
                ENV_ID, "MlpPolicy", args.ppo_steps, flatten=True, voice="template"
            )
        )
        ppo["cartpole"].append(ppo_steps_per_second("CartPole-v1", "MlpPolicy", args.ppo_steps))
        ppo["cartpole_dict"].append(
            ppo_steps_per_second(
                "CartPole-v1", "MultiInputPolicy", args.ppo_steps, dict_keys=n_keys
            )
        )
    results["ppo_steps_per_s"] = {
        "EmpathyDialogue-v0 (MultiInputPolicy)": max(ppo["dict"]),
        "EmpathyDialogue-v0 (FlattenObservation + MlpPolicy)": max(ppo["flat"]),
        "CartPole-v1 (MlpPolicy)": max(ppo["cartpole"]),
        f"CartPole-v1 (split into {n_keys} Dict keys, MultiInputPolicy)": max(ppo["cartpole_dict"]),
    }
    results["ppo_ratio_dict"] = max(ppo["dict"]) / max(ppo["cartpole"])
    results["ppo_ratio_flat"] = max(ppo["flat"]) / max(ppo["cartpole"])
    # Both sides pay SB3's per-key MultiInputPolicy cost: what is left is the env's.
    results["ppo_ratio_dict_vs_dict"] = max(ppo["dict"]) / max(ppo["cartpole_dict"])
    if args.llm_turns:
        results["llm_voice"] = {
            name: backend_turns_per_second(name, args.llm_turns)
            for name in args.llm_backends.split(",")
            if name.strip()
        }

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return results


def report(r: dict) -> str:
    raw, ppo = r["raw_steps_per_s"], r["ppo_steps_per_s"]
    lines = [
        f"machine: {r['machine']}",
        "",
        "| measurement | steps/s |",
        "|---|---:|",
        *(f"| raw step, {k} | {v:,.0f} |" for k, v in raw.items()),
        *(f"| PPO training, {k} | {v:,.0f} |" for k, v in ppo.items()),
        "",
        f"raw step ratio (target >= 0.33): {r['raw_ratio']:.2f}",
        f"raw step ratio with the default reward wrapper: {r['raw_ratio_default_reward']:.2f}",
        f"PPO ratio, MultiInputPolicy (target >= 0.90): {r['ppo_ratio_dict']:.2f}",
        f"PPO ratio, flattened + MlpPolicy (target >= 0.90): {r['ppo_ratio_flat']:.2f}",
        f"PPO ratio, MultiInputPolicy vs CartPole as a Dict: {r['ppo_ratio_dict_vs_dict']:.2f}",
    ]
    for name, llm in r.get("llm_voice", {}).items():
        lines.append(
            f"LLM voice (embedded SmolLM2-135M), backend {name}: {llm['turns_per_s']:.2f} user "
            f"turns/s ({llm['mean_user_chars']:.0f} chars a turn)"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL)."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse_args())
