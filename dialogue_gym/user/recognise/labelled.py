"""The labelled utterances, and how accurately a recogniser reads them.

``python -m dialogue_gym.user.recognise [--llm] [--backend SPEC] [--split S] [--errors]`` prints
the accuracy and the confusion matrix (``docs/text.md`` records them).

Example:
    >>> from dialogue_gym.user.recognise import LexicalRecogniser
    >>> result = evaluate(LexicalRecogniser(), load_labelled("held_out"))
    >>> result["n"], result["accuracy"] > 0.8
    (56, True)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.user.recognise.base import Recognition
from dialogue_gym.user.recognise.lexical import LexicalRecogniser
from dialogue_gym.user.recognise.llm import LLMRecogniser

__all__ = [
    "LABELLED_FILE",
    "LabelledUtterance",
    "confusion_matrix",
    "evaluate",
    "format_report",
    "load_labelled",
    "main",
    "read_all",
    "summarise",
]

#: The packaged labelled set.
LABELLED_FILE = Path(__file__).parent.parent / "data" / "labelled_utterances.yaml"
_N = len(STRATEGIES)
Recogniser = LexicalRecogniser | LLMRecogniser


@dataclass(frozen=True)
class LabelledUtterance:
    """One line of the labelled set.

    Attributes:
        text: The utterance.
        label: Its primary strategy index.
        also: Other strategies it carries.
        hard: Whether it is a deliberately hard or ambiguous case.
        split: ``"dev"`` (used while writing the lexical cues) or ``"held_out"``.
    """

    text: str
    label: int
    also: tuple[int, ...] = ()
    hard: bool = False
    split: str = "dev"


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[LabelledUtterance, ...]:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh)
    items = raw.get("utterances") if isinstance(raw, Mapping) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"{path}: expected a non-empty list under 'utterances'")
    out = []
    for k, item in enumerate(items):
        try:
            text, label = item["text"], STRATEGIES.index(item["label"])
            also = tuple(STRATEGIES.index(a) for a in item.get("also", ()))
            split = item.get("split", "dev")
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: utterances[{k}]: {exc!r}") from None
        if not isinstance(text, str) or not text.strip() or split not in ("dev", "held_out"):
            raise ValueError(f"{path}: utterances[{k}]: bad text or split")
        out.append(LabelledUtterance(text, label, also, bool(item.get("hard", False)), split))
    return tuple(out)


def load_labelled(
    split: str = "all", path: str | Path | None = None
) -> tuple[LabelledUtterance, ...]:
    """The labelled utterances (``split``: ``"all"``, ``"dev"`` or ``"held_out"``).

    Example:
        >>> len(load_labelled()) >= 200
        True
    """
    items = _load(str(path or LABELLED_FILE))
    if split == "all":
        return items
    if split not in ("dev", "held_out"):
        raise ValueError(f"split must be 'all', 'dev' or 'held_out', got {split!r}")
    return tuple(u for u in items if u.split == split)


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int]) -> list[list[int]]:
    """``m[g][p]``: how often strategy ``g`` was read as ``p``.

    Example:
        >>> confusion_matrix([0, 0, 7], [0, 7, 7])[0][:1], confusion_matrix([0], [7])[0][7]
        ([1], 1)
    """
    m = [[0] * _N for _ in range(_N)]
    for g, p in zip(gold, predicted, strict=True):
        m[g][p] += 1
    return m


def evaluate(
    recogniser: Recogniser, items: Sequence[LabelledUtterance] | None = None, batch: int = 16
) -> dict[str, Any]:
    """Accuracy of a recogniser's primary act on labelled utterances.

    Args:
        recogniser: Any recogniser.
        items: The labelled utterances (default: the whole packaged set).
        batch: Utterances per ``recognise`` call.

    Returns:
        ``accuracy`` (primary == gold), ``any_label`` (gold among the labels),
        ``per_strategy`` (name -> recall), ``confusion`` (``confusion_matrix``), ``n``,
        ``by_source`` (source -> ``(reads, correct)``: for the LLM recogniser, how many labels
        the model named and how many of those were right) and ``errors`` (text, gold, read)
        for the misread ones.
    """
    items = tuple(items if items is not None else load_labelled())
    return summarise(items, read_all(recogniser, [u.text for u in items], batch))


def read_all(recogniser: Recogniser, texts: Sequence[str], batch: int = 16) -> list[Recognition]:
    """Recognise ``texts`` in batches, with seeds ``0, 1, 2...`` (one per text)."""
    reads: list[Recognition] = []
    for start in range(0, len(texts), batch):
        chunk = list(texts[start : start + batch])
        reads += recogniser.recognise(chunk, seeds=list(range(start, start + len(chunk))))
    return reads


def summarise(items: Sequence[LabelledUtterance], reads: Sequence[Recognition]) -> dict[str, Any]:
    """The figures of :func:`evaluate` for reads already made (one per item)."""
    gold = [u.label for u in items]
    pred = [r.primary for r in reads]
    m = confusion_matrix(gold, pred)
    return {
        "n": len(items),
        "accuracy": sum(g == p for g, p in zip(gold, pred, strict=True)) / max(1, len(items)),
        "any_label": sum(u.label in r.labels for u, r in zip(items, reads, strict=True))
        / max(1, len(items)),
        "per_strategy": {
            STRATEGIES[s]: m[s][s] / max(1, sum(m[s])) for s in range(_N) if sum(m[s])
        },
        "confusion": m,
        "by_source": {
            source: (
                sum(r.source == source for r in reads),
                sum(
                    r.source == source and r.primary == g for r, g in zip(reads, gold, strict=True)
                ),
            )
            for source in sorted({r.source for r in reads})
        },
        "errors": [
            (u.text, STRATEGIES[u.label], r.strategy)
            for u, r in zip(items, reads, strict=True)
            if u.label != r.primary
        ],
    }


def format_report(result: Mapping[str, Any], title: str) -> str:
    """A plain-text report of :func:`evaluate`'s result: accuracy and the confusion matrix."""
    short = ("Que", "Res", "Ref", "Sel", "Aff", "Sug", "Inf", "Oth")
    sources = ", ".join(
        f"{source} {right}/{reads}" for source, (reads, right) in result["by_source"].items()
    )
    lines = [
        f"{title}: accuracy {result['accuracy']:.3f}, gold among labels "
        f"{result['any_label']:.3f} (n={result['n']}; right/read by source: {sources})",
        "gold \\ read  " + " ".join(f"{s:>4}" for s in short) + "  recall",
    ]
    for g, row in enumerate(result["confusion"]):
        if sum(row):
            recall = row[g] / sum(row)
            lines.append(
                f"{STRATEGIES[g][:12]:<12} " + " ".join(f"{c:>4}" for c in row) + f"  {recall:.2f}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m dialogue_gym.user.recognise [--llm] [--backend SPEC] [--split S] [--errors]``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--llm", action="store_true", help="evaluate the LLM recogniser too")
    parser.add_argument("--backend", default="llama_cpp", help="backend spec for --llm")
    parser.add_argument("--split", default="all", choices=("all", "dev", "held_out"))
    parser.add_argument("--errors", action="store_true", help="list the misread utterances")
    args = parser.parse_args(argv)
    from dialogue_gym.user.recognise import make_recogniser

    kinds = ["lexical"] + (["llm"] if args.llm else [])
    items = load_labelled(args.split)
    for kind in kinds:
        rec = make_recogniser(kind, backend=args.backend)
        reads = read_all(rec, [u.text for u in items])  # each utterance read once
        splits = ("dev", "held_out", "all") if args.split == "all" else (args.split,)
        for split in splits:
            keep = [k for k, u in enumerate(items) if split in ("all", u.split)]
            result = summarise([items[k] for k in keep], [reads[k] for k in keep])
            print(format_report(result, f"{kind} recogniser, {split}"))
            if args.errors and split == splits[-1]:
                for text, gold, read in result["errors"]:
                    print(f"  [{gold} -> {read}] {text}")
            print()
        if isinstance(rec, LLMRecogniser):
            print(f"llm: {rec.calls} calls, {rec.fallbacks} replies named no strategy\n")
