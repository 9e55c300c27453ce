"""``dialogue-gym ui``: a local web page to talk to the simulated user and read episode logs.

Four tabs (``docs/ui.md`` is the manual): **Play** (be the agent; live plots of the emotion,
the hidden state and the reward), **Browse** (episode logs as chats with their emotion curves),
**Compare** (two runs on the same card, side by side) and **Study report** (a study's results
folder as a page). The parser is built with the others, but Gradio is imported only when the
command runs: ``dialogue-gym --help`` works without the ``ui`` extra, and ``dialogue-gym ui``
without it says in one line what to install.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="dialogue-gym")
    >>> add_ui_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["ui", "--port", "7861", "--logs", "a.jsonl", "runs/"])
    >>> args.host, args.port, args.logs, args.voice, args.env
    ('127.0.0.1', 7861, ['a.jsonl', 'runs/'], 'template', 'EmpathyDialogueText-v1')
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import sys
import time
from typing import Any

import dialogue_gym
from dialogue_gym.cli.common import UsageError, check_port, port_number
from dialogue_gym.ports import free_port
from dialogue_gym.rewards import REWARDS
from dialogue_gym.user.voices import USER_VOICES

__all__ = ["EXTRA", "add_ui_parser", "cmd_ui"]

#: The extra that installs what ``ui`` needs.
EXTRA = "ui"


def _turns(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be in [1, 100], got {value}")
    return value


def add_ui_parser(sub: Any) -> None:
    """Add the ``ui`` subcommand to ``sub`` (``ArgumentParser.add_subparsers()``'s)."""
    ui = sub.add_parser(
        "ui",
        help="a local web page: talk to the simulated user, browse and compare episode logs",
        description="Open a local web app (Gradio) on 127.0.0.1: Play (be the agent, with "
        "live plots of the emotion and the hidden state), Browse (episode logs), Compare (two "
        "runs on the same card) and Study report (a study's results folder). Needs the "
        f"'{EXTRA}' extra: pip install 'dialogue_gym[{EXTRA}]'. docs/ui.md is the manual.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ui.add_argument(
        "--port", type=port_number, default=7860, help="port (default: 7860; 0: any free)"
    )
    ui.add_argument(
        "--env",
        choices=list(dialogue_gym.ENV_IDS),
        default="EmpathyDialogueText-v1",
        help="the Play tab's env: typed words (v1 hears how they are said, v0 the strategy "
        "alone), or strategy buttons with EmpathyDialogue-v0 (default: EmpathyDialogueText-v1)",
    )
    ui.add_argument(
        "--voice",
        choices=sorted(USER_VOICES),
        default="template",
        help="the Play tab's user voice, a registered one (default: template, instant; llm: the "
        "embedded model)",
    )
    ui.add_argument(
        "--scenarios",
        default="test",
        help="the Play tab's cards: train, test or all (default: test)",
    )
    ui.add_argument(
        "--reward",
        choices=sorted(REWARDS),
        default="sparse",
        help="the Play tab's reward wrapper (default: sparse)",
    )
    ui.add_argument("--max-turns", type=_turns, default=10, help="turns per episode (default: 10)")
    ui.add_argument(
        "--logs",
        nargs="+",
        default=[],
        metavar="PATH",
        help="episode logs to open in Browse and Compare: files, folders of *.jsonl, or a "
        "study results folder",
    )
    ui.add_argument(
        "--results",
        default=None,
        metavar="FOLDER",
        help="a study results folder (<out>/<name>/) to open in Study report (and its "
        "episodes in Browse, unless --logs is given)",
    )
    ui.add_argument("--open", action="store_true", help="open the page in the default web browser")
    ui.set_defaults(func=cmd_ui)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the web app until interrupted (Ctrl-C stops it: status 130, as every command)."""
    if importlib.util.find_spec("gradio") is None or importlib.util.find_spec("pandas") is None:
        raise UsageError(f"ui needs Gradio: pip install 'dialogue_gym[{EXTRA}]'")
    for path in [*args.logs, *([args.results] if args.results else [])]:
        if not os.path.exists(path):
            raise UsageError(f"no such file or folder: {path}")
    check_port(args.host, args.port)
    port = args.port or free_port(args.host)
    # Gradio phones home for analytics by default; a local research tool should not.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from dialogue_gym.ui.app import CSS, UiDefaults, build_app

    app = build_app(
        UiDefaults(
            env_id=args.env,
            scenarios=args.scenarios,
            voice=args.voice,
            reward=args.reward,
            max_turns=args.max_turns,
            logs=tuple(args.logs),
            results=args.results,
        )
    )
    url = f"http://{args.host}:{port}"
    print(f"dialogue-gym ui: {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    if not _is_loopback(args.host):
        print(
            f"dialogue-gym ui: warning: listening on {args.host}, not loopback: anyone who "
            "reaches it can read the JSONL files this machine's paths name",
            file=sys.stderr,
            flush=True,
        )
    app.queue(default_concurrency_limit=4).launch(
        server_name=args.host,
        server_port=port,
        inbrowser=args.open,
        share=False,
        quiet=True,
        show_error=False,
        css=CSS,
        prevent_thread_lock=True,
    )
    # Served from Gradio's threads; this one waits, so that Ctrl-C ends the command as it ends
    # every other (main() prints "interrupted" and exits with 130), after closing the server.
    try:
        while True:
            time.sleep(3600)
    finally:
        app.close()
