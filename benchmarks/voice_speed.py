"""The LLM user voice against its own engine: turns/s per backend, before and after (issue 13).

CleanRL style: one readable script, a dataclass of arguments. What one measurement is: one env,
``gym.make("EmpathyDialogue-v0", voice="llm", agent_voice="template", scenarios="test")``,
``turns`` user turns (a reset counts as one: the opening line) with the voice's own sampling
(48 new tokens at most), all with the embedded SmolLM2-135M-Instruct GGUF. The rows:

- ``llama_cpp before``: the in-process backend as it was, prompts read whole from an empty
  context with llama-cpp-python's default prompt threads (every core);
- ``llama_cpp after``: the backend's defaults now (prompt threads = ``n_threads``, the KV state
  cache: prompts read in 32-token blocks, prefix states reused);
- ``llama_server before`` / ``after``: llama.cpp's OpenAI-compatible server through the
  ``openai`` backend, started as :class:`LlamaServer` started it before (the server's own
  defaults: every core for prompts, ``logits_all``, no state cache) and as it does now;
- ``engine``: llama-cpp-python itself on the exact chats the voice sent (recorded from an
  untimed run, same seeds and sampling): for each, an empty context, the whole prompt read,
  the reply sampled; threads as the backend's now. The voice's ratio is its turns/s over this.

Every row runs once per repeat, in an order rotated each repeat (so that all see the same spells
of load), each from a cold state (the in-process caches cleared, fresh servers); per row the best
repeat is kept. Phases: ``quiet`` (the machine as it is: its load average is recorded) and
``loaded`` (``burners`` extra processes spinning on the CPU for the whole phase).

    python benchmarks/voice_speed.py            # writes benchmarks/results/voice_speed.json
    python benchmarks/voice_speed.py --quick    # a smoke run: 2 turns, 1 repeat, quiet only
    python benchmarks/voice_speed.py --server-factors --out benchmarks/results/voice_speed_server.json

``--server-factors`` replays the recorded calls instead: against the engine, the in-process
backend, and llama.cpp's server started four ways, from how ``LlamaServer`` started it
before to how it does now, one setting changed at a time (the profile of the server path).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.evaluation.machine import cpu_model
from dialogue_gym.llm.backends import GenerationParams, get_backend
from dialogue_gym.llm.backends.llama_cpp import default_model_path, default_threads
from dialogue_gym.llm.backends.llama_server import LlamaServer

ENV_ID = "EmpathyDialogue-v0"
ROWS = (
    "engine",
    "llama_cpp before",
    "llama_cpp after",
    "llama_server before",
    "llama_server after",
)


@dataclass
class Args:
    turns: int = 8
    """user turns per measurement (a reset is one: the opening line)"""
    repeats: int = 2
    """measurements per row and phase; the best is kept"""
    phases: str = "quiet,loaded"
    """which phases to run: quiet (the machine as it is), loaded (with CPU burners)"""
    burners: int = 2
    """busy processes running through the loaded phase"""
    backends: str = "llama_cpp,llama_server"
    """which backends' rows to run (the engine row always runs)"""
    seed: int = 0
    """the episode's seed (the same episode for every row)"""
    out: str = "benchmarks/results/voice_speed.json"
    """where to write the JSON results"""
    quick: bool = False
    """a smoke run: 2 turns, 1 repeat, the quiet phase only"""
    server_factors: bool = False
    """instead of the rows: the recorded calls against the server, one setting changed at a time"""
    resummarise: bool = False
    """measure nothing: recompute the summaries of the run saved at --out and print them"""


# --------------------------------------------------------------------------- the machine


def machine() -> dict[str, Any]:
    """What the numbers ran on, and how busy it was when asked."""
    import llama_cpp

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "threads": default_threads(),
    }


def uptime() -> str:
    """``uptime``'s line (the load averages over 1, 5 and 15 minutes)."""
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def machine_load(n: int) -> Iterator[dict[str, Any]]:
    """``n`` processes spinning on the CPU while the block runs (the loaded phase's
    competitors); yields the phase's record, with the machine's load at its start and end."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    out: dict[str, Any] = {"uptime_start": uptime(), "burners": n, "repeats": {}}
    try:
        time.sleep(2.0 if burners else 0.0)  # let the burners take their cores
        yield out
    finally:
        out["uptime_end"] = uptime()
        for p in burners:
            p.terminate()
        for p in burners:
            p.wait(timeout=10)


@contextlib.contextmanager
def started(servers: Mapping[str, LlamaServer]) -> Iterator[Mapping[str, LlamaServer]]:
    """The servers running while the block runs, stopped however it ends."""
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()


# --------------------------------------------------------------------------- one measurement


class Recorder:
    """A backend proxy that keeps every call: the chats, the sampling and the replies."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", "recorder")
        self.calls: list[tuple[list, GenerationParams, list[str]]] = []

    def generate(self, chats: Sequence, params: GenerationParams) -> list[str]:
        replies = self.inner.generate(chats, params)
        self.calls.append((list(chats), params, list(replies)))
        return replies


