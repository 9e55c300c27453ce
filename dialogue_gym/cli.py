"""The ``dialogue-gym`` command line.

Subcommands (each has ``--help``; ``docs/cli.md`` is the manual):

- ``demo``: a few transcripts, then the reference policies' table;
- ``episode``: run a named reference policy; print the transcripts or save them as JSONL;
- ``play``: a person types the agent's turns against a simulated user and watches the
  emotion bar (``--strategy``: picks strategies from a menu instead);
- ``evaluate``: the table of reference policies on a split;
- ``bench``: the throughput benchmark (``benchmarks/throughput.py``, from a clone);
- ``study``: the reward study (``dialogue_gym.study.run``).

Bad arguments print one line, ``dialogue-gym <command>: error: ...``, and exit with status 2.
Set ``DIALOGUE_GYM_DEBUG=1`` to get the traceback of an error instead.

Example:
    >>> args = build_parser().parse_args(["episode", "--policy", "oracle", "--episodes", "3"])
    >>> args.policy, args.episodes, args.voice, args.out
    ('oracle', 3, 'template', None)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np

import dialogue_gym
from dialogue_gym.agents.reference import REFERENCE_POLICIES, make_policy
from dialogue_gym.core.render import emotion_bar
from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.evaluation.episode_log import EpisodeLogger
from dialogue_gym.evaluation.episodes import (
    EpisodeResult,
    evaluate,
    format_table,
    run_episode,
    summarize,
)
from dialogue_gym.rewards import REWARDS

DEMO_POLICIES = ("random", "always-reassure", "always-suggest", "stage-heuristic", "oracle")

#: Subcommands that hand every argument after their name to their own parser.
PASSTHROUGH = ("bench", "study")

#: What ends a ``play`` session (case-insensitive), besides end of input.
QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})

DEBUG_ENV = "DIALOGUE_GYM_DEBUG"


class UsageError(ValueError):
    """A bad argument found after parsing (an unknown card, say): one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors on one line (the usage text is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {value}")
    return value


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "voice": args.voice,
        "agent_voice": args.agent_voice,
        "scenarios": args.scenarios,
        "max_turns": args.max_turns,
    }


def _add_env_args(parser: argparse.ArgumentParser, voice: str, scenarios: str = "test") -> None:
    parser.add_argument(
        "--voice",
        choices=("llm", "template"),
        default=voice,
        help=f"the simulated user's voice (default: {voice}; llm loads the embedded model)",
    )
    parser.add_argument(
        "--agent-voice",
        choices=("llm", "template"),
        default="template",
        help="the agent realiser, which puts a strategy into words (default: template)",
    )
    parser.add_argument(
        "--scenarios",
        default=scenarios,
        help=f'"train", "test", "all", or a folder or YAML file of cards (default: {scenarios})',
    )
    parser.add_argument(
        "--max-turns", type=_positive_int, default=10, help="agent turns before truncation"
    )


def _card_option(env: gym.Env, card: str | None) -> str | int | None:
    """``--card`` as ``reset`` takes it: an id of the env's cards, or an index into them."""
    if card is None:
        return None
    cards = env.unwrapped.cards
    ids = [c.id for c in cards]
    if card in ids:
        return card
    if card.isdigit():
        if int(card) < len(cards):
            return int(card)
        raise UsageError(f"card index {card} is out of range: these cards are 0..{len(cards) - 1}")
    shown = ", ".join(ids[:5]) + (f", ... ({len(ids)} cards)" if len(ids) > 5 else "")
    raise UsageError(f"no card {card!r} in these scenarios; valid ids: {shown}")


def _logged(env: gym.Env, target: Any, **kwargs: Any) -> EpisodeLogger:
    try:
        return EpisodeLogger(env, target, **kwargs)
    except OSError as err:
        raise UsageError(f"cannot write the log {target}: {err.strerror or err}") from None


# -- demo, episode, evaluate ------------------------------------------------------------


