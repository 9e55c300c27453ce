"""The ``dialogue-gym`` command line.

Subcommands (each has ``--help``; ``docs/cli.md`` is the manual):

- ``demo``: a few transcripts, then the reference policies' table;
- ``episode``: run a named reference policy; print the transcripts or save them as JSONL;
- ``play``: a person types the agent's turns against a simulated user and watches the
  emotion bar (``--strategy``: picks strategies from a menu instead);
- ``evaluate``: the table of reference policies on a split;
- ``bench``: the throughput benchmark (``dialogue_gym.evaluation.throughput``);
- ``study``: the reward study (``dialogue_gym.study.run``);
- ``train-llm``: GRPO on the text env with TRL (``dialogue_gym.integrations.train_llm``).
- ``dataset``: a policy's episodes as a Minari dataset (``dialogue_gym.cli.dataset``).
- ``serve``: an env over HTTP/WebSocket with OpenEnv's server (``dialogue_gym.cli.serve``).
- ``ui``: a local web page to play, browse and compare episodes (``dialogue_gym.cli.ui``).

Modules: :mod:`~dialogue_gym.cli.common` (argument types, env options, one-line errors),
:mod:`~dialogue_gym.cli.commands` (the commands' bodies), :mod:`~dialogue_gym.cli.play` (the
interactive loop); this package holds the parser and :func:`main`, the console script's entry
point. Every choice comes from a registry: voices, realisers, recognisers, rewards, policies.

Bad arguments print one line, ``dialogue-gym <command>: error: ...``, and exit with status 2.
Set ``DIALOGUE_GYM_DEBUG=1`` to get the traceback of an error instead.

Example:
    >>> args = build_parser().parse_args(["episode", "--policy", "oracle", "--episodes", "3"])
    >>> args.policy, args.episodes, args.voice, args.out
    ('oracle', 3, 'template', None)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import dialogue_gym
from dialogue_gym.agents.reference import REFERENCE_POLICIES
from dialogue_gym.cli.commands import (
    DEMO_POLICIES,
    cmd_bench,
    cmd_demo,
    cmd_episode,
    cmd_evaluate,
    cmd_study,
    cmd_train_llm,
)
from dialogue_gym.cli.common import (
    DEBUG_ENV,
    OneLineParser,
    UsageError,
    add_env_args,
    positive_int,
    seed_number,
)
from dialogue_gym.cli.play import QUIT_WORDS, cmd_play
from dialogue_gym.cli.serve import add_serve_parser, cmd_serve  # OpenEnv: imported on run
from dialogue_gym.cli.ui import add_ui_parser  # Gradio: imported on run
from dialogue_gym.rewards import REWARDS
from dialogue_gym.user.recognise import RECOGNISERS

__all__ = [
    "DEBUG_ENV",
    "DEMO_POLICIES",
    "PASSTHROUGH",
    "QUIT_WORDS",
    "UsageError",
    "build_parser",
    "cmd_bench",
    "cmd_demo",
    "cmd_episode",
    "cmd_evaluate",
    "cmd_play",
    "cmd_serve",
    "cmd_study",
    "cmd_train_llm",
    "main",
]

#: Subcommands that hand every argument after their name to their own parser.
PASSTHROUGH = ("bench", "study", "train-llm", "dataset")


def build_parser() -> argparse.ArgumentParser:
    """The ``dialogue-gym`` parser (``bench`` and ``study`` are only listed: see :func:`main`)."""
    parser = OneLineParser(
        prog="dialogue-gym",
        description="Gymnasium environments for multi-turn dialogue RL with a simulated user.",
        epilog="Run 'dialogue-gym <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=dialogue_gym.__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    policies = sorted(REFERENCE_POLICIES)
    demo_policies = [name for name in DEMO_POLICIES if name in REFERENCE_POLICIES]

    demo = sub.add_parser(
        "demo",
        help="play transcripts and print the reference table",
        description="Play a few transcripts with the LLM voice, then print the reference "
        "policies' table on the test cards (template voice).",
    )
    add_env_args(demo, voice="llm")
    demo.add_argument("--policy", choices=policies, default="stage-heuristic")
    demo.add_argument("--episodes", type=positive_int, default=2)
    demo.add_argument("--seed", type=seed_number, default=0)
    demo.set_defaults(func=cmd_demo)

    episode = sub.add_parser(
        "episode",
        help="run a reference policy; print or save its transcripts (JSONL)",
        description="Run a named reference policy on EmpathyDialogue-v0 and print the "
        "transcripts, or with --out write one JSON line per episode (fields: docs/cli.md).",
    )
    add_env_args(episode, voice="template")
    episode.add_argument("--policy", choices=policies, default="stage-heuristic")
    episode.add_argument("--episodes", type=positive_int, default=1)
    episode.add_argument(
        "--seed", type=seed_number, default=0, help="episode k uses seed + k (default: 0)"
    )
    episode.add_argument("--card", default=None, help="a card id or index (default: by the seed)")
    episode.add_argument(
        "--reward",
        choices=sorted(REWARDS),
        default="sparse",
        help="the reward wrapper whose components are logged (default: sparse)",
    )
    episode.add_argument(
        "--out", type=Path, default=None, help="write JSONL here instead of printing ('-': stdout)"
    )
    episode.add_argument(
        "--append", action="store_true", help="add to the --out file instead of replacing it"
    )
    episode.set_defaults(func=cmd_episode)

    play = sub.add_parser(
        "play",
        help="you are the agent: type your turns to a simulated user",
        description="You are the agent. Type what you say to a simulated user in distress "
        "(EmpathyDialogueText-v0) and watch their emotion bar; with --strategy pick one of "
        "the 8 support strategies by number instead (EmpathyDialogue-v0). Reads stdin, so a "
        "game can be piped in; 'quit' or end of input stops.",
    )
    add_env_args(play, voice="llm", scenarios="all")
    play.add_argument(
        "--strategy",
        action="store_true",
        help="pick strategies by number from a menu; the agent realiser words them",
    )
    play.add_argument("--card", default=None, help="a card id or index (default: drawn)")
    play.add_argument(
        "--seed", type=seed_number, default=None, help="replay a game (default: a new one, printed)"
    )
    play.add_argument(
        "--recogniser",
        choices=RECOGNISERS.names(),
        default="lexical",
        help="what reads your words as strategies (text mode; default: lexical)",
    )
    play.add_argument("--explain", action="store_true", help="show the user's act and reason")
    play.add_argument("--log", type=Path, default=None, help="append the game to this JSONL")
    play.set_defaults(func=cmd_play)

    table = sub.add_parser(
        "evaluate",
        help="table of reference policies on a split",
        description="One episode per card (times --repeats) for each policy, template voice.",
    )
    table.add_argument("--policies", nargs="+", choices=policies, default=demo_policies)
    table.add_argument("--scenarios", default="test")
    table.add_argument("--seed", type=seed_number, default=0)
    table.add_argument("--repeats", type=positive_int, default=1)
    table.set_defaults(func=cmd_evaluate)

    add_serve_parser(sub)
    add_ui_parser(sub)

    # Listed for the top-level help; main() hands their arguments to their own parsers.
    for name, text in (
        ("bench", "the throughput benchmark (dialogue_gym.evaluation.throughput); 'bench --help'"),
        ("study", "the reward study (dialogue_gym.study.run); 'study --help' for its options"),
        ("train-llm", "GRPO with TRL on the free-text env (default -v1); 'train-llm --help'"),
        ("dataset", "record a policy's episodes as a Minari dataset; 'dataset --help'"),
    ):
        passthrough = sub.add_parser(name, help=text, add_help=False)
        passthrough.add_argument("argv", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        passthrough.set_defaults(func=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dialogue-gym`` console script.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0, or 2 for a bad argument found after parsing (argparse's own
        errors exit with 2 through ``SystemExit``), 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    label = f"dialogue-gym {command}" if command and not command.startswith("-") else "dialogue-gym"
    try:
        if command == "bench":
            return cmd_bench(argv[1:])
        if command == "study":
            return cmd_study(argv[1:])
        if command == "train-llm":
            return cmd_train_llm(argv[1:])
        if command == "dataset":
            from dialogue_gym.cli.dataset import main as dataset_main  # lazy: Minari's extra

            return dataset_main(argv[1:])
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{label}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as err:
        if os.environ.get(DEBUG_ENV):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{label}: error: {message}", file=sys.stderr)
        return 2
