"""The fidelity table: every reader over recorded user lines, as one flat dict of rates.

``benchmarks/voice_fidelity.py`` prints it; the persona and fact consistency of
:mod:`~dialogue_gym.evaluation.metrics.consistency` comes with it when the cards are given.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.vocabulary import USER_ACTS
from dialogue_gym.evaluation.metrics.consistency import card_contradictions, history_contradictions
from dialogue_gym.evaluation.metrics.fidelity.acts import act_agrees
from dialogue_gym.evaluation.metrics.fidelity.role import ROLE_VIOLATIONS, read_role
from dialogue_gym.evaluation.metrics.fidelity.sentiment import emotion_agrees
from dialogue_gym.evaluation.metrics.fidelity.text import WORD_RE, content_words, norm

__all__ = ["fidelity_table", "rate"]


def rate(flags: Sequence[bool]) -> float:
    """The share of true ``flags`` (``nan`` when there are none).

    Example:
        >>> rate([True, False, False, True]), rate([])
        (0.5, nan)
    """
    return float(sum(flags) / len(flags)) if flags else math.nan


def _repeats(line: str, earlier: Sequence[str]) -> bool:
    """Whether ``line`` says an earlier line of the same speaker again: the same first eight
    words, or nine tenths of its content words."""
    words = WORD_RE.findall(norm(line))
    mine = content_words(line)
    for other in earlier:
        theirs = WORD_RE.findall(norm(other))
        if len(words) >= 8 and words[:8] == theirs[:8]:
            return True
        if len(mine) >= 4 and len(mine & content_words(other)) >= 0.9 * len(mine):
            return True
    return False


@dataclass
class _Tally:
    lines: int = 0
    role_ok: list[bool] = field(default_factory=list)
    emotion: list[bool] = field(default_factory=list)
    act: list[bool] = field(default_factory=list)
    by_act: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    why: Counter = field(default_factory=Counter)


def fidelity_table(
    records: Sequence[Mapping[str, Any]],
    cards: Mapping[str, ScenarioCard] | None = None,
) -> dict[str, Any]:
    """Fidelity of recorded user lines, as one flat dict of rates (and counts).

    Each record is one user line with what the core decided: ``line``, ``act``, ``emotion``,
    ``change``, ``cue``, ``card_id``, ``episode`` (lines of one episode in order), ``turn``
    (0: the opening, read with ``act_agrees(..., opening=True)``) and
    optionally ``voice_check`` (``{"retries": k, "fallback": bool}`` from the voice),
    ``success`` and ``user_left`` on an episode's last line.

    Keys: ``lines``; ``role_violation`` (share of lines :func:`read_role` flags) and one
    ``role/<kind>`` share per kind; ``emotion_agreement``; ``act_agreement`` and
    ``repeated_line`` (lines after an episode's first that say an earlier line of the same
    episode again: a user stuck in a loop); ``act/<act>`` per act, ``act/opening`` for the
    openings (a line :func:`read_role` flags never agrees: in the supporter's
    role it performs no user act); ``thanks_at_success`` (successful episodes whose last line
    thanks) and ``goodbye_at_leave`` (episodes the user left whose last line leaves);
    ``prompt_to_line`` and ``line_to_line`` (the lexical persona/fact consistency, when
    ``cards`` is given); ``retried`` (share of lines the voice resampled), ``mean_retries``,
    ``fallback`` (share replaced by the template line) when records carry ``voice_check``;
    and the same three fidelity rates over the model's own lines only (``model_lines``,
    ``model/role_violation``, ``model/emotion_agreement``, ``model/act_agreement``: lines
    that were not a fallback).

    Example:
        >>> rows = [
        ...     {"line": "I feel so stuck.", "act": "vent", "emotion": 30.0, "change": 0.0,
        ...      "cue": None, "card_id": "c", "episode": 0},
        ...     {"line": "I'm sorry to hear that.", "act": "vent", "emotion": 32.0,
        ...      "change": 2.0, "cue": None, "card_id": "c", "episode": 0}]
        >>> t = fidelity_table(rows)
        >>> t["role_violation"], t["act_agreement"]
        (0.5, 0.5)
    """
    total, model = _Tally(), _Tally()
    if cards:  # records made from step infos name a card by its opaque key
        cards = {**cards, **{card.key: card for card in cards.values()}}
    names = {cid: card.persona.name for cid, card in (cards or {}).items()}
    checks = [r.get("voice_check") for r in records]
    episodes: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for r, check in zip(records, checks, strict=True):
        episodes[r.get("episode")].append(r)
        line = str(r["line"])
        role = read_role(line, names.get(str(r.get("card_id"))))
        emotion_ok = emotion_agrees(line, float(r["emotion"]), float(r.get("change") or 0.0))
        # A line in the supporter's role performs no user act, whatever its words.
        opening = r.get("turn") == 0
        act_ok = role.ok and act_agrees(line, str(r["act"]), r.get("cue"), opening=opening)
        tallies = [total] if check and check.get("fallback") else [total, model]
        for tally in tallies:
            tally.lines += 1
            tally.role_ok.append(role.ok)
            tally.why.update(role.why)
            tally.emotion.append(emotion_ok)
            tally.act.append(act_ok)
            tally.by_act["opening" if opening else str(r["act"])].append(act_ok)
    out: dict[str, Any] = {
        "lines": total.lines,
        "role_violation": 1.0 - rate(total.role_ok),
        **{f"role/{kind}": total.why[kind] / max(total.lines, 1) for kind in ROLE_VIOLATIONS},
        "emotion_agreement": rate(total.emotion),
        "act_agreement": rate(total.act),
        **{f"act/{act}": rate(total.by_act.get(act, [])) for act in ("opening", *USER_ACTS)},
    }
    out["repeated_line"] = rate(
        [_repeats(str(x["line"]), [str(y["line"]) for y in lines[:i]])
         for lines in episodes.values() for i, x in enumerate(lines) if i]
    )  # fmt: skip
    ends = [lines[-1] for lines in episodes.values() if lines]
    out["thanks_at_success"] = rate(
        [act_agrees(str(e["line"]), "thank") for e in ends if e.get("success")]
    )
    out["goodbye_at_leave"] = rate(
        [act_agrees(str(e["line"]), "leave") for e in ends if e.get("user_left")]
    )
    if cards:
        p2l, l2l = [], []
        for lines in episodes.values():
            card = cards.get(str(lines[0].get("card_id")))
            if card is None:
                continue
            said = [str(x["line"]) for x in lines]
            p2l.extend(not card_contradictions(s, card) for s in said)
            l2l.extend(not reasons for reasons in history_contradictions(said, card))
        out["prompt_to_line"] = rate(p2l)
        out["line_to_line"] = rate(l2l)
    known = [c for c in checks if c]
    if known:
        out["retried"] = rate([c.get("retries", 0) > 0 for c in known])
        out["mean_retries"] = float(sum(c.get("retries", 0) for c in known) / len(known))
        out["fallback"] = rate([bool(c.get("fallback")) for c in known])
        out["model_lines"] = model.lines
        out["model/role_violation"] = 1.0 - rate(model.role_ok)
        out["model/emotion_agreement"] = rate(model.emotion)
        out["model/act_agreement"] = rate(model.act)
    return out
