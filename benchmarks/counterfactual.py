"""The counterfactual benchmark: the same strategies, said in different ways. Does the user hear?

CleanRL style: one script, a dataclass of arguments. The oracle (told the hidden need) chooses the
strategy every turn; a *style* says it: the env's own example lines, natural support written
without the stock cue formulas, a pile of cue phrases, hostile lines that keep the strategy's
form, off-topic lines in the strategy's form, generic and specific lines (the specific ones name
the user's topic, problem or name), and the natural lines *repeated* (the first line drawn for a
strategy is said again each time the oracle picks it) against the same lines *varied*. Each style
plays the 72 test users (one episode each, seeds ``EVAL_SEED + k``, template voice, 10 turns) in
every env given, side by side: ``EmpathyDialogueText-v0`` hears only the strategy label,
``EmpathyDialogueText-v1`` hears the words.

The lines were written apart from the simulator, before it was tuned, by another author
(``dialogue_gym/user/data/counterfactual_*.yaml``, 6 lines per style and strategy in each). The
dev half was used while tuning; the first held-out half was played once, for the first report,
and has since been used to fit the tone model; the second held-out set, written later by another
author, has been used for nothing but the report. ``--split`` picks which set is played. Targets for v1 (issue 22, ``docs/text.md#what-the-user-hears``): natural >=
90% of the example lines' success; hostile <= 5% success with >= 50% of users leaving; off-topic
<= 10%; cue salad at least 30 points below natural; repeated below varied.

    python benchmarks/counterfactual.py                       # held-out lines, v0 and v1
    python benchmarks/counterfactual.py --split dev
    python benchmarks/counterfactual.py --listener lexical    # v1 with the word-list listener
    python benchmarks/counterfactual.py --quick               # 12 users (a smoke run)

It prints the table and writes ``benchmarks/results/counterfactual.json`` (every figure, the
settings, the machine).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import tyro
import yaml

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents.reference import make_policy
from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES
from dialogue_gym.user.voices.cleaning import second_person

EVAL_SEED = 10_000
#: The sets of lines, in the order they were written.
SPLITS = ("dev", "held_out", "held_out_2")
#: The lines, packaged with the data they were written beside (dialogue_gym/user/data/).
DATA = Path(dialogue_gym.__file__).parent / "user" / "data"
#: Every style the benchmark plays, in table order.
STYLES = (
    "example",
    "natural",
    "repeated",
    "cue_salad",
    "hostile",
    "off_topic",
    "generic",
    "specific",
)


@dataclass
class Args:
    envs: tuple[str, ...] = ("EmpathyDialogueText-v0", "EmpathyDialogueText-v1")
    """env ids to play side by side"""
    split: str = "held_out_2"
    """which lines: held_out_2 (the report's), held_out (the first report's) or dev"""
    styles: tuple[str, ...] = STYLES
    """styles to play"""
    listener: str | None = None
    """the v1 listener (None: the env's default)"""
    recogniser: str | None = None
    """the recogniser for every env (None: each env's default)"""
    users: int = 72
    """how many test users (the first N cards)"""
    max_turns: int = 10
    """turns per conversation"""
    quick: bool = False
    """12 users: a smoke run"""
    out: Path = Path(__file__).parent / "results" / "counterfactual.json"
    """where the figures go"""


def load_lines(split: str) -> dict[str, dict[int, list[str]]]:
    """Style -> strategy index -> lines, for one half of the committed sets."""
    if split not in SPLITS:
        raise SystemExit(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    raw = yaml.safe_load((DATA / f"counterfactual_{split}.yaml").read_text("utf-8"))["styles"]
    return {
        style: {STRATEGIES.index(s): list(lines) for s, lines in by.items()}
        for style, by in raw.items()
    }


class Speaker:
    """Says the oracle's strategy in one style; varied styles walk their lines, seeded."""

    def __init__(self, style: str, lines: dict[str, dict[int, list[str]]], seed: int) -> None:
        self.style = style
        pool_style = "natural" if style == "repeated" else style
        self.pool = None if style == "example" else lines[pool_style]
        self.rng = np.random.default_rng(seed)
        self.offsets = {s: int(self.rng.integers(1000)) for s in range(len(STRATEGIES))}
        self.used: dict[int, int] = {}

    def say(self, strategy: int, card: Any) -> str:
        if self.pool is None:
            return EXAMPLE_UTTERANCES[strategy]
        lines = self.pool[strategy]
        k = self.used.get(strategy, 0)
        self.used[strategy] = k + 1
        if self.style == "repeated":
            k = 0  # the first line drawn, said again each time
        line = lines[(self.offsets[strategy] + k) % len(lines)]
        return line.format(
            topic=second_person(card.topic), problem=card.problem_type, name=card.persona.name
        )


def play(env_id: str, style: str, lines: dict, args: Args) -> dict[str, Any]:
    """The oracle's strategies said in ``style`` to the first ``args.users`` test users."""
    kwargs: dict[str, Any] = {"voice": "template", "scenarios": "test"}
    kwargs["max_turns"] = args.max_turns
    if args.recogniser:
        kwargs["recogniser"] = args.recogniser
    if args.listener and env_id.endswith("-v1"):
        kwargs["listener"] = args.listener
    env = gym.make(env_id, **kwargs)
    oracle = make_policy("oracle", env)
    success, left, emotion, read_right, turns, tones = [], [], [], [], [], {}
    started = time.perf_counter()
    for k in range(args.users):
        obs, info = env.reset(seed=EVAL_SEED + k, options={"card": k})
        oracle.reset(seed=EVAL_SEED + k)
        speaker = Speaker(style, lines, EVAL_SEED + k)
        card = env.unwrapped.card
        done = False
        while not done:
            strategy = oracle(obs)
            obs, _, terminated, truncated, info = env.step(speaker.say(strategy, card))
            read_right.append(info["strategy"] == STRATEGIES[strategy])
            if "heard" in info:
                tone = info["heard"]["tone"]
                tones[tone] = tones.get(tone, 0) + 1
            done = terminated or truncated
        success.append(bool(info["success"]))
        left.append(bool(info["user_left"]))
        emotion.append(float(info["emotion"]))
        turns.append(int(info["turn"]))
    return {
        "env": env_id,
        "style": style,
        "users": args.users,
        "success": float(np.mean(success)),
        "left": float(np.mean(left)),
        "final_emotion": float(np.mean(emotion)),
        "turns": float(np.mean(turns)),
        "read_right": float(np.mean(read_right)),
        "tones": tones,
        "seconds": round(time.perf_counter() - started, 2),
    }


def table(rows: list[dict[str, Any]], envs: tuple[str, ...]) -> str:
    """The side-by-side markdown table: per style, success and leavers in each env."""
    head = "| style | " + " | ".join(f"{e} success | {e} leave" for e in envs) + " |"
    sep = "|---|" + "---|---|" * len(envs)
    out = [head, sep]
    for style in dict.fromkeys(r["style"] for r in rows):
        cells = []
        for e in envs:
            r = next(x for x in rows if x["style"] == style and x["env"] == e)
            cells += [f"{100 * r['success']:.0f}%", f"{100 * r['left']:.0f}%"]
        out.append(f"| {style} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def targets(rows: list[dict[str, Any]], env_id: str) -> dict[str, bool]:
    """Issue 22's targets for the hearing user, on ``env_id``'s rows."""
    by = {r["style"]: r for r in rows if r["env"] == env_id}
    out: dict[str, bool] = {}
    if {"natural", "example"} <= set(by):
        out["natural >= 90% of example"] = (
            by["natural"]["success"] >= 0.9 * by["example"]["success"]
        )
    if "hostile" in by:
        out["hostile <= 5% success"] = by["hostile"]["success"] <= 0.05
        out["hostile >= 50% leave"] = by["hostile"]["left"] >= 0.5
    if "off_topic" in by:
        out["off_topic <= 10% success"] = by["off_topic"]["success"] <= 0.10
    if {"natural", "cue_salad"} <= set(by):
        out["cue_salad >= 30 points below natural"] = (
            by["natural"]["success"] - by["cue_salad"]["success"] >= 0.30
        )
    if {"natural", "repeated"} <= set(by):
        out["repeated below varied"] = by["repeated"]["success"] < by["natural"]["success"]
    return out


def main(args: Args) -> dict[str, Any]:
    if args.quick:
        args = dataclasses.replace(args, users=12)
    lines = load_lines(args.split)
    unknown = set(args.styles) - set(STYLES)
    if unknown:
        raise SystemExit(f"unknown styles {sorted(unknown)}; valid: {', '.join(STYLES)}")
    rows = [play(e, s, lines, args) for s in args.styles for e in args.envs]
    print(f"{args.split} lines, {args.users} test users, the oracle's strategies\n")
    print(table(rows, args.envs))
    checks = {e: targets(rows, e) for e in args.envs if e.endswith("-v1")}
    for env_id, got in checks.items():
        print(f"\n{env_id} targets:")
        for name, ok in got.items():
            print(f"  {'met ' if ok else 'MISS'} {name}")
    result = {
        "settings": {k: str(v) for k, v in dataclasses.asdict(args).items()},
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "rows": rows,
        "targets": checks,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