def play(spec: str | Mapping[str, Any], turns: int, seed: int, in_process: bool) -> dict[str, Any]:
    """One env with the LLM voice on ``spec``: ``turns`` user turns, timed.

    The model loads (and a server's first request runs) in an untimed reset first; the timed
    part starts from a fresh ``reset(seed=seed)``.
    """
    backend = get_backend(spec)
    env = gym.make(ENV_ID, voice="llm", agent_voice="template", scenarios="test", backend=spec)
    voice = env.unwrapped.voice
    env.reset(seed=seed + 1000)  # loads the model; another episode, so nothing is cached for ours
    cache = getattr(backend, "kv_cache", None)
    if cache is not None:
        cache.clear()  # every row starts cold
    recorder = Recorder(backend)
    voice.attach(recorder)
    stats0 = dict(getattr(backend, "stats", {}))
    kv0 = dict(cache.stats) if cache is not None else {}
    start, cpu = time.perf_counter(), time.process_time()
    _, info = env.reset(seed=seed)
    lines, n, step = [info["user_utterance"]], 1, 0
    while n < turns:
        _, _, term, trunc, info = env.step(step % 8)
        lines.append(info["user_utterance"])
        n, step = n + 1, step + 1
        if (term or trunc) and n < turns:
            lines.append(env.reset()[1]["user_utterance"])
            n += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    env.close()
    stats = getattr(backend, "stats", {})
    delta = {k: stats[k] - stats0.get(k, 0) for k in stats if isinstance(stats[k], int | float)}
    row: dict[str, Any] = {
        "turns": n,
        "seconds": wall,
        "turns_per_s": n / wall,
        "calls": len(recorder.calls),
        "completion_tokens": delta.get("completion_tokens"),
        "prompt_tokens": delta.get("prompt_tokens"),
        "prompt_tokens_read": delta.get("prompt_tokens_read", delta.get("prompt_tokens")),
        "lines": lines,
    }
    if in_process:
        row["turns_per_cpu_s"] = n / cpu
    if cache is not None:
        row["kv_cache"] = {
            **{k: v - kv0.get(k, 0) for k, v in cache.stats.items()},
            "nbytes": cache.nbytes,
            "states": len(cache),
        }
        sizes = cache.state_sizes()
        row["kv_state_bytes_per_token"] = (
            statistics.median(s / t for s, t in zip(sizes, cache.state_tokens(), strict=True))
            if sizes
            else None
        )
    row["_calls"] = recorder.calls
    return row


def engine(
    llm: Any, calls: list[tuple[list, GenerationParams, list[str]]], turns: int
) -> dict[str, Any]:
    """llama-cpp-python on the recorded chats: each from an empty context, whole prompt read.

    ``turns``: the user turns the recorded episode spoke with these calls (a turn can take
    more than one call: the voice resamples a line that fails its checks), so that the
    engine's turns/s is the same work's.
    """
    prompt = completion = 0
    start, cpu = time.perf_counter(), time.process_time()
    for chats, params, _ in calls:
        for chat, seed in zip(chats, params.seeds_for(len(chats)), strict=True):
            llm.reset()
            out = llm.create_chat_completion(
                messages=[{"role": m["role"], "content": m["content"]} for m in chat],
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                repeat_penalty=1.1,
                seed=None if seed is None else int(seed) % 2**32,
                stop=list(params.stop) or None,
            )
            prompt += out["usage"]["prompt_tokens"]
            completion += out["usage"]["completion_tokens"]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = sum(len(chats) for chats, _, _ in calls)
    return {
        "turns": turns,
        "calls": n,
        "seconds": wall,
        "turns_per_s": turns / wall,
        "turns_per_cpu_s": turns / cpu,
        "prompt_tokens": prompt,
        "prompt_tokens_read": prompt,
        "completion_tokens": completion,
        "tokens_per_s": (prompt + completion) / wall,
    }


#: The server's settings, from how LlamaServer started it before to how it does now, one
#: change at a time.
SERVER_FACTORS = {
    "server defaults (before)": {
        "kv_cache_bytes": 0,
        "n_threads_batch": os.cpu_count(),
        "logits_all": True,
    },
    "prompt threads = n_threads": {"kv_cache_bytes": 0, "logits_all": True},
    "+ logits_all off": {"kv_cache_bytes": 0},
    "+ state cache (after)": {},
}


