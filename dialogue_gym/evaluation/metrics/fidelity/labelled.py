"""The hand-labelled lines the readers are validated on, and each reader's accuracy there.

The lines are ``dialogue_gym/user/data/fidelity_lines.yaml``; a third of them, the ``held_out``
split, were never looked at while the readers were tuned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from dialogue_gym.core.vocabulary import USER_ACTS
from dialogue_gym.evaluation.metrics.fidelity.acts import read_acts
from dialogue_gym.evaluation.metrics.fidelity.role import ROLE_VIOLATIONS, read_role
from dialogue_gym.evaluation.metrics.fidelity.sentiment import (
    BAND_EXCLUDES,
    SentimentReading,
    read_sentiment,
)
from dialogue_gym.evaluation.metrics.fidelity.table import rate

__all__ = ["LabelledLine", "labelled_accuracy", "load_labelled_lines"]


@dataclass(frozen=True)
class LabelledLine:
    """One hand-labelled line of ``fidelity_lines.yaml`` (see the file's header)."""

    text: str
    role_ok: bool
    acts: frozenset[str]
    sentiment: str
    change: str
    name: str = "Maya"
    why: str | None = None
    cue: str | None = None
    split: str = "dev"


def load_labelled_lines(path: str | Path | None = None) -> list[LabelledLine]:
    """The hand-labelled lines (default: the packaged ``fidelity_lines.yaml``).

    Raises:
        ValueError: A line has an unknown role, act, sentiment, change or split.
    """
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        data = resources.files("dialogue_gym.user").joinpath("data/fidelity_lines.yaml")
        text = data.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    out = []
    for i, item in enumerate(raw["lines"]):
        line = LabelledLine(
            text=str(item["text"]),
            role_ok=item["role"] == "ok",
            acts=frozenset(item.get("acts") or ()),
            sentiment=str(item["sentiment"]),
            change=str(item.get("change", "none")),
            name=str(item.get("name", "Maya")),
            why=item.get("why"),
            cue=item.get("cue"),
            split=str(item.get("split", "dev")),
        )
        bad = (
            item["role"] not in ("ok", "violation")
            or not line.acts <= set(USER_ACTS)
            or line.sentiment not in ("negative", "neutral", "mixed", "positive")
            or line.change not in ("better", "worse", "none")
            or line.split not in ("dev", "held_out")
            or (line.why is not None and line.why not in ROLE_VIOLATIONS)
        )
        if bad:
            raise ValueError(f"fidelity_lines.yaml: line {i} ({line.text!r}) has a bad label")
        out.append(line)
    return out


def labelled_accuracy(
    lines: Sequence[LabelledLine] | None = None, split: str | None = None
) -> dict[str, float]:
    """Each reader's accuracy on the hand-labelled lines.

    Keys: ``lines``; ``role`` (ok vs violation, every line), ``role_recall`` (violations
    found) and ``role_false_alarm`` (ok lines flagged); ``sentiment`` (the 4-way label) and
    ``change`` (better / worse / none), on the role-ok lines (what a supporter's line feels
    is not the user's emotion); ``band_agreement`` (the agree/disagree decision of
    :func:`emotion_agrees` for every role-ok line at every band, label against reading);
    ``act/<act>`` (the act detected or not, on the role-ok lines; ``act/disclose`` on the
    lines with a cue) and ``acts_exact`` (the whole set right).

    Args:
        lines: The lines (default: :func:`load_labelled_lines`).
        split: ``"dev"`` or ``"held_out"`` to read one split only.

    Example:
        >>> acc = labelled_accuracy()
        >>> acc["lines"] >= 60 and 0.0 <= acc["role"] <= 1.0
        True
    """
    lines = list(lines if lines is not None else load_labelled_lines())
    if split is not None:
        lines = [line for line in lines if line.split == split]
    roles = [(line, read_role(line.text, line.name)) for line in lines]
    ok_lines = [line for line in lines if line.role_ok]
    readings = {line.text: read_sentiment(line.text) for line in ok_lines}

    def said_change(r: SentimentReading) -> str:
        if r.better == r.worse:  # neither, or both ("better some days, worse others")
            return "none"
        return "better" if r.better else "worse"

    band_flags = []
    for line in ok_lines:
        r = readings[line.text]
        for excluded in BAND_EXCLUDES.values():
            band_flags.append((line.sentiment in excluded) == (r.label in excluded))
    out: dict[str, float] = {
        "lines": float(len(lines)),
        "role": rate([line.role_ok == r.ok for line, r in roles]),
        "role_recall": rate([not r.ok for line, r in roles if not line.role_ok]),
        "role_false_alarm": rate([not r.ok for line, r in roles if line.role_ok]),
        "sentiment": rate([readings[line.text].label == line.sentiment for line in ok_lines]),
        "change": rate([said_change(readings[line.text]) == line.change for line in ok_lines]),
        "band_agreement": rate(band_flags),
    }
    detected = {line.text: read_acts(line.text, line.cue) for line in ok_lines}
    for act in USER_ACTS:
        pool = [line for line in ok_lines if act != "disclose" or line.cue]
        out[f"act/{act}"] = rate(
            [(act in detected[line.text]) == (act in line.acts) for line in pool]
        )
    out["acts_exact"] = rate([detected[line.text] == line.acts for line in ok_lines])
    return out
