"""OpenEnv servers on loopback for the tests: in a thread of the test process, or as
``dialogue-gym serve`` in a process of its own.

Shared by ``tests/test_openenv.py`` and ``tests/test_trl_openenv.py``; imported as
``openenv_servers`` (the tests folder is on ``sys.path``, as for ``fake_backends``; not
``tests.openenv_servers``, since verl installs a top-level ``tests`` package of its own).
Nothing here needs OpenEnv at import time: :func:`served` skips the calling test when it is
not installed (the ``serve`` extra).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def served() -> ModuleType:
    """``dialogue_gym.integrations.openenv``, or skip the test when OpenEnv is missing."""
    pytest.importorskip("openenv", reason="OpenEnv: pip install 'dialogue_gym[serve]'")
    from dialogue_gym.integrations import openenv

    return openenv


@contextlib.contextmanager
def server_pool(default_env: str = "EmpathyDialogue-v0") -> Iterator[Callable[..., str]]:
    """``get(env_id, max_sessions=40, idle_timeout=None, **env_kwargs)``: the URL of a server
    with that configuration (OpenEnv's server under uvicorn, in a thread), started on first use
    and kept for the block; every env gets the template voice unless told otherwise."""
    openenv = served()
    running: dict[Any, str] = {}
    with contextlib.ExitStack() as stack:

        def get(
            env_id: str = default_env,
            max_sessions: int = 40,
            idle_timeout: float | None = None,
            **env_kwargs: Any,
        ) -> str:
            key = (env_id, max_sessions, idle_timeout, tuple(sorted(env_kwargs.items())))
            if key not in running:
                app = openenv.make_app(
                    env_id, {"voice": "template", **env_kwargs}, max_sessions, idle_timeout
                )
                running[key] = stack.enter_context(openenv.running_server(app))
            return running[key]

        yield get


@contextlib.contextmanager
def serve_process(*options: str, within: float = 120.0) -> Iterator[str]:
    """``dialogue-gym serve OPTIONS --port PORT`` in a process of its own, as a user starts
    it; yields its URL once ``GET /sessions`` answers, and stops it (SIGINT) afterwards.

    Args:
        *options: The command's options (``--env``, ``--voice``...); ``--port`` is added (a
            free one) and ``--log-level warning`` unless given.
        within: Seconds the server has to answer.
    """
    openenv = served()
    from dialogue_gym.ports import free_port

    port = free_port()
    command = [sys.executable, "-m", "dialogue_gym.cli", "serve", *options, "--port", str(port)]
    if "--log-level" not in options:
        command += ["--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + within
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dialogue-gym serve exited: {process.stderr.read().decode()}")
            try:
                openenv.server_sessions(url, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"dialogue-gym serve did not answer within {within} s"
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # uvicorn's clean stop
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stderr.close()
