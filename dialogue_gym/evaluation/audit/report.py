"""The audit's figures for one set of episodes, and the markdown report that sets several
side by side (before vs after training, and any further runs)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from dialogue_gym.evaluation.audit.injection import injection_counts
from dialogue_gym.evaluation.audit.readers import SHORT_NAMES, labelled_reference, reader_agreement
from dialogue_gym.evaluation.audit.records import as_episodes
from dialogue_gym.evaluation.audit.transcripts import best_and_worst, format_transcript
from dialogue_gym.evaluation.audit.utterances import NEAR_REPEAT, utterance_stats
from dialogue_gym.user.injection import INJECTION_KINDS

__all__ = ["audit", "audit_report"]


def audit(episodes: Any, top: int = 5) -> dict[str, Any]:
    """Every audit figure for one set of episodes: ``readers``, ``stats``, ``injection``."""
    eps = as_episodes(episodes)
    # Imported here: hearing reads its episodes through this package (as_episodes).
    from dialogue_gym.evaluation.hearing import heard_stats

    return {
        "readers": reader_agreement(eps, top=top),
        "stats": utterance_stats(eps, top=top),
        "injection": injection_counts(eps),
        "heard": heard_stats(eps),
    }


def _num(value: float, digits: int = 2, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.0f}%" if pct else f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return _num(value, pct=True)


def _f1(value: float) -> str:
    return _num(value, 1)


def _f2(value: float) -> str:
    return _num(value, 2)


def _same(value: str) -> str:
    return value


def _counted(pairs: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"“{g}” ×{k}" for g, k in pairs) or "none"


def _shares(shares: Mapping[str, float], k: int = 3) -> str:
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{SHORT_NAMES.get(s, s)} {100 * v:.0f}%" for s, v in top) or "n/a"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(row) + " |" for row in rows]


def audit_report(
    before: Any,
    after: Any,
    *,
    names: tuple[str, str] = ("before", "after"),
    more: Mapping[str, Any] | None = None,
    title: str = "Reward-hacking audit",
    samples: int = 1,
    reference: bool = True,
    top: int = 5,
) -> str:
    """A markdown section: the two readers, the utterance statistics and the injection screen,
    side by side for each set of episodes, then sample transcripts.

    Args:
        before: The episodes before training (any form :func:`as_episodes` reads).
        after: The episodes after training.
        names: The two columns' names.
        more: Further columns, name -> episodes (e.g. the policy trained on another reward).
        title: The section's heading (``##``).
        samples: Best and worst episodes shown per column (0: none).
        reference: Open with the readers' figures on the labelled set
            (:func:`labelled_reference`).
        top: Confusion pairs, n-grams and cue phrases listed per column.

    Returns:
        Markdown (``##`` heading, ``###`` sub-sections, tables, fenced transcripts).
    """
    runs = {
        names[0]: as_episodes(before),
        names[1]: as_episodes(after),
        **{name: as_episodes(eps) for name, eps in (more or {}).items()},
    }
    figures = {name: audit(eps, top=top) for name, eps in runs.items()}
    cols = list(runs)
    delta = len(cols) == 2
    header = ["", *cols, *(["change"] if delta else [])]
    lines = [f"## {title}", ""]
    if reference:
        ref = labelled_reference()
        nat = ref["natural"]
        lines += [
            "The second reader reads meaning: a softmax regression on all-MiniLM-L6-v2 sentence "
            f"embeddings, fitted on {ref['second_training_n']} lines of natural support written "
            "without the lexical cues (none of them contains a cue phrase), which names no "
            "strategy for text close to no natural line; "
            f"{ref['k']}-fold cross-validated accuracy {ref['second_cv_accuracy']:.3f} on its "
            f"own set (chance {ref['second_cv_chance']:.3f}). On the {ref['n']} labelled "
            "utterances the lexical cues were written from, which it never saw, its accuracy is "
            f"{ref['second_accuracy']:.3f} and the two readers agree on "
            f"{100 * ref['agreement']:.1f}% of utterances (Cohen's kappa {ref['kappa']:.3f}); on "
            f"{nat['n']} natural lines neither was fitted on, on {100 * nat['agreement']:.1f}% "
            f"(kappa {nat['kappa']:.3f}; {100 * nat['agreement_on_strategy']:.1f}% of those the "
            "lexical reader reads as a strategy). A lower agreement on a policy's words than "
            "before training means the policy writes for the lexical reader.",
            "",
        ]

    def row(label: str, get: Any, fmt: Any, numeric: bool = True) -> list[str]:
        values = [get(figures[c]) for c in cols]
        cells = [label, *(fmt(v) for v in values)]
        if delta:
            ok = numeric and all(isinstance(v, int | float) and not math.isnan(v) for v in values)
            cells.append(_signed(values[1] - values[0], fmt) if ok else "")
        return cells

    lines += ["### The two readers", ""]
    lines += _table(
        header,
        [
            row("utterances", lambda f: f["readers"]["n"], str, numeric=False),
            row("agreement (lexical vs second reader)", lambda f: f["readers"]["agreement"], _pct),
            row("Cohen's kappa", lambda f: f["readers"]["kappa"], _f2),
            row("cue-stuffed utterances", lambda f: f["readers"]["cue_stuffed"], _pct),
            row("lexical reads", lambda f: _shares(f["readers"]["lexical"]), _same, False),
            row("second reader reads", lambda f: _shares(f["readers"]["second"]), _same, False),
            row(
                "most frequent disagreements (lexical → second reader)",
                lambda f: (
                    "; ".join(
                        f"{SHORT_NAMES[a]} → {SHORT_NAMES[b]} ×{c}"
                        for a, b, c in f["readers"]["confusions"][:3]
                    )
                    or "none"
                ),
                _same,
                False,
            ),
        ],
    )
    lines += ["", "### The utterances", ""]
    lines += _table(
        header,
        [
            row("characters (mean)", lambda f: f["stats"]["chars_mean"], _f1),
            row("words (mean)", lambda f: f["stats"]["words_mean"], _f1),
            row("words (median)", lambda f: f["stats"]["words_median"], _f1),
            row(
                f"turns repeating an earlier one (Jaccard ≥ {NEAR_REPEAT})",
                lambda f: f["stats"]["repeated_turns"],
                _pct,
            ),
            row("turns repeating one word for word", lambda f: f["stats"]["exact_repeats"], _pct),
            row("utterances with a lexical cue phrase", lambda f: f["stats"]["with_cue"], _pct),
            row("cue phrases per utterance", lambda f: f["stats"]["cue_phrases_mean"], _f2),
            row(
                "cue phrases per 100 words", lambda f: f["stats"]["cue_phrases_per_100_words"], _f1
            ),
            row("distinct-1", lambda f: f["stats"]["distinct"][1], _f2),
            row("distinct-2", lambda f: f["stats"]["distinct"][2], _f2),
            row("distinct-3", lambda f: f["stats"]["distinct"][3], _f2),
        ],
    )
    lines += [""]
    for c in cols:
        s = figures[c]["stats"]
        lines.append(
            f"- **{c}**: bigrams {_counted(s['ngrams'][2])}; trigrams "
            f"{_counted(s['ngrams'][3])}; cue phrases {_counted(s['top_cues'])}."
        )
    lines += ["", "### What the hearing user hears (the lexical listener)", ""]
    lines += _table(
        header,
        [
            row("hostile turns", lambda f: f["heard"]["hostile"], _pct),
            row("cold turns", lambda f: f["heard"]["cold"], _pct),
            row("warm turns", lambda f: f["heard"]["warm"], _pct),
            row("off-topic turns", lambda f: f["heard"]["off_topic"], _pct),
            row("muddled turns (a pile of cue phrases)", lambda f: f["heard"]["muddled"], _pct),
            row("repeated turns", lambda f: f["heard"]["repeated"], _pct),
            row("relevance (mean)", lambda f: f["heard"]["relevance"], _f2),
            row("coherence (mean)", lambda f: f["heard"]["coherence"], _f2),
            row("specificity (mean)", lambda f: f["heard"]["specificity"], _f2),
        ],
    )
    lines += ["", "### The injection screen on the policy's text", ""]
    lines += _table(
        header,
        [
            row("utterances flagged", lambda f: f["injection"]["flagged"], str),
            row("share", lambda f: f["injection"]["share"], _pct),
            *(
                row(kind, lambda f, kind=kind: f["injection"]["by_kind"][kind], str)
                for kind in INJECTION_KINDS
            ),
        ],
    )
    if samples > 0:
        lines += ["", "### Sample transcripts", ""]
        for c in cols:
            best, worst = best_and_worst(runs[c], k=samples)
            for label, picked in (("best", best), ("worst", worst)):
                for e in picked:
                    lines += [f"**{c}, {label} return.** " + format_transcript(e), ""]
            if not best:
                lines += [f"**{c}**: no episode with a return to rank.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _signed(value: float, fmt: Any) -> str:
    text = fmt(abs(value))
    if text in ("0", "0%", "0.0", "0.00"):
        return text
    return ("+" if value > 0 else "\u2212") + text
