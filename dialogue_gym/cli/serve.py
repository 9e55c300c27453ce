"""``dialogue-gym serve``: serve an env id with OpenEnv's server, one simulated user per session.

The parser is built with the others (choices from the registries), but OpenEnv is imported only
when the command runs: ``dialogue-gym --help`` works without the ``serve`` extra, and
``dialogue-gym serve`` without it says in one line what to install.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="dialogue-gym")
    >>> add_serve_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["serve", "--voice", "template", "--port", "8001"])
    >>> args.env, args.host, args.port, args.max_sessions, args.idle_timeout
    ('EmpathyDialogue-v0', '127.0.0.1', 8001, 64, 300.0)
    >>> serve_env_kwargs(args)["voice"], "recogniser" in serve_env_kwargs(args)
    ('template', False)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

import dialogue_gym
from dialogue_gym.cli.common import UsageError, add_env_args, check_port, port_number, positive_int
from dialogue_gym.envs.text import TEXT_ENV_IDS
from dialogue_gym.rewards import REWARDS
from dialogue_gym.user.recognise import RECOGNISERS

__all__ = ["EXTRA", "add_serve_parser", "cmd_serve", "serve_env_kwargs"]

#: The extra that installs what ``serve`` needs.
EXTRA = "serve"
#: The env ids that take free text (the others take a strategy index).
TEXT_ENVS = TEXT_ENV_IDS


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: never), got {text}")
    return value


def add_serve_parser(sub: Any) -> None:
    """Add the ``serve`` subcommand to ``sub`` (``ArgumentParser.add_subparsers()``'s)."""
    serve = sub.add_parser(
        "serve",
        help="serve an env over HTTP/WebSocket with OpenEnv (one simulated user per session)",
        description="Serve an env id with OpenEnv's server: each WebSocket session (OpenEnv's "
        "EnvClient, dialogue_gym.integrations.openenv.DialogueEnvClient) talks to its own "
        f"simulated user. Needs the '{EXTRA}' extra: pip install 'dialogue_gym[{EXTRA}]'. "
        "docs/serving.md is the manual.",
    )
    serve.add_argument(
        "--env",
        choices=list(dialogue_gym.ENV_IDS),
        default="EmpathyDialogue-v0",
        help="the env id every session plays (default: EmpathyDialogue-v0)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    serve.add_argument("--port", type=port_number, default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--max-sessions",
        type=positive_int,
        default=64,
        help="the most sessions at once; one more is refused with CAPACITY_REACHED (default: "
        "64; TRL needs at least its generation batch size)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=300.0,
        help="close a session after this many seconds without reset/step (0: never; default: 300)",
    )
    serve.add_argument(
        "--first-message-timeout",
        type=_seconds,
        default=30.0,
        help="close a new connection that sends nothing for this many seconds, so a silent "
        "client cannot hold a session slot (0: never; default: 30)",
    )
    add_env_args(serve, voice="llm", scenarios="train")
    serve.add_argument(
        "--reward",
        choices=sorted(REWARDS),
        default="sparse",
        help="the reward wrapper every session's env is made with (default: sparse)",
    )
    serve.add_argument(
        "--recogniser",
        choices=RECOGNISERS.names(),
        default=None,
        help="text envs only: what reads the agent's words as strategies (default: the id's own)",
    )
    serve.add_argument(
        "--backend",
        default=None,
        help="backend spec for the LLM voices, e.g. 'openai:http://127.0.0.1:8080/v1' "
        "(default: the env's, the embedded model through llama-cpp)",
    )
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's log level (default: info)",
    )
    serve.set_defaults(func=cmd_serve)


def serve_env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``gym.make``'s arguments for every session, from the parsed options.

    Raises:
        UsageError: ``--recogniser`` with an env that takes strategies.
    """
    kwargs: dict[str, Any] = {
        "voice": args.voice,
        "scenarios": args.scenarios,
        "max_turns": args.max_turns,
        "reward": args.reward,
    }
    if args.env in TEXT_ENVS:
        # The text env says the agent's own words: no realiser, a recogniser (the id's own
        # unless named) instead.
        if args.recogniser is not None:
            kwargs["recogniser"] = args.recogniser
    else:
        if args.recogniser is not None:
            raise UsageError(f"--recogniser applies to {', '.join(TEXT_ENVS)} only, not {args.env}")
        kwargs["agent_voice"] = args.agent_voice
    if args.backend is not None:
        kwargs["backend"] = args.backend
    return kwargs


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve ``args.env`` until interrupted (Ctrl-C stops it cleanly, status 0)."""
    kwargs = serve_env_kwargs(args)
    if importlib.util.find_spec("openenv") is None:
        raise UsageError(f"serve needs OpenEnv (openenv-core): pip install 'dialogue_gym[{EXTRA}]'")
    import uvicorn

    from dialogue_gym.integrations.openenv import make_app

    check_port(args.host, args.port)
    timeout = args.idle_timeout or None
    # Built before announcing: a bad env option fails here, in one line.
    app = make_app(
        args.env,
        kwargs,
        max_sessions=args.max_sessions,
        idle_timeout=timeout,
        first_message_timeout=args.first_message_timeout or None,
    )
    print(
        f"dialogue-gym serve: {args.env} on http://{args.host}:{args.port} (sessions: WebSocket "
        f"/ws, at most {args.max_sessions}; idle timeout: "
        f"{f'{timeout:g} s' if timeout else 'none'}; voice: {args.voice})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