def replay(backend: Any, calls: list[tuple[list, GenerationParams, list[str]]]) -> dict:
    """The recorded calls through ``backend``, timed; whether the replies are the recorded."""
    start = time.perf_counter()
    got = [backend.generate(chats, params) for chats, params, _ in calls]  # every call, timed
    seconds = time.perf_counter() - start
    same = [g == replies for g, (_, _, replies) in zip(got, calls, strict=True)]
    return {"seconds": seconds, "same_replies": all(same), "calls_same": sum(same)}


def server_factors(args: Args, llm: Any, calls: list, loaded: bool) -> dict[str, Any]:
    """The recorded calls against the server with one setting changed at a time, against
    the engine (llama-cpp-python in this process) and the in-process backend: per row the
    best of ``repeats``, in rotated order."""
    with machine_load(args.burners if loaded else 0) as out:
        for r in range(args.repeats):
            factors = {name: LlamaServer(**kw) for name, kw in SERVER_FACTORS.items()}
            with started(factors) as servers:
                rows = ["engine", "llama_cpp (after)", *servers]
                for name in rows[r % len(rows) :] + rows[: r % len(rows)]:
                    if name == "engine":
                        start = time.perf_counter()
                        engine(llm, calls, args.turns)
                        row = {"seconds": time.perf_counter() - start}
                    elif name == "llama_cpp (after)":
                        backend = get_backend("llama_cpp")
                        backend.kv_cache.clear()
                        row = replay(backend, calls)
                    else:
                        spec = {"name": "openai", "base_url": servers[name].url, "model": "m"}
                        row = replay(
                            get_backend({**spec, "timeout": 600.0, "max_retries": 0}), calls
                        )
                    print(f"[server factors {r}] {name}: {row['seconds']:.1f} s", flush=True)
                    out["repeats"].setdefault(name, []).append(row)
    eng = min(row["seconds"] for row in out["repeats"]["engine"])
    out["best"] = {
        name: {
            "seconds": min(row["seconds"] for row in reps),
            "engine_over_this": eng / min(row["seconds"] for row in reps),
            "same_replies": all(row.get("same_replies", True) for row in reps),
        }
        for name, reps in out["repeats"].items()
    }
    return out


def http_round_trip(url: str, n: int = 20) -> float:
    """Median seconds of ``GET /models`` on the server: HTTP on loopback, no model work."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
            response.read()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- the run


def run_phase(args: Args, phase: str, rows: list[str], llm: Any, calls: list) -> dict[str, Any]:
    """Every row ``repeats`` times, in rotated order; per row the best repeat."""
    with machine_load(args.burners if phase == "loaded" else 0) as out:
        for r in range(args.repeats):
            wanted: dict[str, LlamaServer] = {}
            if "llama_server before" in rows:
                # As LlamaServer started it before: the server's own defaults.
                wanted["llama_server before"] = LlamaServer(
                    kv_cache_bytes=0, n_threads_batch=os.cpu_count(), logits_all=True
                )
            if "llama_server after" in rows:
                wanted["llama_server after"] = LlamaServer()
            with started(wanted) as servers:
                specs: dict[str, Any] = {
                    "llama_cpp before": {
                        "name": "llama_cpp",
                        "n_threads_batch": os.cpu_count(),
                        "kv_cache_bytes": 0,
                    },
                    "llama_cpp after": "llama_cpp",
                }
                for name, server in servers.items():
                    specs[name] = {
                        "name": "openai",
                        "base_url": server.url,
                        "model": "default",
                        "timeout": 600.0,
                        "max_retries": 0,
                    }
                order = rows[r % len(rows) :] + rows[: r % len(rows)]
                for name in order:
                    if name == "engine":
                        row = engine(llm, calls, args.turns)
                    else:
                        row = play(specs[name], args.turns, args.seed, name.startswith("llama_cpp"))
                        row.pop("_calls")
                    if name == "llama_server after":
                        row["http_round_trip_s"] = http_round_trip(servers[name].url)
                    print(f"[{phase} {r}] {name}: {row['turns_per_s']:.3f} turns/s", flush=True)
                    out["repeats"].setdefault(name, []).append(row)
    summarise(out)
    return out


def summarise(out: dict[str, Any]) -> None:
    """Per row the best repeat, its ratio to the engine's best, and whether the words agree."""
    best = {
        name: max(reps, key=lambda row: row["turns_per_s"]) for name, reps in out["repeats"].items()
    }
    eng = best["engine"]["turns_per_s"]
    keep = (
        "turns_per_cpu_s",
        "prompt_tokens",
        "prompt_tokens_read",
        "completion_tokens",
        "calls",
        "http_round_trip_s",
        "kv_state_bytes_per_token",
    )
    out["best"] = {
        name: {
            "turns_per_s": row["turns_per_s"],
            "ratio_to_engine": row["turns_per_s"] / eng,
            **{k: row[k] for k in keep if k in row},
        }
        for name, row in best.items()
    }
    lines = {
        name: reps[0].get("lines") for name, reps in out["repeats"].items() if name != "engine"
    }
    reference = lines.get("llama_cpp before") or next(iter(lines.values()), None)
    out["same_words_as_llama_cpp_before"] = {name: ls == reference for name, ls in lines.items()}


