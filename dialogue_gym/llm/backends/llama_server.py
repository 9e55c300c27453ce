"""llama.cpp's OpenAI-compatible server as a child process, for tests, benchmarks and demos.

:class:`LlamaServer` runs ``python -m llama_cpp.server`` (from ``llama-cpp-python[server]``)
on loopback with a GGUF model (by default the embedded SmolLM2-135M-Instruct), waits until
it answers ``GET /v1/models`` and stops it on exit. Point the ``openai`` backend at its
:attr:`~LlamaServer.url`.

Example:
    >>> server = LlamaServer(port=8123)
    >>> server.url, server.running
    ('http://127.0.0.1:8123/v1', False)

    Typical use (starts a process, so not run here)::

        with LlamaServer() as server:
            env = gym.make("EmpathyDialogue-v0", backend=f"openai:{server.url}")
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO

from dialogue_gym.llm.backends.base import BackendError

__all__ = ["LlamaServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    Example:
        >>> 0 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
        n_threads: CPU threads for the server; ``None`` leaves llama.cpp's default.
        extra_args: More command-line arguments for ``llama_cpp.server``.
        startup_timeout: Seconds to wait for the server to answer.

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
    ) -> None:
        if model_path is None:
            from dialogue_gym.llm.backends.llama_cpp import default_model_path

            model_path = default_model_path()
        self.model_path = Path(model_path)
        self.host = host
        self.port = int(port) if port is not None else free_port(host)
        self.n_ctx = int(n_ctx)
        self.n_threads = n_threads
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
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.model_path),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.n_ctx),
        ]
        if self.n_threads is not None:
            cmd += ["--n_threads", str(int(self.n_threads))]
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
