"""The commands' bodies: ``demo``, ``episode``, ``evaluate``, and ``bench`` and ``study``.

``bench`` and ``study`` hand every argument to their own parsers (tyro's, as CleanRL):
:mod:`dialogue_gym.evaluation.throughput` and :mod:`dialogue_gym.study.run`, both in the
package, so they work from an install.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

import gymnasium as gym

from dialogue_gym.agents.reference import make_policy
from dialogue_gym.cli.common import (
    UsageError,
    card_option,
    env_kwargs_from,
    outcome_word,
    with_episode_log,
)
from dialogue_gym.evaluation.episodes import evaluate, format_table, run_episode, summarize

DEMO_POLICIES = ("random", "always-reassure", "always-suggest", "stage-heuristic", "oracle")


class _Streaming(gym.Wrapper):
    """Prints the transcript as it is spoken: the opening when the episode starts, then each
    exchange when its step returns (the new lines of the ``"ansi"`` render), flushed at once.

    With the LLM voice a turn takes seconds, so a demo that printed each transcript only when
    its episode had ended sat silent for a minute or more. The lines printed add up to exactly
    ``print(env.render())`` at the end.

    Example:
        >>> import contextlib, io
        >>> env = _Streaming(gym.make("EmpathyDialogue-v0", voice="template", scenarios="test",
        ...                           render_mode="ansi"))
        >>> shown = io.StringIO()
        >>> with contextlib.redirect_stdout(shown):
        ...     _ = env.reset(seed=0)
        >>> len(shown.getvalue().splitlines())  # the opening, printed at once
        2
        >>> with contextlib.redirect_stdout(shown):
        ...     _ = env.step(0)
        >>> len(shown.getvalue().splitlines())  # then each exchange as it is spoken
        4
        >>> shown.getvalue().splitlines() == env.render().splitlines()
        True
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.shown = 0

    def _show(self) -> None:
        lines = (self.env.render() or "").splitlines()
        if len(lines) > self.shown:
            print("\n".join(lines[self.shown :]), flush=True)
        self.shown = len(lines)

    def reset(self, **kwargs):  # noqa: ANN003, ANN201  (gym.Wrapper's signature)
        out = self.env.reset(**kwargs)
        self.shown = 0
        self._show()
        return out

    def step(self, action):  # noqa: ANN001, ANN201
        out = self.env.step(action)
        self._show()
        return out


def _loading_note(args: argparse.Namespace) -> None:
    if getattr(args, "voice", "template") != "template":
        print(
            "Loading the language model (a few seconds; --voice template is instant)...", flush=True
        )


def cmd_demo(args: argparse.Namespace) -> int:
    """Play a few transcripts, then the reference policies' table on the test cards.

    Each transcript is printed as it is spoken (a turn appears when the user has said it),
    then its outcome.
    """
    _loading_note(args)
    env = _Streaming(gym.make("EmpathyDialogue-v0", render_mode="ansi", **env_kwargs_from(args)))
    policy = make_policy(args.policy, env)
    started = time.perf_counter()
    turns = 0
    for k in range(args.episodes):
        result = run_episode(env, policy, seed=args.seed + k)
        turns += result.turns
        print(f"-> {outcome_word(result)} after {result.turns} turns\n", flush=True)
    elapsed = time.perf_counter() - started
    print(f"{turns} turns with the {args.voice} voice in {elapsed:.1f} s\n", flush=True)
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
        "EmpathyDialogue-v0", render_mode="ansi", reward=args.reward, **env_kwargs_from(args)
    )
    try:
        card = card_option(env, args.card)
        if args.out is not None:
            target = sys.stdout if str(args.out) == "-" else args.out
            extra = {"policy": args.policy, "reward": args.reward}
            env = with_episode_log(env, target, extra=extra, append=args.append)
        if args.out is None:
            _loading_note(args)
            env = _Streaming(env)  # each transcript as it is spoken
        policy = make_policy(args.policy, env)
        for k in range(args.episodes):
            result = run_episode(env, policy, seed=args.seed + k, card=card)
            if args.out is None:
                print(f"-> {outcome_word(result)} after {result.turns} turns\n", flush=True)
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


def _load_bench() -> ModuleType:
    import dialogue_gym.evaluation.throughput as bench

    return bench


def cmd_bench(argv: Sequence[str]) -> int:
    """The throughput benchmark, ``dialogue_gym.evaluation.throughput``; ``argv`` goes to its
    parser (``benchmarks/throughput.py`` in a clone runs the same)."""
    return _run_passthrough("bench", _load_bench, argv)


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


def _load_train_llm() -> ModuleType:
    import importlib.util

    missing = [m for m in ("trl", "datasets") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"train-llm needs {', '.join(missing)}: pip install 'dialogue_gym[llm-train]'"
        )
    import dialogue_gym.integrations.train_llm as train_llm

    return train_llm


def cmd_train_llm(argv: Sequence[str]) -> int:
    """GRPO on the text env with TRL (``dialogue_gym.integrations.train_llm``); ``argv`` goes
    to its parser (``benchmarks/train_llm.py`` in a clone runs the same)."""
    return _run_passthrough("train-llm", _load_train_llm, argv)
