"""What the commands share: one-line errors, argument types, and the env options.

Every choice the options offer is read from a registry when the parser is built (user voices,
agent realisers, recognisers, env ids), so a plugin registered before ``main`` runs is offered.

Example:
    >>> positive_int("3"), seed_number("0")
    (3, 0)
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

import gymnasium as gym

from dialogue_gym.evaluation.episode_log import EpisodeLogger
from dialogue_gym.evaluation.episodes import EpisodeResult
from dialogue_gym.ports import port_taken
from dialogue_gym.user.voices import AGENT_REALISERS, USER_VOICES

DEBUG_ENV = "DIALOGUE_GYM_DEBUG"


class UsageError(ValueError):
    """A bad argument found after parsing (an unknown card, say): one line, exit status 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with errors on one line (the usage text is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_port(host: str, port: int) -> None:
    """Fail now, in one line, when the port is taken (uvicorn would log and exit 1)."""
    why = port_taken(host, port)
    if why:
        raise UsageError(f"cannot listen on {host}:{port}: {why}")


def port_number(text: str) -> int:
    """A TCP port for a server command (``serve``, ``ui``); 0 lets the system pick one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value < 65536:
        raise argparse.ArgumentTypeError(f"must be in [0, 65535], got {value}")
    return value


def seed_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {value}")
    return value


def env_kwargs_from(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "voice": args.voice,
        "agent_voice": args.agent_voice,
        "scenarios": args.scenarios,
        "max_turns": args.max_turns,
    }


def add_env_args(parser: argparse.ArgumentParser, voice: str, scenarios: str = "test") -> None:
    parser.add_argument(
        "--voice",
        choices=USER_VOICES.names(),
        default=voice,
        help=f"the simulated user's voice (default: {voice}; llm loads the embedded model)",
    )
    parser.add_argument(
        "--agent-voice",
        choices=AGENT_REALISERS.names(),
        default="template",
        help="the agent realiser, which puts a strategy into words (default: template)",
    )
    parser.add_argument(
        "--scenarios",
        default=scenarios,
        help=f'"train", "test", "all", or a folder or YAML file of cards (default: {scenarios})',
    )
    parser.add_argument(
        "--max-turns", type=positive_int, default=10, help="agent turns before truncation"
    )


def card_option(env: gym.Env, card: str | None) -> str | int | None:
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


def with_episode_log(env: gym.Env, target: Any, **kwargs: Any) -> EpisodeLogger:
    try:
        return EpisodeLogger(env, target, **kwargs)
    except OSError as err:
        raise UsageError(f"cannot write the log {target}: {err.strerror or err}") from None


# -- demo, episode, evaluate ------------------------------------------------------------


def outcome_word(result: EpisodeResult) -> str:
    return "success" if result.success else "user left" if result.user_left else "no success"