def _outcome(result: EpisodeResult) -> str:
    return "success" if result.success else "user left" if result.user_left else "no success"


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
        print(f"-> {_outcome(result)} after {result.turns} turns\n")
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
    """Run one reference policy; print its transcripts, or write them as JSONL."""
    env: gym.Env = gym.make(
        "EmpathyDialogue-v0", render_mode="ansi", reward=args.reward, **_env_kwargs(args)
    )
    try:
        card = _card_option(env, args.card)
        if args.out is not None:
            target = sys.stdout if str(args.out) == "-" else args.out
            extra = {"policy": args.policy, "reward": args.reward}
            env = _logged(env, target, extra=extra, append=args.append)
        policy = make_policy(args.policy, env)
        for k in range(args.episodes):
            result = run_episode(env, policy, seed=args.seed + k, card=card)
            if args.out is None:
                print(env.render())
                print(f"-> {_outcome(result)} after {result.turns} turns\n")
    finally:
        env.close()  # the logger writes an episode cut short (Ctrl-C) as incomplete
    if args.out is not None and str(args.out) != "-":
        print(f"wrote {args.episodes} episode(s) to {args.out}")
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


# -- play -------------------------------------------------------------------------------


def _read(prompt: str) -> str | None:
    """One line from stdin, or ``None`` at end of input."""
    try:
        line = input(prompt)
    except EOFError:
        print()
        return None
    if not sys.stdin.isatty():
        print(line)  # piped input is not echoed by a terminal: show it, so the transcript reads
    return line


def _menu() -> str:
    rows = [f"  {i}  {name}" for i, name in enumerate(STRATEGIES, start=1)]
    return "Strategies:\n" + "\n".join(rows)


def _parse_strategy(line: str) -> int | str:
    """The strategy index a menu answer names, or a message saying what is wrong with it."""
    n = len(STRATEGIES)
    text = line.strip()
    if not text:
        return f"Pick a strategy: a number from 1 to {n} ('menu' shows them, 'quit' stops)."
    if text.lstrip("+-").isdigit():
        number = int(text)
        if 1 <= number <= n:
            return number - 1
        return f"There is no strategy {number}: pick a number from 1 to {n}."
    matches = [i for i, name in enumerate(STRATEGIES) if name.lower().startswith(text.lower())]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = " or ".join(f"{i + 1} {STRATEGIES[i]}" for i in matches)
        return f"{text!r} could be {names}: type its number."
    return f"{text!r} is not a strategy: type its number, 1 to {n} ('menu' shows them)."


def _check_utterance(line: str, max_length: int) -> str | None:
    """Why a typed utterance cannot be said, or ``None`` if it can."""
    # Imported here: text_env pulls in the recognisers, which only play's text mode needs.
    from dialogue_gym.envs.text import CHARSET

    line = line.strip()
    if not line:
        return "Say something to them (or type 'quit' to stop)."
    if len(line) > max_length:
        return f"That is {len(line)} characters; the most is {max_length}. Say it more briefly."
    for ch in line:
        if ch not in CHARSET:
            return (
                f"The character {ch!r} cannot be used (Latin letters, punctuation and common "
                "emoji only). Try again."
            )
    return None


def _ask_action(strategy_mode: bool, max_length: int) -> int | str | None:
    """The next action the person gives, asking until it is valid; ``None`` to stop."""
    while True:
        line = _read("your strategy> " if strategy_mode else "you> ")
        if line is None or line.strip().lower() in QUIT_WORDS:
            return None
        if strategy_mode:
            if line.strip().lower() in ("menu", "help", "?"):
                print(_menu())
                continue
            choice = _parse_strategy(line)
            if isinstance(choice, int):
                return choice
            print(choice)
            continue
        problem = _check_utterance(line, max_length)
        if problem is None:
            return line.strip()
        print(problem)


