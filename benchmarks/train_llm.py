"""GRPO on EmpathyDialogueText-v0 with TRL, one reward wrapper per run, and the audit.

The code lives in the package (``dialogue_gym.integrations.train_llm``) so that
``dialogue-gym train-llm`` works from an install; this script runs the same::

    python benchmarks/train_llm.py --reward final_emotion --steps 50
    python benchmarks/train_llm.py --tiny --steps 2 --eval-cards 4   # a smoke run
"""

from dialogue_gym.integrations.train_llm import Args, main, parse_args

__all__ = ["Args", "main", "parse_args"]

if __name__ == "__main__":
    main(parse_args())
