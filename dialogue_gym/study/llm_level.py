"""The LLM level of the reward study: ``dialogue-gym train-llm`` results beside the strategy level.

``dialogue-gym train-llm`` (:mod:`dialogue_gym.integrations.train_llm`) trains a language model
with GRPO on ``EmpathyDialogueText-v0`` under one reward and plays the same test users before and
after; each run writes ``<out>/<name>/`` with ``eval.json`` (the metrics before and after),
``args.json`` (its settings) and ``episodes_{before,after}.jsonl`` (every test conversation).
This module reads such runs, without importing the training stack (no TRL, no torch):

- :func:`load`: a run's folder, its ``eval.json``, or a folder of runs (each with ``eval.json``);
- :func:`paired_difference`: after minus before per test user (same card and seed), with a
  seeded 95% bootstrap interval: the runs' effects are paired;
- :func:`llm_verdict`: what the training did, in the strategy level's words;
- :func:`section` and :func:`combined_answer`: the report's "The LLM level" section and the one
  sentence that answers at both levels.

Example:
    >>> llm_verdict({"success": (0.0, 0.0, 0.0), "final_emotion": (5.1, 3.3, 7.0)}, 1.0)
    'soothes'
    >>> llm_verdict({"success": (0.0, 0.0, 0.0), "final_emotion": (0.1, -1.9, 2.1)}, 1.0)
    'no detectable change'
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.core.validation import InvalidArgument

#: Bootstrap resamples of the test users for the paired intervals (seeded: the same every time).
PAIRED_REPS = 2000
#: An LLM run soothes when its final emotion rose (interval above 0), no more users succeeded,
#: and at least this share of the emotion gained was gained with the need unresolved (the
#: strategy level's ``SOOTHING_AT``).
SOOTHING_AT = 0.5
#: What the report prints when no LLM results were given.
HOW_TO = (
    "No LLM-level results were given. Train a language-model policy per reward with "
    "`dialogue-gym train-llm --reward REWARD --name REWARD ...` (settings and a GPU command: "
    "docs/llm_policies.md), then rebuild this report with `--report-only --llm-results "
    "benchmarks/results/llm` (the folder of those runs)."
)
_WHAT = (
    "must be a `dialogue-gym train-llm` output: a run's folder or its eval.json, or a folder "
    "of runs each holding an eval.json"
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InvalidArgument("study", "llm_results", str(path), f"{_WHAT} ({err})") from None


def _runs_in(path: Path) -> list[Path]:
    """The run folders ``path`` stands for (each has an ``eval.json``)."""
    if path.is_file() and path.name == "eval.json":
        return [path.parent]
    if (path / "eval.json").is_file():
        return [path]
    if path.is_dir():
        return sorted(p.parent for p in path.glob("*/eval.json"))
    return []


def study_label(reward: str, reward_kwargs: dict[str, Any]) -> str:
    """The study's reward label for a train-llm run's reward and arguments.

    A study variant (``REWARD_VARIANTS``) whose arguments these are gives its label; arguments
    that are the wrapper's defaults give the reward's own name; other arguments give
    ``reward {json}`` (a reward the strategy level did not train).

    Example:
        >>> study_label("multi_turn", {"mode": "advantage"}), study_label("multi_turn", {"mode": "value"})
        ('multi_turn', 'multi_turn_value')
    """
    from dialogue_gym.rewards.registry import REWARDS
    from dialogue_gym.study.settings import REWARD_VARIANTS, resolve_reward

    for label in REWARD_VARIANTS:
        if resolve_reward(label) == (reward, reward_kwargs):
            return label
    if not reward_kwargs:
        return reward
    try:
        parameters = inspect.signature(REWARDS[reward]).parameters
    except (KeyError, TypeError, ValueError):
        parameters = {}
    if all(k in parameters and parameters[k].default == v for k, v in reward_kwargs.items()):
        return reward
    return f"{reward} {json.dumps(reward_kwargs, sort_keys=True)}"


def paired_difference(
    before: Sequence[dict[str, Any]],
    after: Sequence[dict[str, Any]],
    key: str,
    seed: int | np.random.Generator = 0,
    reps: int = PAIRED_REPS,
) -> tuple[float, float, float] | None:
    """Mean of after minus before over the test users both played, and its 95% interval.

    Users are matched by card and seed (train-llm plays the same ones before and after); the
    interval is a percentile bootstrap over users (``reps`` resamples drawn from ``seed``, or
    from the generator given, which a caller can share over several differences).

    Returns:
        ``(mean, lo, hi)``, or None when no user is in both.

    Example:
        >>> b = [{"card": c, "seed": 1, "x": 0.0} for c in "abcd"]
        >>> a = [{"card": c, "seed": 1, "x": 1.0} for c in "abcd"]
        >>> paired_difference(b, a, "x")
        (1.0, 1.0, 1.0)
    """
    then = {(e["card"], e["seed"]): e for e in before}
    now = {(e["card"], e["seed"]): e for e in after}
    keys = sorted(then.keys() & now.keys())
    if not keys:
        return None
    diff = np.array([float(now[k][key]) - float(then[k][key]) for k in keys])
    picks = np.random.default_rng(seed).integers(len(diff), size=(reps, len(diff)))
    lo, hi = np.percentile(diff[picks].mean(axis=1), [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def _episodes(path: Path) -> list[dict[str, Any]] | None:
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load(path: str | Path) -> list[dict[str, Any]]:
    """The train-llm runs at ``path``, each as a dict for the report.

    Each has ``name``, ``reward`` (as trained), ``label`` (:func:`study_label`), ``settings``
    (its ``args.json``, or ``{}``), ``before``/``after`` (``eval.json``'s metrics),
    ``wall_s``, ``machine``, ``source`` (the folder) and ``paired``: ``{"success": (mean,
    lo, hi), "final_emotion": ...}`` from the episode files (empty without them).

    Raises:
        InvalidArgument: ``path`` holds no run, or a run's ``eval.json`` is not train-llm's.
    """
    folders = _runs_in(Path(path))
    if not folders:
        raise InvalidArgument("study", "llm_results", str(path), _WHAT)
    runs = []
    for folder in folders:
        result = _read_json(folder / "eval.json")
        if not isinstance(result, dict) or not all(
            isinstance(result.get(k), dict)
            and "success" in result[k]
            and "final_emotion" in result[k]
            for k in ("before", "after")
        ):
            raise InvalidArgument(
                "study", "llm_results", str(folder / "eval.json"), _WHAT + " (before and after)"
            )
        settings = _read_json(folder / "args.json") if (folder / "args.json").is_file() else {}
        settings = settings if isinstance(settings, dict) else {}
        try:
            kwargs = json.loads(settings.get("reward_kwargs") or "{}")
        except (TypeError, ValueError):
            kwargs = {}
        reward = str(result.get("reward") or settings.get("reward") or "?")
        before = _episodes(folder / "episodes_before.jsonl")
        after = _episodes(folder / "episodes_after.jsonl")
        paired: dict[str, tuple[float, float, float]] = {}
        if before and after:
            for key, field in (("success", "success"), ("final_emotion", "final_emotion")):
                found = paired_difference(before, after, field)
                if found is not None:
                    paired[key] = found
        runs.append(
            {
                "name": str(result.get("name") or folder.name),
                "reward": reward,
                "label": study_label(reward, kwargs if isinstance(kwargs, dict) else {}),
                "settings": settings,
                "before": result["before"],
                "after": result["after"],
                "wall_s": result.get("wall_s"),
                "machine": result.get("machine", ""),
                "source": str(folder),
                "paired": paired,
            }
        )
    return runs


def llm_verdict(paired: dict[str, tuple[float, float, float]], soothing_after: float) -> str:
    """What GRPO did to the policy, judged on the paired intervals.

    ``helps`` / ``hurts``: the success difference's interval lies above / below 0;
    ``soothes``: success unchanged, final emotion up (interval above 0) and the soothing index
    after training at least :data:`SOOTHING_AT`; ``emotion up`` / ``emotion down``: the
    emotion interval excludes 0 otherwise; ``no detectable change``: both intervals hold 0;
    ``""``: no intervals (the run's episode files are missing).
    """
    success, emotion = paired.get("success"), paired.get("final_emotion")
    if success is None or emotion is None:
        return ""
    if success[1] > 0:
        return "helps"
    if success[2] < 0:
        return "hurts"
    if emotion[1] > 0:
        return "soothes" if soothing_after >= SOOTHING_AT else "emotion up"
    if emotion[2] < 0:
        return "emotion down"
    return "no detectable change"


def _ci(value: tuple[float, float, float] | None, pct: bool) -> str:
    if value is None:
        return "n/a"
    mid, lo, hi = value
    if pct:
        return f"{mid:+.0%} [{lo:+.0%}, {hi:+.0%}]"
    return f"{mid:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def _model(settings: dict[str, Any]) -> str:
    if settings.get("tiny"):
        return "tiny random-weights model"
    return str(settings.get("model") or "SmolLM2-135M-Instruct")


def _strategy_cell(rows: Sequence[dict[str, Any]], label: str) -> str:
    """The strategy level's verdicts for ``label``: ``ppo: matches; hppo: soothes``."""
    cells = [
        f"{r['learner']}: "
        + (
            f"the reference, {r['success_iqm']:.0%}"
            if r["verdict"] == "reference"
            else f"{r['verdict']} ({r['success_iqm']:.0%})"
        )
        for r in rows
        if r["reward"] == label and r.get("verdict") and not r.get("dropped")
    ]
    if cells:
        return "; ".join(cells)
    if any(r["reward"] == label for r in rows):
        return "not judged (every learner dropped)"
    return "not in this study"


def section(
    runs: Sequence[dict[str, Any]] | None, rows: Sequence[dict[str, Any]], where: str
) -> list[str]:
    """The report's "The LLM level" section (Markdown lines).

    Args:
        runs: :func:`load`'s runs, or None (the section then says how to make them).
        rows: The strategy level's rows of one env's main setting, with their verdicts.
        where: Where those rows are from ("in the `default` setting"), for the text.
    """
    lines = ["## The LLM level", ""]
    if not runs:
        return [*lines, HOW_TO]
    lines += [
        "Language-model policies trained with GRPO on `EmpathyDialogueText-v0` by "
        "`dialogue-gym train-llm` (`docs/llm_policies.md`), each "
        "evaluated on the same test users before and after training; differences are paired "
        f"(after minus before per user, 95% bootstrap interval over users, {PAIRED_REPS} "
        f"resamples, seeded). Beside each, the strategy level's verdicts for the same reward "
        f"({where}).",
        "",
        "| run | reward | success, before → after | final emotion, before → after "
        "| success change [95% CI] | final emotion change [95% CI] | soothing index after "
        "| LLM level | strategy level |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        b, a = run["before"], run["after"]
        soothing = a.get("soothing_index", float("nan"))
        verdict = llm_verdict(run["paired"], soothing) or "no intervals (episode files missing)"
        lines.append(
            f"| `{run['name']}` | {run['label']} | {b['success']:.0%} → {a['success']:.0%} "
            f"| {b['final_emotion']:.1f} → {a['final_emotion']:.1f} "
            f"| {_ci(run['paired'].get('success'), True)} "
            f"| {_ci(run['paired'].get('final_emotion'), False)} | {soothing:.2f} "
            f"| {verdict} | {_strategy_cell(rows, run['label'])} |"
        )
    lines += ["", "Settings of each run (its args.json) and where it ran:", ""]
    for run in runs:
        s = run["settings"]
        wall = (
            f", {run['wall_s'] / 60:.0f} min" if isinstance(run.get("wall_s"), (int, float)) else ""
        )
        lines.append(
            f"- `{run['name']}`: {_model(s)}, {s.get('steps', '?')} GRPO steps x "
            f"{s.get('prompts_per_step', '?')} users x {s.get('num_generations', '?')} "
            f"conversations, {s.get('max_turns', '?')} turns of at most "
            f"{s.get('turn_tokens', '?')} tokens, lr {s.get('learning_rate', '?')}, "
            f"{b_episodes(run)} test users{wall} on {run['machine'] or 'an unrecorded machine'} "
            f"(`{run['source']}`)"
        )
    lines += [
        "",
        "*helps* / *hurts*: the success change's interval lies above / below 0; *soothes*: "
        f"success unchanged, final emotion up and a soothing index of at least {SOOTHING_AT} "
        "after training (the emotion gained comes from users whose need stayed unmet); "
        "*no detectable change*: both intervals hold 0.",
    ]
    return lines


def b_episodes(run: dict[str, Any]) -> str:
    """How many test users the run was evaluated on (``eval.json``'s ``episodes``)."""
    return str(run["before"].get("episodes", "?"))


def _names(items: Sequence[str]) -> str:
    return ", ".join(f"`{x}`" for x in items)


def _strategy_clause(rows: Sequence[dict[str, Any]], where: str) -> str:
    """What the strategy level found in one env's main setting, as a clause."""
    judged = [r for r in rows if r.get("verdict") not in (None, "", "reference", "dropped")]
    if not judged:
        refs = [r for r in rows if r.get("reward") == "sparse"]
        if refs and all(r.get("dropped") for r in refs):
            return f"{where}, no learner learned the coarse bonus, so no reward is judged"
        return f"{where}, no reward was compared with the coarse bonus"
    replaces = [r["reward"] for r in judged if r["verdict"] in ("beats", "matches")]
    soothe = [r["reward"] for r in judged if r["verdict"] == "soothes"]
    return (
        f"{where}, "
        + (
            f"{_names(dict.fromkeys(replaces))} can replace the coarse bonus (for at least "
            "one learner)"
            if replaces
            else "no reward replaces the coarse bonus"
        )
        + (f" while {_names(dict.fromkeys(soothe))} can only soothe" if soothe else "")
    )


def combined_answer(
    runs: Sequence[dict[str, Any]] | None, strategy: dict[str, Sequence[dict[str, Any]]]
) -> str:
    """One sentence that answers at both levels, from the verdicts (Markdown).

    Args:
        runs: :func:`load`'s runs, or None.
        strategy: For each env's main setting (named as the sentence names it, with its
            preposition: "in the `default` setting"), the strategy level's rows there.

    Example:
        >>> rows = [{"reward": "final_emotion", "learner": "ppo", "verdict": "soothes"}]
        >>> print(combined_answer(None, {"for the default user": rows}))
        **Both levels.** At the strategy level, for the default user, no reward replaces the coarse bonus while `final_emotion` can only soothe; the LLM level is not in this report (`--llm-results`: see below).
    """
    clauses = "; ".join(_strategy_clause(rows, where) for where, rows in strategy.items())
    soothe = {
        r["reward"]
        for rows in strategy.values()
        for r in rows
        if r.get("verdict") == "soothes" and not r.get("dropped")
    }
    if not runs:
        return (
            f"**Both levels.** At the strategy level, {clauses}; the LLM level is not in this "
            "report (`--llm-results`: see below)."
        )
    verdicts = {
        run["name"]: llm_verdict(run["paired"], run["after"].get("soothing_index", 0.0))
        for run in runs
    }
    helped = [n for n, v in verdicts.items() if v == "helps"]
    soothed = [run for run in runs if verdicts[run["name"]] == "soothes"]
    quiet = [n for n, v in verdicts.items() if v == "no detectable change"]
    parts = []
    if helped:
        parts.append(f"{_names(helped)} raised success")
    elif all(r["before"]["success"] == r["after"]["success"] == 0 for r in runs):
        parts.append("no run changed success (0% before and after in every run)")
    else:
        parts.append("no run changed success detectably")
    for run in soothed:
        mid, lo, hi = run["paired"]["final_emotion"]
        parts.append(
            f"`{run['name']}` ({run['label']}) soothed: final emotion {mid:+.1f} [{lo:+.1f}, "
            f"{hi:+.1f}] with no need met (soothing index {run['after']['soothing_index']:.2f})"
        )
    if quiet:
        parts.append(f"{_names(quiet)} showed no change the test users can detect")
    both = [r["label"] for r in soothed if r["label"] in soothe]
    tail = ""
    if both:
        tail = f", so the LLM level repeats the strategy level's soothing verdict for {_names(dict.fromkeys(both))}"
    if not helped:
        tail += (
            " and" if tail else ", so the LLM level"
        ) + " cannot yet test whether a reward replaces the coarse bonus (no policy succeeded)"
    return (
        f"**Both levels.** At the strategy level, {clauses}; at the LLM level "
        f"({len(runs)} GRPO run{'s' if len(runs) != 1 else ''}) " + "; ".join(parts) + tail + "."
    )
