"""Make the sample study folder that ``dialogue-gym ui``'s docs and browser tests open.

Runs a tiny reward study, PPO trained on the coarse bonus (``sparse``) and on ``final_emotion``
(one seed each, the study's own code and episode logs), then keeps of its results folder the
report, the plots, ``aggregate.csv``, ``args.json`` and, of each run's final evaluation, the
episodes of a few test cards: those where the two runs differ most (the soothing trap: the
``final_emotion`` agent reassures for ten turns and never learns the need). The folder stays
small enough to commit (``tests/data/ui_samples/study/``).

Usage (from the repository root; about two minutes on two cores)::

    .venv/bin/python docs/ui/make_samples.py            # writes tests/data/ui_samples/study
    .venv/bin/python docs/ui/make_samples.py --cards 4 --steps 12000

Example:
    >>> pick_cards({"a": {"x": True, "y": True}, "b": {"x": False, "y": True}}, 1)
    ['x']
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "ui_samples" / "study"
#: What is kept of the study's folder besides the episode logs.
KEEP = ("report.md", "aggregate.csv", "args.json")


def pick_cards(success: dict[str, dict[str, bool]], n: int) -> list[str]:
    """``n`` card ids, those where the first run succeeded and the others did not first.

    Args:
        success: Run id -> card id -> whether that run's episode on the card succeeded.
        n: How many cards to keep.

    Returns:
        Card ids in the order of the first run's log, the most telling first.
    """
    runs = list(success)
    first, others = success[runs[0]], [success[r] for r in runs[1:]]
    common = [c for c in first if all(c in o for o in others)]

    def telling(card: str) -> int:
        # 0: the first run resolved the need and no other did; then any difference; then none.
        differs = any(o[card] != first[card] for o in others)
        return 0 if first[card] and differs else 1 if differs else 2

    return sorted(common, key=telling)[:n]


def main(argv: list[str] | None = None) -> Path:
    """Run the tiny study and write the sample folder; returns its path."""
    from dialogue_gym.evaluation.episode_log import read_episodes
    from dialogue_gym.study import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=12_000, help="agent decisions per run")
    parser.add_argument("--cards", type=int, default=4, help="test cards kept per run")
    parser.add_argument("--out", type=Path, default=OUT)
    options = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        args = run.Args(
            rewards=("sparse", "final_emotion"),
            learners=("ppo",),
            seeds=1,
            steps=options.steps,
            eval_points=3,
            sweep=False,
            workers=1,  # in this process: no pool to spawn for two short runs
            bootstrap_reps=500,
            out=tmp,
            name="study",
            progress=False,
        )
        run.main(args)
        study = Path(tmp) / "study"
        logs = {p.stem: read_episodes(p) for p in sorted((study / "episodes").glob("*.jsonl"))}
        # sparse first: the run that should resolve the need.
        order = sorted(logs, key=lambda r: "__sparse__" not in r)
        success = {r: {e["card_id"]: bool(e["success"]) for e in logs[r]} for r in order}
        cards = set(pick_cards(success, options.cards))

        if options.out.exists():
            shutil.rmtree(options.out)
        (options.out / "episodes").mkdir(parents=True)
        for name in KEEP:
            if (study / name).exists():
                # The temporary folder's name would change on every run: say what it was.
                text = (study / name).read_text(encoding="utf-8").replace(tmp, "<tmp>")
                (options.out / name).write_text(text, encoding="utf-8")
        for png in study.glob("*.png"):
            shutil.copy(png, options.out / png.name)
        for run_id, episodes in logs.items():
            kept = [e for e in episodes if e["card_id"] in cards]
            with (options.out / "episodes" / f"{run_id}.jsonl").open("w", encoding="utf-8") as f:
                for episode in kept:
                    f.write(json.dumps(episode, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {options.out} ({len(cards)} cards per run)")
    return options.out


if __name__ == "__main__":
    main()
