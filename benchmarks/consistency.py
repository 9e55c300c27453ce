"""Simulator consistency of the LLM voice: prompt-to-line, line-to-line and Q&A against the cards.

Plays the stage heuristic against the LLM user voice (the embedded SmolLM2 by default) on the
first ``cards`` test cards, pausing each episode after ``ask_after`` turns to put the card's
fact questions to the user (side conversations: the episode then plays on unchanged), and
reports the three consistency metrics of :mod:`dialogue_gym.evaluation.metrics`, beside the template
voice as a floor/ceiling reference.

    python benchmarks/consistency.py                 # 12 cards, writes benchmarks/results/consistency.json
    python benchmarks/consistency.py --cards 2 --max-questions 1   # a smoke run
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import tyro

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents.reference import StageHeuristicPolicy
from dialogue_gym.evaluation.metrics import (
    line_to_line_consistency,
    prompt_to_line_consistency,
    qa_consistency,
)


@dataclass
class Args:
    cards: int = 12
    """test cards to play (one episode each)"""
    ask_after: int = 3
    """agent turns before the fact questions"""
    max_questions: int = 3
    """fact questions per card"""
    voices: tuple[str, ...] = ("template", "llm")
    """user voices to measure"""
    backend: str = "llama_cpp"
    """the LLM voice's backend spec"""
    seed: int = 0
    """base seed (episode k uses seed + k)"""
    out: str = "benchmarks/results/consistency.json"
    """where to write the JSON results"""


def measure(voice: str, args: Args) -> dict:
    kwargs = {"voice": voice, "scenarios": "test"}
    if voice == "llm":
        kwargs["backend"] = args.backend
    env = gym.make("EmpathyDialogue-v0", **kwargs)
    started = time.perf_counter()
    qas = [
        qa_consistency(
            env,
            StageHeuristicPolicy(),
            seed=args.seed + k,
            card=k,
            ask_after=args.ask_after,
            max_questions=args.max_questions,
        )
        for k in range(args.cards)
    ]
    env.close()
    episodes = [q.episode for q in qas]
    return {
        "voice": voice,
        "cards": args.cards,
        "user_lines": int(sum(len(e.user_lines) for e in episodes)),
        "prompt_to_line": prompt_to_line_consistency(episodes),
        "line_to_line": line_to_line_consistency(episodes),
        "qa_consistency": float(np.mean([q.score for q in qas if q.answers])),
        "questions": int(sum(len(q.answers) for q in qas)),
        "seconds": round(time.perf_counter() - started, 1),
        "examples": [
            {"question": a.question, "expected": a.expected, "reply": a.reply, "score": a.score}
            for q in qas[:2]
            for a in q.answers
        ],
    }


def main(args: Args) -> dict:
    results = {
        "args": dataclasses.asdict(args),
        "voices": [measure(v, args) for v in args.voices],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    for r in results["voices"]:
        print(
            f"{r['voice']:>8}: prompt-to-line {r['prompt_to_line']:.3f}, line-to-line "
            f"{r['line_to_line']:.3f}, Q&A {r['qa_consistency']:.3f} ({r['questions']} questions, "
            f"{r['user_lines']} user lines, {r['seconds']} s)"
        )
    return results


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