def report(result: Mapping[str, Any]) -> str:
    """The markdown table of one run (docs/benchmarks.md takes it as is)."""
    out = []
    for phase, res in result["phases"].items():
        out.append(
            f"\n**{phase}** (start: `{res['uptime_start']}`; end: `{res['uptime_end']}`; "
            f"{res['burners']} burners)\n"
        )
        out.append(
            "| row | turns/s | / engine | turns per CPU-s | prompt tokens read / sent | same words |"
        )
        out.append("|---|---:|---:|---:|---:|:---:|")
        for name in ROWS:
            row = res["best"].get(name)
            if row is None:
                continue
            cpu = f"{row['turns_per_cpu_s']:.3f}" if "turns_per_cpu_s" in row else "(server)"
            read = (
                f"{row['prompt_tokens_read']} / {row['prompt_tokens']}"
                if row.get("prompt_tokens")
                else ""
            )
            same = res["same_words_as_llama_cpp_before"].get(name, "")
            same = {True: "yes", False: "no"}.get(same, "") if same != "" else ""
            out.append(
                f"| {name} | {row['turns_per_s']:.3f} | {row['ratio_to_engine']:.2f} | {cpu} | "
                f"{read} | {same} |"
            )
    for phase, res in result.get("server_factors", {}).items():
        out.append(
            f"\n**server settings, {phase}** (start: `{res['uptime_start']}`; end: "
            f"`{res['uptime_end']}`; {res['burners']} burners)\n"
        )
        out.append("| row | seconds for the calls | engine / row | same replies |")
        out.append("|---|---:|---:|:---:|")
        for name, row in res["best"].items():
            same = "yes" if row["same_replies"] else "no"
            out.append(
                f"| {name} | {row['seconds']:.1f} | {row['engine_over_this']:.2f} | "
                f"{same if name != 'engine' else ''} |"
            )
    return "\n".join(out)


def resummarise(path: Path) -> dict[str, Any]:
    """The summaries of a saved run, recomputed from its raw repeats."""
    result = json.loads(path.read_text())
    for res in result["phases"].values():
        for row in res["repeats"].get("engine", []):
            if "calls" not in row:  # saved before the engine counted user turns, not calls
                row["calls"] = row["turns"]
                row["turns"] = result["args"]["turns"]
                row["turns_per_s"] = row["turns"] / row["seconds"]
                cpu = row["calls"] / row["turns_per_cpu_s"]
                row["turns_per_cpu_s"] = row["turns"] / cpu
        summarise(res)
    return result


def main(args: Args) -> dict[str, Any]:
    if args.resummarise:
        result = resummarise(Path(args.out))
        print(report(result))
        Path(args.out).write_text(json.dumps(result, indent=1))
        return result
    if args.quick:
        args = dataclasses.replace(args, turns=2, repeats=1, phases="quiet")
    backends = {b.strip() for b in args.backends.split(",") if b.strip()}
    rows = [r for r in ROWS if r == "engine" or r.split()[0] in backends]
    from llama_cpp import Llama

    threads = default_threads()
    llm = Llama(
        model_path=str(default_model_path()),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    # The exact chats the voice sends in this episode (its words are the same on every row).
    calls = play("llama_cpp", args.turns, args.seed, True)["_calls"]
    result: dict[str, Any] = {
        "args": dataclasses.asdict(args),
        "machine": machine(),
        "phases": {},
    }
    for phase in [p.strip() for p in args.phases.split(",") if p.strip()]:
        if args.server_factors:
            result.setdefault("server_factors", {})[phase] = server_factors(
                args, llm, calls, loaded=phase == "loaded"
            )
        else:
            result["phases"][phase] = run_phase(args, phase, rows, llm, calls)
    llm.close()
    print(report(result))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def parse_args(argv: list[str] | None = None) -> Args:
    return tyro.cli(Args, args=argv, description=__doc__.splitlines()[0])


if __name__ == "__main__":
    main(parse_args())
