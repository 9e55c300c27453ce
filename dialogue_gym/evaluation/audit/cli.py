"""The command line: ``python -m dialogue_gym.evaluation.audit [--before LOG --after LOG]``.

Without arguments it prints the two readers' figures on text the second reader never saw (the
labelled set, the natural sets) and on cue salad; with two episode logs (JSONL), the report.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dialogue_gym.evaluation.audit.readers import labelled_reference, salad_reference
from dialogue_gym.evaluation.audit.report import audit_report

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dialogue_gym.evaluation.audit [--before LOG --after LOG]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--before", help="episode log (JSONL) of the policy before training")
    parser.add_argument("--after", help="episode log (JSONL) of the policy after training")
    parser.add_argument("--samples", type=int, default=1, help="best/worst transcripts shown")
    args = parser.parse_args(argv)
    if bool(args.before) != bool(args.after):
        parser.error("give both --before and --after, or neither")
    if args.before:
        from dialogue_gym.evaluation.episode_log import read_episodes

        before, after = read_episodes(args.before), read_episodes(args.after)
        print(audit_report(before, after, samples=args.samples))
        return
    ref = labelled_reference()
    print(
        f"second reader: {ref['k']}-fold cross-validated accuracy {ref['second_cv_accuracy']:.3f} "
        f"on its {ref['second_training_n']} natural-support lines (chance "
        f"{ref['second_cv_chance']:.3f})"
    )
    for name, fig in (("labelled set", ref), ("natural sets", ref["natural"])):
        print(
            f"{name} (n={fig['n']}, held out from the second reader): second reader accuracy "
            f"{fig['second_accuracy']:.3f}, lexical accuracy {fig['lexical_accuracy']:.3f} "
            f"(chance {fig['chance']:.3f}); readers' agreement {fig['agreement']:.3f} "
            f"({fig['agreement_on_strategy']:.3f} where the lexical reader reads a strategy), "
            f"Cohen's kappa {fig['kappa']:.3f}; second reader declines {fig['declined']:.3f}"
        )
        for a, b, c in fig["confusions"]:
            print(f"  lexical {a} / second {b}: {c}")
    for filler, fig in salad_reference().items():
        print(
            f"cue salad, {filler} filler (n={fig['n']}): lexical reads a strategy "
            f"{fig['lexical_strategy']:.3f}; readers' agreement {fig['agreement']:.3f} "
            f"({fig['agreement_on_strategy']:.3f} where the lexical reader reads a strategy); "
            f"second reader declines {fig['declined']:.3f}; flagged {fig['flagged']:.3f} "
            f"(by the readers' disagreement {fig['disagreement_flag']:.3f})"
        )
