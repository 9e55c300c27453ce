"""The OpenEnv server's Dockerfile, checked without Docker.

This machine has no Docker daemon and no route to an image registry, so the image is never
built here (docs/scaling.md says so). What can be checked is checked: everything the image
copies exists, what it installs is declared, its torch is the one ``make install`` pins, and
the command the container runs really serves and answers the image's health check.
"""

from __future__ import annotations

import configparser
import json
import re
import urllib.request
from pathlib import Path

import pytest
from openenv_servers import ROOT, serve_process

from dialogue_gym.cli import build_parser

DOCKERFILE = ROOT / "deploy" / "openenv" / "Dockerfile"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` per instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def command() -> tuple[list[str], list[str]]:
    """The container's ENTRYPOINT and CMD (exec form)."""
    found = {word: rest for word, rest in instructions() if word in ("ENTRYPOINT", "CMD")}
    return json.loads(found["ENTRYPOINT"]), json.loads(found["CMD"])


def test_what_the_image_copies_and_installs_is_in_the_repository():
    copies = [rest.split()[:-1] for word, rest in instructions() if word == "COPY"]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    declared = set(setup["options.extras_require"])
    extras = re.findall(r"'\.\[([\w,-]+)\]'", runs)
    assert extras and all(e in declared for x in extras for e in x.split(",")), extras
    pinned = re.search(r"^TORCH \?= (\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert pinned and f"pip install --no-cache-dir {pinned.group(1)} " in runs


def test_the_containers_command_is_a_valid_serve_command():
    entrypoint, cmd = command()
    assert entrypoint[:2] == ["dialogue-gym", "serve"]
    args = build_parser().parse_args([*entrypoint[1:], *cmd])
    # Published on every interface inside the container, on the port OpenEnv's providers map.
    assert (args.host, args.port) == ("0.0.0.0", 8000)


@pytest.mark.server
def test_the_containers_command_serves_and_passes_the_health_check():
    entrypoint, cmd = command()
    options = [*entrypoint[2:], *cmd]
    for flag in ("--host", "--port"):  # loopback and a free port here
        i = options.index(flag)
        del options[i : i + 2]
    with serve_process(*options) as url:
        with urllib.request.urlopen(f"{url}/health", timeout=4) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{url}/sessions", timeout=4) as response:
            status = json.loads(response.read())
    flags = dict(zip(cmd[::2], cmd[1::2], strict=True))
    assert status["env_id"] == flags["--env"]
    assert status["max_sessions"] == int(flags["--max-sessions"])
    assert status["idle_timeout_s"] == float(flags["--idle-timeout"])
    assert status["env_kwargs"]["voice"] == flags["--voice"]
