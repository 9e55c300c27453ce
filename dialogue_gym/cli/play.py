"""``dialogue-gym play``: a person is the agent, typing turns (or picking strategies).

Reads stdin, so a game can be piped in; 'quit' or end of input stops.

Example:
    >>> _parse_strategy("2")
    1
    >>> _parse_strategy("9")
    'There is no strategy 9: pick a number from 1 to 8.'
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.cli.common import card_option, with_episode_log
from dialogue_gym.core.render import emotion_bar
from dialogue_gym.core.vocabulary import STRATEGIES

#: The env each mode plays: strategy indices, or the agent's own words.
STRATEGY_ENV = "EmpathyDialogue-v0"
TEXT_ENV = "EmpathyDialogueText-v0"

#: What ends a ``play`` session (case-insensitive), besides end of input.
QUIT_WORDS = frozenset({"quit", "exit", "/quit", "/exit", ":q"})


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
    env_id = STRATEGY_ENV if args.strategy else TEXT_ENV
    kwargs: dict[str, Any] = {
        "voice": args.voice,
        "scenarios": args.scenarios,
        "max_turns": args.max_turns,
    }
    if args.strategy:
        kwargs["agent_voice"] = args.agent_voice
    else:
        kwargs["recogniser"] = args.recogniser
        print("Loading the language model (a few seconds; --voice template is instant)...")
    env: gym.Env = gym.make(env_id, **kwargs)
    try:
        card = card_option(env, args.card)
        # A person playing wants a new user each time; the seed is printed so a game can be replayed.
        seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**31)
        if args.log is not None:
            mode = "strategy" if args.strategy else "text"
            env = with_episode_log(env, args.log, extra={"player": "human", "mode": mode})
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
    print(f"{emotion_bar(info['emotion'])} {name}: {info['user_utterance']}", flush=True)
    # With the LLM voice a turn takes seconds: say so, so the wait does not look like a hang.
    slow = args.voice != "template"
    turns = 0
    while True:
        action = _ask_action(args.strategy, max_length)
        if action is None:
            print(f"\nStopped after {turns} turn(s).")
            break
        if slow:
            print(f"  ({name} is typing...)", flush=True)
        _, _, terminated, truncated, info = env.step(action)
        turns += 1
        if args.strategy:
            print(f"Agent [{info['strategy']}]: {info['agent_utterance']}")
        else:
            heard = ", ".join(info.get("acts", ())) or info["strategy"]
            print(f"  (heard as: {heard})")
        print(
            f"{emotion_bar(info['emotion'])} {name}: {info['user_utterance']} "
            f"({info['change']:+.0f})",
            flush=True,
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
