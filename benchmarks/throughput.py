"""Throughput of EmpathyDialogue-v0 against CartPole-v1, and of its LLM voice, in one run.

CleanRL style: one script, a dataclass of arguments. The measurements live in the package,
:mod:`dialogue_gym.evaluation.throughput`, so that ``dialogue-gym bench`` runs the same thing
from an install; this script is its command line in a clone.

    python benchmarks/throughput.py                # full run, writes benchmarks/results/throughput.json
    python benchmarks/throughput.py --vec-sizes 1,2,4,8,16 --llm-backends transformers
    python benchmarks/throughput.py --quick        # a smoke run (tiny random model for the LLM rows)
"""

from __future__ import annotations

from dialogue_gym.evaluation.throughput import Args, main, parse_args, report

__all__ = ["Args", "main", "parse_args", "report"]

if __name__ == "__main__":
    main(parse_args())
