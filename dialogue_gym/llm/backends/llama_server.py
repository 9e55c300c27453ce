"""llama.cpp's OpenAI-compatible server as a child process, for tests, benchmarks and demos.

:class:`LlamaServer` runs llama-cpp-python's server (``llama_cpp.server``, from
``llama-cpp-python[server]``) on loopback with a GGUF model (by default the embedded
SmolLM2-135M-Instruct), waits until it answers ``GET /v1/models`` and stops it on exit. Point
the ``openai`` backend at its :attr:`~LlamaServer.url`.

Settings that the server's own defaults get wrong for this use (``docs/backends.md``):

- **threads**: the server reads prompts with every core (``n_threads_batch``); on a machine
  shared with other jobs, llama.cpp's OpenMP threads spin at each barrier waiting for a core
  another process holds, and a turn took 1.5-4x as long (the busier, the worse). Both
  counts default to
  ``n_threads`` (half the cores), as in the ``llama_cpp`` backend;
- **logits_all**: on by default in the server, it computes and copies the 49,152 logits of
  every prompt token; nothing here asks for prompt logprobs, so it is off;
- **the KV state cache**: by default the server runs through :func:`serve`, which gives its
  model the ``llama_cpp`` backend's :class:`~dialogue_gym.llm.backends.llama_cpp.PromptStateCache`:
  prompts read in fixed blocks, prefix states kept per conversation. Without it the server
  reuses only the previous request's prefix, KV of generated tokens included, so the same
  seed gave the same text only after the same previous request; with it, always, and the
  same text as the in-process backend.

Example:
    >>> server = LlamaServer(port=8123)
    >>> server.url, server.running
    ('http://127.0.0.1:8123/v1', False)

    Typical use (starts a process, so not run here)::

        with LlamaServer() as server:
            env = gym.make("EmpathyDialogue-v0", backend=f"openai:{server.url}")
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from dialogue_gym.llm.backends.base import BackendError
from dialogue_gym.ports import free_port

__all__ = ["LlamaServer", "serve"]


def _stop(process: subprocess.Popen[bytes], log: IO[bytes] | None) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    if log is not None:
        log.close()


class LlamaServer:
    """``python -m llama_cpp.server`` on loopback, started and stopped by this object.

    Args:
        model_path: The GGUF file; ``None`` means the embedded SmolLM2-135M-Instruct.
        host: The address to listen on (keep it on loopback unless you mean otherwise).
        port: The port; ``None`` picks a free one.
        n_ctx: Context window in tokens.
        n_threads: CPU threads for generating; ``None`` means half the cores (at least 1,
            at most 16), as the ``llama_cpp`` backend.
        extra_args: More command-line arguments for ``llama_cpp.server`` (they come last,
            so they override the settings above, e.g. ``("--logits_all", "True")``).
        startup_timeout: Seconds to wait for the server to answer.
        n_threads_batch: CPU threads for reading prompts; ``None`` means ``n_threads``
            (the server's own default, every core, was 1.5-4x slower on a shared machine;
            on one with cores to spare, pass the core count).
        logits_all: Compute the logits of every prompt token (only prompt logprobs need it).
        kv_cache_bytes: Size of the server's KV state cache (see :func:`serve`); 0 runs the
            plain ``llama_cpp.server``.
        kv_block: Block of the chunked prompt evaluation, in tokens.

    Attributes:
        url: The OpenAI API root, ``http://host:port/v1``.
        log_path: Where the server's output goes (a temporary file while it runs).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 120.0,
        n_threads_batch: int | None = None,
        logits_all: bool = False,
        kv_cache_bytes: int | None = None,
        kv_block: int | None = None,
    ) -> None:
        from dialogue_gym.llm.backends.llama_cpp import (
            DEFAULT_KV_BLOCK,
            DEFAULT_KV_CACHE_BYTES,
            default_model_path,
            default_threads,
        )

        if model_path is None:
            model_path = default_model_path()
        self.model_path = Path(model_path)
        self.host = host
        self.port = int(port) if port is not None else free_port(host)
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads is not None else default_threads()
        self.n_threads_batch = (
            int(n_threads_batch) if n_threads_batch is not None else self.n_threads
        )
        self.logits_all = bool(logits_all)
        self.kv_cache_bytes = int(
            kv_cache_bytes if kv_cache_bytes is not None else DEFAULT_KV_CACHE_BYTES
        )
        self.kv_block = int(kv_block if kv_block is not None else DEFAULT_KV_BLOCK)
        self.extra_args = tuple(extra_args)
        self.startup_timeout = float(startup_timeout)
        self.log_path: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def url(self) -> str:
        """The base URL for the ``openai`` backend."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The command line that starts the server."""
        if self.kv_cache_bytes > 0:
            entry = [
                "-m",
                "dialogue_gym.llm.backends.llama_server",
                "--kv_cache_bytes",
                str(self.kv_cache_bytes),
                "--kv_block",
                str(self.kv_block),
            ]
        else:
            entry = ["-m", "llama_cpp.server"]
        cmd = [
            sys.executable,
            *entry,
            "--model",
            str(self.model_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads_batch),
            "--logits_all",
            str(self.logits_all),
        ]
        return cmd + list(self.extra_args)

    def start(self) -> LlamaServer:
        """Start the server and wait until it answers.

        Raises:
            BackendError: The model file is missing, the server exited (its log's tail
                is in the message) or did not answer within ``startup_timeout``.
        """
        if self.running:
            return self
        if not self.model_path.is_file():
            raise BackendError(f"model file not found: {self.model_path}")
        fd, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
        log = os.fdopen(fd, "wb")
        self.log_path = Path(name)
        self._process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self._finalizer = weakref.finalize(self, _stop, self._process, log)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                hint = (
                    " (pip install 'llama-cpp-python[server]')"
                    if "ModuleNotFoundError" in tail or "No module named" in tail
                    else ""
                )
                raise BackendError(
                    f"llama.cpp server exited with code {self._process.returncode}{hint}:\n{tail}"
                )
            if self.ready():
                return self
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise BackendError(
            f"llama.cpp server at {self.url} did not answer within {self.startup_timeout:g}s:\n"
            f"{tail}"
        )

    def ready(self) -> bool:
        """Whether ``GET /v1/models`` answers 200 now."""
        try:
            with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s); safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once
            self._finalizer = None

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's output."""
        if self.log_path is None:
            return ""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()


