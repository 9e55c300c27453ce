"""The injection screen's false positives on benign support text, and its catch rate.

The screen (:func:`dialogue_gym.user.injection.screen`) reads text addressed to the simulator as
*Others*; a line it flags wrongly is honest support punished in every text-env result. This
script measures, with the packaged data:

- false positives on the labelled utterances (``labelled_utterances.yaml``, 240 lines in the
  eight strategies), on the template voices' lines and the suite's small talk;
- false positives on the benign support lines (``benign_support.yaml``: numbers, narration of
  others' feelings, self-disclosure, suggestions with quantities, scores, ordinary uses of the
  words the screen watches), the ``tune`` half and the ``held_out`` half separately; the
  held-out lines are never printed unless asked, so that tuning the screen cannot peek at them;
- the catch rate on the injection suite (``injections.yaml``, what tests/test_injection.py plays)
  and on the near-miss injections of ``benign_support.yaml``.

    python benchmarks/injection_screen.py                 # the figures, and the tune half's misses
    python benchmarks/injection_screen.py --show-held-out # also the held-out half's misses
    python benchmarks/injection_screen.py --json out.json # and write the figures

docs/text.md records the figures before and after the screen was retuned (issue 12, defect 8).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from dialogue_gym.user.injection import screen
from dialogue_gym.user.recognise import load_labelled
from dialogue_gym.user.voices import load_fragments

DATA = Path(__file__).resolve().parents[1] / "dialogue_gym" / "user" / "data"

Screen = Callable[[str], str | None]


def load_data() -> dict[str, list[str]]:
    """Every line set the benchmark measures, by name."""
    benign = yaml.safe_load((DATA / "benign_support.yaml").read_text(encoding="utf-8"))
    suite = yaml.safe_load((DATA / "injections.yaml").read_text(encoding="utf-8"))
    frags = load_fragments()
    template = [line for pool in frags.agent_cue for line in pool]
    template += [line for pool in frags.user.values() for line in pool]
    return {
        "labelled": [u.text for u in load_labelled()],
        "template_and_small_talk": template + list(suite["small_talk"]),
        "benign_tune": [b["text"] for b in benign["benign"] if b["split"] == "tune"],
        "benign_held_out": [b["text"] for b in benign["benign"] if b["split"] == "held_out"],
        "injection_suite": [item["text"] for item in suite["injections"]],
        "near_miss_injections": list(benign["near_miss_injections"]),
    }


#: The sets whose lines are benign (a flag is a false positive); the others are injections.
BENIGN_SETS = ("labelled", "template_and_small_talk", "benign_tune", "benign_held_out")


def measure(screen_fn: Screen = screen) -> dict[str, Any]:
    """The screen's figures: per set, the lines, the rate and the lines it got wrong.

    For a benign set the rate is the false-positive rate (share flagged); for an injection set
    it is the catch rate (share flagged).
    """
    out: dict[str, Any] = {}
    for name, texts in load_data().items():
        verdicts = [screen_fn(t) for t in texts]
        benign = name in BENIGN_SETS
        wrong = [(t, v) for t, v in zip(texts, verdicts, strict=True) if (v is not None) == benign]
        flagged = sum(v is not None for v in verdicts)
        out[name] = {
            "n": len(texts),
            "rate": flagged / len(texts),
            "wrong": wrong,
        }
    return out


def report(results: dict[str, Any], show_held_out: bool = False) -> str:
    lines = []
    for name, r in results.items():
        what = "false positives" if name in BENIGN_SETS else "caught"
        count = round(r["rate"] * r["n"])
        lines.append(f"{name:26s} {what:15s} {count:3d}/{r['n']:3d} = {r['rate']:6.1%}")
    for name, r in results.items():
        if not r["wrong"] or (name == "benign_held_out" and not show_held_out):
            continue
        lines.append(f"\n{name}: {'flagged' if name in BENIGN_SETS else 'missed'}")
        lines += [f"  [{v}] {t!r}" for t, v in r["wrong"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--show-held-out", action="store_true", help="also list the held-out lines it flags"
    )
    parser.add_argument("--json", type=Path, help="write the figures (rates and counts) here")
    args = parser.parse_args(argv)
    results = measure()
    print(report(results, args.show_held_out))
    if args.json:
        figures = {name: {"n": r["n"], "rate": r["rate"]} for name, r in results.items()}
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
