"""A bounded load test of ``dialogue-gym serve``: sessions, steps/s, p50/p99 step latency.

CleanRL style: one readable script, a dataclass of arguments. The server is the real one,
``dialogue-gym serve`` started in its own process (OpenEnv's server under uvicorn, template
voice: no LLM), or any running server given by ``--url``. The load is OpenEnv's own
WebSocket client (:class:`~dialogue_gym.integrations.openenv.DialogueEnvClient`): for each
session count, that many sessions play random strategies concurrently from one asyncio loop,
``steps`` steps each (resets when an episode ends, not timed), bounded by ``max_seconds``.

Reported per session count: steps/s over the whole load, and the latency of one step as the
client sees it (send to answer: JSON, WebSocket, OpenEnv's dispatch, the env's step), p50 and
p99. Beside it, the env's own step in process (``gym.make`` with the same options, the same
random actions, resets included), which is the floor the server adds to.

    python benchmarks/openenv_load.py           # full run, writes benchmarks/results/openenv_load.json
    python benchmarks/openenv_load.py --quick   # a smoke run
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.metadata
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES
from dialogue_gym.evaluation.machine import describe
from dialogue_gym.integrations.openenv import DialogueEnvClient, server_sessions
from dialogue_gym.ports import free_port


@dataclass
class Args:
    env: str = "EmpathyDialogue-v0"
    """the env id served"""
    sessions: str = "1,8,32,64"
    """session counts to load the server with, comma-separated"""
    steps: int = 200
    """steps per session at each session count"""
    max_seconds: float = 60.0
    """stop a session count's load after this long (the bound)"""
    in_process_steps: int = 5000
    """env steps for the in-process baseline"""
    url: str = ""
    """a running server to load instead of starting dialogue-gym serve"""
    seed: int = 0
    """seed of the actions and resets"""
    out: str = "benchmarks/results/openenv_load.json"
    """where to write the JSON results"""
    quick: bool = False
    """a tiny smoke run"""


def _action(env_id: str, index: int) -> int | str:
    return EXAMPLE_UTTERANCES[index] if env_id == "EmpathyDialogueText-v0" else index


def in_process_step_seconds(env_id: str, steps: int, seed: int) -> float:
    """Seconds per env step in process (template voice, random actions, resets included)."""
    env = gym.make(env_id, voice="template")
    actions = np.random.default_rng(seed).integers(8, size=steps).tolist()
    env.reset(seed=seed)
    start = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(_action(env_id, a))
        if term or trunc:
            env.reset()
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed / steps


async def _session(
    url: str, env_id: str, steps: int, seed: int, deadline: float, latencies: list[float]
) -> int:
    rng = np.random.default_rng(seed)
    done, episode = 0, 0
    async with DialogueEnvClient(base_url=url) as env:
        await env.reset(seed=seed)
        while done < steps and time.perf_counter() < deadline:
            action = _action(env_id, int(rng.integers(8)))
            start = time.perf_counter()
            result = await env.step(action)
            latencies.append(time.perf_counter() - start)
            done += 1
            if result.done:
                episode += 1
                await env.reset(seed=seed + 1000 * episode)
    return done


async def load(url: str, env_id: str, sessions: int, steps: int, max_seconds: float, seed: int):
    """Play ``sessions`` sessions at once; their step count, wall time and step latencies."""
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + max_seconds
    counts = await asyncio.gather(
        *(_session(url, env_id, steps, seed + i, deadline, latencies) for i in range(sessions))
    )
    return sum(counts), time.perf_counter() - start, latencies


def start_server(env_id: str, max_sessions: int) -> tuple[subprocess.Popen, str]:
    """``dialogue-gym serve`` in its own process; returns it and its URL once it answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "dialogue_gym.cli", "serve", "--env", env_id, "--voice",
        "template", "--port", str(port), "--max-sessions", str(max_sessions),
        "--idle-timeout", "0", "--log-level", "warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"dialogue-gym serve exited: {process.stderr.read().decode()}")
        try:
            server_sessions(url, timeout=2)
            return process, url
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("dialogue-gym serve did not answer within 120 s") from None
            time.sleep(0.2)


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main(args: Args) -> dict:
    if args.quick:
        args = dataclasses.replace(
            args, sessions="2", steps=10, max_seconds=20.0, in_process_steps=200
        )
    counts = [int(n) for n in args.sessions.split(",")]
    process, url = (None, args.url) if args.url else start_server(args.env, max(counts))
    rows = []
    try:
        for n in counts:
            steps, seconds, latencies = asyncio.run(
                load(url, args.env, n, args.steps, args.max_seconds, args.seed)
            )
            ms = np.asarray(latencies) * 1e3
            rows.append(
                {
                    "sessions": n,
                    "steps": steps,
                    "seconds": seconds,
                    "steps_per_s": steps / seconds,
                    "p50_ms": float(np.percentile(ms, 50)),
                    "p99_ms": float(np.percentile(ms, 99)),
                    "bounded": steps < n * args.steps,  # max_seconds cut the load short
                }
            )
    finally:
        if process is not None:
            stop_server(process)
    in_process = in_process_step_seconds(args.env, args.in_process_steps, args.seed)
    results = {
        "machine": describe(),
        "openenv_core": importlib.metadata.version("openenv-core"),
        "server": args.url or "dialogue-gym serve (subprocess, template voice)",
        "args": dataclasses.asdict(args),
        "in_process_ms_per_step": in_process * 1e3,
        "in_process_steps_per_s": 1.0 / in_process,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return results


def report(r: dict) -> str:
    lines = [
        f"machine: {r['machine']}; openenv-core {r['openenv_core']}; env {r['args']['env']}",
        "",
        "| sessions | steps | steps/s | p50 step, ms | p99 step, ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        cut = " (time bound hit)" if row["bounded"] else ""
        lines.append(
            f"| {row['sessions']} | {row['steps']}{cut} | {row['steps_per_s']:.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} |"
        )
    lines.append(
        f"| in process (one env, no server) | {r['args']['in_process_steps']} | "
        f"{r['in_process_steps_per_s']:.0f} | {r['in_process_ms_per_step']:.3f} (mean) | |"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from ``Args`` (tyro, as the other benchmarks)."""
    return tyro.cli(Args, args=argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main(parse_args())