def serve(argv: list[str] | None = None) -> None:
    """Run ``llama_cpp.server`` with the ``llama_cpp`` backend's KV state cache in its model.

    ``python -m dialogue_gym.llm.backends.llama_server [--kv_cache_bytes N] [--kv_block B]
    <llama_cpp.server arguments>``: every model the server loads reads its prompts in fixed
    blocks and keeps prefix states in its own
    :class:`~dialogue_gym.llm.backends.llama_cpp.PromptStateCache`, exactly as the
    in-process backend does, so a seeded request gives the same text whatever the server
    answered before (and the same text as the ``llama_cpp`` backend with the same settings).

    Args:
        argv: The arguments; ``None`` reads ``sys.argv[1:]``.
    """
    from dialogue_gym.llm.backends.llama_cpp import (
        DEFAULT_KV_BLOCK,
        DEFAULT_KV_CACHE_BYTES,
        PromptStateCache,
        primed_llama_class,
    )

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--kv_cache_bytes", type=int, default=DEFAULT_KV_CACHE_BYTES)
    parser.add_argument("--kv_block", type=int, default=DEFAULT_KV_BLOCK)
    ours, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

    import llama_cpp
    from llama_cpp.server import __main__ as server_main

    primed = primed_llama_class()

    class ServedLlama(primed):  # type: ignore[misc, valid-type]
        """The server's model, with a state cache of its own (states are per model)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            recurrent = getattr(self, "_is_recurrent", False) or getattr(self, "_is_hybrid", False)
            if ours.kv_cache_bytes > 0 and not recurrent:
                self.primer = PromptStateCache(ours.kv_cache_bytes, ours.kv_block)

    # The server builds its model as `llama_cpp.Llama(...)` when it loads it: this process
    # is the server's alone, so the name is ours to point at the subclass.
    llama_cpp.Llama = ServedLlama
    sys.argv = [sys.argv[0], *rest]
    server_main.main()


if __name__ == "__main__":
    serve()