def cmd_play(args: argparse.Namespace) -> int:
    """Talk to a simulated user: type the agent's words (or pick strategies) turn by turn."""
    env_id = "EmpathyDialogue-v0" if args.strategy else "EmpathyDialogueText-v0"
    kwargs: dict[str, Any] = {
        "voice": args.voice,
        "scenarios": args.scenarios,
        "max_turns": args.max_turns,
    }
    if args.strategy:
        kwargs["agent_voice"] = args.agent_voice
    if "llm" in (args.voice, kwargs.get("agent_voice")):
        print("Loading the language model (a few seconds; --voice template is instant)...")
    env: gym.Env = gym.make(env_id, **kwargs)
    try:
        card = _card_option(env, args.card)
        # A person playing wants a new user each time; the seed is printed so a game can be replayed.
        seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        if args.log is not None:
            mode = "strategy" if args.strategy else "text"
            env = _logged(env, args.log, extra={"player": "human", "mode": mode})
        _play(env, args, seed, card)
    finally:
        env.close()  # a game stopped early is logged as incomplete
    return 0


def _play(env: gym.Env, args: argparse.Namespace, seed: int, card: str | int | None) -> None:
    _, info = env.reset(seed=seed, options={"card": card} if card is not None else None)
    user = env.unwrapped.card
    name = user.persona.name
    max_length = getattr(env.unwrapped, "max_length", 0)
    # Not the card's id: it names the hidden need (printed when the game ends).
    print(
        f"== {name}, {user.persona.age}, {user.persona.occupation} "
        f"({user.problem_type}; {user.emotion_type}), seed {seed}"
    )
    if args.strategy:
        print(_menu())
        print("Pick a strategy by number each turn; 'menu' shows them again, 'quit' stops.")
    else:
        print(f"Type what you say to {name} (at most {max_length} characters); 'quit' stops.")
    print(f"Help {name} feel better: understand what they need, then meet it.\n")
    print(f"{emotion_bar(info['emotion'])} {name}: {info['user_utterance']}")
    turns = 0
    while True:
        action = _ask_action(args.strategy, max_length)
        if action is None:
            print(f"\nStopped after {turns} turn(s).")
            break
        _, _, terminated, truncated, info = env.step(action)
        turns += 1
        if args.strategy:
            print(f"Agent [{info['strategy']}]: {info['agent_utterance']}")
        else:
            heard = ", ".join(info.get("acts", ())) or info["strategy"]
            print(f"  (heard as: {heard})")
        print(
            f"{emotion_bar(info['emotion'])} {name}: {info['user_utterance']} "
            f"({info['change']:+.0f})"
        )
        if args.explain:
            print(f"  [{info['user_act']}] {info['reason']}")
        if terminated or truncated:
            if info.get("success"):
                print(f"\nSuccess in {turns} turn(s): {name} feels helped.")
            elif info.get("user_left"):
                print(f"\n{name} left the conversation after {turns} turn(s).")
            else:
                print(f"\nOut of turns after {turns} turn(s).")
            print(f"Final emotion: {emotion_bar(info['emotion'])}")
            break
    need = env.unwrapped.hidden_need.replace("_", " ")
    print(f"{name}'s hidden need was: {need}. Replay: --card {user.id} --seed {seed}")


# -- bench, study: their own command lines ---------------------------------------------


def _benchmarks_folder() -> Path:
    """The repository's ``benchmarks`` folder, beside the package in a clone."""
    return Path(dialogue_gym.__file__).resolve().parents[1] / "benchmarks"


def _load_script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve a script's annotations through sys.modules; and, as when the script
    # is run as `python benchmarks/x.py`, its own folder comes first on the path.
    sys.modules[name] = module
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _prog(name: str) -> Iterator[None]:
    """Make argparse-based parsers (tyro's too) call themselves ``dialogue-gym <name>``."""
    saved = sys.argv
    sys.argv = [name, *saved[1:]]
    try:
        yield
    finally:
        sys.argv = saved


def _run_passthrough(command: str, load: Callable[[], ModuleType], argv: Sequence[str]) -> int:
    module = load()
    for attr in ("parse_args", "main"):
        if not callable(getattr(module, attr, None)):
            raise UsageError(f"{module.__name__} has no {attr}(): this checkout is incomplete")
    with _prog(f"dialogue-gym {command}"):
        parsed = module.parse_args(list(argv))
    module.main(parsed)
    return 0


