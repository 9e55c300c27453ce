"""Write verl's dataset files for the simulated user: train.parquet and test.parquet.

Each row is one simulated user (a card and a seed) whose opening line is the prompt's last
message; the interaction (or agent loop) replays the same user from ``extra_info``. RLVER
trains on its training profiles and tests on held-out ones: here the train and test cards.

    python examples/verl/make_dataset.py --out data/dialogue_gym --train-rows 2048
    python examples/verl/make_dataset.py --out data/dialogue_gym --verl-0.7  # no agent_name

Rows: ``dialogue_gym.integrations.verl.verl_rows`` (its docstring lists the columns).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from dialogue_gym.integrations.verl import verl_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/dialogue_gym"))
    parser.add_argument("--train-rows", type=int, default=None, help="default: one per card")
    parser.add_argument("--test-rows", type=int, default=None, help="default: one per card")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--verl-0.7",
        dest="legacy",
        action="store_true",
        help="for verl <= 0.7.1 and interaction_config.yaml: rows without agent_name",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    agent_name = None if args.legacy else "dialogue_gym_user"
    for split, n, seed in (
        ("train", args.train_rows, args.seed),
        ("test", args.test_rows, args.seed + 1),
    ):
        rows = verl_rows(split, n=n, seed=seed, agent_name=agent_name)
        path = args.out / f"{split}.parquet"
        pd.DataFrame(rows).to_parquet(path)
        print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
