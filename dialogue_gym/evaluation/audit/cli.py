"""The command line: ``python -m dialogue_gym.evaluation.audit [--before LOG --after LOG]``.

Without arguments it prints the two readers' figures on the labelled set; with two episode logs
(JSONL), the report.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from dialogue_gym.evaluation.audit.readers import labelled_reference
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
        f"labelled set (n={ref['n']}): classifier {ref['k']}-fold cross-validated accuracy "
        f"{ref['classifier_accuracy']:.3f} (chance {ref['chance']:.3f}; dev -> held_out "
        f"{ref['classifier_held_out_accuracy']:.3f}); lexical accuracy "
        f"{ref['lexical_accuracy']:.3f}; readers' agreement {ref['agreement']:.3f}, "
        f"Cohen's kappa {ref['kappa']:.3f}"
    )
    for a, b, c in ref["confusions"]:
        print(f"  lexical {a} / classifier {b}: {c}")
