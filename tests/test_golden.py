"""Seeded episodes of every env id and reward are unchanged since the golden record.

``tests/golden/record.py`` wrote ``tests/golden/episodes.json`` before the package moved into
sub-packages; these tests replay each case and compare the SHA-256 of every observation,
reward, flag and ``info`` (bit for bit, on the machine that recorded it: numpy's float maths is
the same on every x86-64 machine we have tried) and the transcripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import record  # noqa: E402

GOLDEN = json.loads(record.GOLDEN.read_text())


@pytest.mark.parametrize("case", record.cases(), ids=lambda c: record.key(*c))
def test_episode_matches_golden(case: tuple) -> None:
    got = record.play(*case)
    want = GOLDEN[record.key(*case)]
    assert got["transcripts"] == want["transcripts"]
    assert got["sha256"] == want["sha256"]


def test_golden_covers_every_registered_reward() -> None:
    from dialogue_gym.rewards import REWARDS

    assert set(REWARDS) <= set(record.REWARDS), "record a golden episode for the new reward"
