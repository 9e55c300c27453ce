"""What two study folders are compared by: their CSV tables and their records, less the timings.

The crash test (a study killed and resumed) and the Ray test (a study on a cluster) each check
that their folder holds what an uninterrupted local study writes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path


def table(path: Path) -> list[dict[str, str]]:
    """A CSV's rows, without the timing columns (``*_seconds``), which differ run to run."""
    with path.open() as f:
        return [
            {k: v for k, v in row.items() if not k.endswith("_seconds")}
            for row in csv.DictReader(f)
        ]


def records(path: Path) -> list[dict]:
    """A ``runs.jsonl``'s records, without ``train_seconds``, in run order."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("train_seconds")
    return sorted(rows, key=lambda r: r["run"])  # written as runs finish, in any order
