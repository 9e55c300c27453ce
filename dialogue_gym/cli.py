"""The ``dialogue-gym`` command line: demo episodes, transcripts and reference tables."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import gymnasium as gym

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents import REFERENCE_POLICIES, make_policy
from dialogue_gym.evaluation import evaluate, format_table, run_episode, summarize

DEMO_POLICIES = ("random", "always-reassure", "always-suggest", "stage-heuristic", "oracle")


def _env_kwargs(args: argparse.Namespace) -> dict:
    return {
        "voice": args.voice,
        "agent_voice": args.agent_voice,
        "scenarios": args.scenarios,
        "max_turns": args.max_turns,
    }


def _add_env_args(parser: argparse.ArgumentParser, voice: str) -> None:
    parser.add_argument("--voice", choices=("llm", "template"), default=voice)
    parser.add_argument(
        "--agent-voice",
        choices=("llm", "template"),
        default="template",
        help="the agent realiser (default: template)",
    )
    parser.add_argument(
        "--scenarios", default="test", help='"train", "test", "all", or a folder of cards'
    )
    parser.add_argument("--max-turns", type=int, default=10)


def cmd_demo(args: argparse.Namespace) -> int:
    """Play a few transcripts, then the reference policies' table on the test cards."""
    env = gym.make("EmpathyDialogue-v0", render_mode="ansi", **_env_kwargs(args))
    policy = make_policy(args.policy, env)
    started = time.perf_counter()
    turns = 0
    for k in range(args.episodes):
        result = run_episode(env, policy, seed=args.seed + k)
        turns += result.turns
        print(env.render())
        outcome = "success" if result.success else "user left" if result.user_left else "no success"
        print(f"-> {outcome} after {result.turns} turns\n")
    elapsed = time.perf_counter() - started
    print(f"{turns} turns with the {args.voice} voice in {elapsed:.1f} s\n")
    env.close()
    rows = []
    for name in DEMO_POLICIES:
        results = evaluate(name, env_kwargs={"scenarios": args.scenarios}, seed=args.seed)
        rows.append((name, summarize(results)))
    print(f"Reference policies on the {args.scenarios!r} cards (template voice, seed {args.seed}):")
    print(format_table(rows))
    return 0


def cmd_episode(args: argparse.Namespace) -> int:
    """Run one reference policy and print or save its transcripts as JSONL."""
    env = gym.make("EmpathyDialogue-v0", render_mode="ansi", **_env_kwargs(args))
    policy = make_policy(args.policy, env)
    out = open(args.out, "w", encoding="utf-8") if args.out else None  # noqa: SIM115
    try:
        for k in range(args.episodes):
            result = run_episode(
                env, policy, seed=args.seed + k, card=args.card, keep_messages=True
            )
            if out is None:
                print(env.render())
                continue
            record = {"policy": args.policy, "seed": args.seed + k, **result.__dict__}
            out.write(json.dumps(record) + "\n")
            out.flush()  # an interrupted run keeps every finished episode
    finally:
        if out is not None:
            out.close()
            print(f"wrote {args.episodes} episode(s) to {args.out}")
    env.close()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Print the table of reference policies on a split."""
    rows = []
    for name in args.policies:
        results = evaluate(
            name, env_kwargs={"scenarios": args.scenarios}, seed=args.seed, repeats=args.repeats
        )
        rows.append((name, summarize(results)))
    print(format_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialogue-gym",
        description="Gymnasium environments for multi-turn dialogue RL with a simulated user.",
    )
    parser.add_argument("--version", action="version", version=dialogue_gym.__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    policies = sorted(REFERENCE_POLICIES)

    demo = sub.add_parser("demo", help="play transcripts and print the reference table")
    _add_env_args(demo, voice="llm")
    demo.add_argument("--policy", choices=policies, default="stage-heuristic")
    demo.add_argument("--episodes", type=int, default=2)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    episode = sub.add_parser("episode", help="run a reference policy; print or save transcripts")
    _add_env_args(episode, voice="template")
    episode.add_argument("--policy", choices=policies, default="stage-heuristic")
    episode.add_argument("--episodes", type=int, default=1)
    episode.add_argument("--seed", type=int, default=0)
    episode.add_argument("--card", default=None, help="a card id (default: drawn by the seed)")
    episode.add_argument("--out", type=Path, default=None, help="write JSONL here")
    episode.set_defaults(func=cmd_episode)

    table = sub.add_parser("evaluate", help="table of reference policies on a split")
    table.add_argument("--policies", nargs="+", choices=policies, default=list(DEMO_POLICIES))
    table.add_argument("--scenarios", default="test")
    table.add_argument("--seed", type=int, default=0)
    table.add_argument("--repeats", type=int, default=1)
    table.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dialogue-gym`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("episodes", "max_turns", "repeats"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"dialogue-gym: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