def cmd_bench(argv: Sequence[str]) -> int:
    """The throughput benchmark, ``benchmarks/throughput.py``; ``argv`` goes to its parser."""
    script = _benchmarks_folder() / "throughput.py"
    if not script.is_file():
        raise UsageError(
            f"the benchmarks are not installed with the package (no {script}): run "
            "`dialogue-gym bench` from a clone of the repository, installed with `pip install -e .`"
        )
    return _run_passthrough("bench", lambda: _load_script(script, "_dialogue_gym_bench"), argv)


def _load_study() -> ModuleType:
    try:
        import dialogue_gym.study.run as study
    except ModuleNotFoundError as err:
        if err.name == "dialogue_gym.study.run":
            raise UsageError("this version of dialogue_gym has no study module") from None
        raise UsageError(
            f"the study needs the package {err.name!r}: install it (pip install -e '.[dev]')"
        ) from None
    return study


def cmd_study(argv: Sequence[str]) -> int:
    """The reward study, ``dialogue_gym.study.run``; ``argv`` goes to its parser."""
    return _run_passthrough("study", _load_study, argv)


# -- the parser and the entry point ------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``dialogue-gym`` parser (``bench`` and ``study`` are only listed: see :func:`main`)."""
    parser = _Parser(
        prog="dialogue-gym",
        description="Gymnasium environments for multi-turn dialogue RL with a simulated user.",
        epilog="Run 'dialogue-gym <command> --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=dialogue_gym.__version__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    policies = sorted(REFERENCE_POLICIES)

    demo = sub.add_parser(
        "demo",
        help="play transcripts and print the reference table",
        description="Play a few transcripts with the LLM voice, then print the reference "
        "policies' table on the test cards (template voice).",
    )
    _add_env_args(demo, voice="llm")
    demo.add_argument("--policy", choices=policies, default="stage-heuristic")
    demo.add_argument("--episodes", type=_positive_int, default=2)
    demo.add_argument("--seed", type=_seed, default=0)
    demo.set_defaults(func=cmd_demo)

    episode = sub.add_parser(
        "episode",
        help="run a reference policy; print or save its transcripts (JSONL)",
        description="Run a named reference policy on EmpathyDialogue-v0 and print the "
        "transcripts, or with --out write one JSON line per episode (fields: docs/cli.md).",
    )
    _add_env_args(episode, voice="template")
    episode.add_argument("--policy", choices=policies, default="stage-heuristic")
    episode.add_argument("--episodes", type=_positive_int, default=1)
    episode.add_argument(
        "--seed", type=_seed, default=0, help="episode k uses seed + k (default: 0)"
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
    _add_env_args(play, voice="llm", scenarios="all")
    play.add_argument(
        "--strategy",
        action="store_true",
        help="pick strategies by number from a menu; the agent realiser words them",
    )
    play.add_argument("--card", default=None, help="a card id or index (default: drawn)")
    play.add_argument(
        "--seed", type=_seed, default=None, help="replay a game (default: a new one, printed)"
    )
    play.add_argument("--explain", action="store_true", help="show the user's act and reason")
    play.add_argument("--log", type=Path, default=None, help="append the game to this JSONL")
    play.set_defaults(func=cmd_play)

    table = sub.add_parser(
        "evaluate",
        help="table of reference policies on a split",
        description="One episode per card (times --repeats) for each policy, template voice.",
    )
    table.add_argument("--policies", nargs="+", choices=policies, default=list(DEMO_POLICIES))
    table.add_argument("--scenarios", default="test")
    table.add_argument("--seed", type=_seed, default=0)
    table.add_argument("--repeats", type=_positive_int, default=1)
    table.set_defaults(func=cmd_evaluate)

    # Listed for the top-level help; main() hands their arguments to their own parsers.
    for name, text in (
        ("bench", "the throughput benchmark (benchmarks/throughput.py; from a clone)"),
        ("study", "the reward study (dialogue_gym.study.run); 'study --help' for its options"),
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
