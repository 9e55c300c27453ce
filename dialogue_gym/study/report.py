"""The reward study's report files: the CSVs, the plots, ``report.md`` and ``summary.json``.

:func:`write` builds them from the records: the rows (:mod:`~dialogue_gym.study.aggregate`),
their verdicts (:mod:`~dialogue_gym.study.verdicts`), the words (:mod:`~dialogue_gym.study.tables`)
and the plots (:mod:`~dialogue_gym.study.plots`). Aggregates follow Agarwal et al. (2021, the ``rliable`` library): a run's score on a *task* is
its success rate on the test cards of one hidden need (six tasks); the interquartile mean
(IQM) pools runs x tasks, and its 95% interval is a stratified bootstrap over runs within each
task (:mod:`~dialogue_gym.study.intervals`, each row on a generator of its own). Every reward
is judged against the coarse bonus (``sparse``) of the same learner, setting and user by the
interval of their IQM difference and a declared margin (:mod:`~dialogue_gym.study.verdicts`);
the rules are stated in the report itself.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dialogue_gym.evaluation.machine import describe
from dialogue_gym.study import llm_level
from dialogue_gym.study.aggregate import add_chance, add_relative_grounding, aggregate
from dialogue_gym.study.plots import plot
from dialogue_gym.study.settings import DEFAULT_ENV
from dialogue_gym.study.tables import (
    answer,
    baselines_table,
    conditions,
    difference_cell,
    need_summary,
    need_table,
    problem_table,
    results_table,
    section,
    sensitivity_table,
    unsettled,
    verdict_cell,
)
from dialogue_gym.study.verdicts import (
    DEFAULT_MARGIN,
    FLAT_DELTA,
    SOLVES_AT,
    SOOTHING_AT,
    need_verdict,
    rules,
    verdicts,
)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
            )


#: Row fields that are lists or tables: kept out of ``aggregate.csv``.
_NOT_FLAT = (
    "curve",
    "curve_lo",
    "curve_hi",
    "trajectory",
    "curve_steps",
    "need_success",
    "need_soothing",
    "problem_success",
)


def load_note(load: Sequence[float] | None) -> str:
    """The machine's load while the study ran, in words (other jobs slow it down).

    Example:
        >>> load_note((0.1, 2.9))
        '1-minute load average 0.1 at the start, 2.9 at the end'
    """
    if not load:
        return "load not recorded"
    return f"1-minute load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end"


def _slug(env: str) -> str:
    """An env id as a file-name part: ``EmpathyDialogueHard-v0`` as is, odd characters as ``_``."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in env)


def write_csvs(
    out: Path,
    records: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    baselines: Sequence[dict[str, Any]],
) -> None:
    """The study's tables as CSV files: runs, curves, baselines, aggregate rows, needs."""
    _write_csv(
        out / "runs.csv",
        [
            {
                k: v
                for k, v in r.items()
                if k not in ("curve", "metrics", "sim", "fingerprint") and not k.startswith("card_")
            }
            | r["metrics"]
            | {"sim": r["sim"]}
            for r in records
        ],
    )
    _write_csv(
        out / "curves.csv",
        [
            {
                "run": r["run"],
                "setting": r["setting"],
                "reward": r["reward"],
                "learner": r["learner"],
                "seed": r["seed"],
                **point,
            }
            for r in records
            for point in r["curve"]
        ],
    )
    _write_csv(
        out / "baselines.csv",
        [{"setting": b["setting"], "policy": b["policy"], **b["metrics"]} for b in baselines],
    )
    _write_csv(
        out / "aggregate.csv",
        [{k: v for k, v in r.items() if k not in _NOT_FLAT} for r in rows],
    )
    _write_csv(
        out / "needs.csv",
        [
            {
                "setting": r["setting"],
                "learner": r["learner"],
                "reward": r["reward"],
                "need": need,
                "success": success,
                "soothing_index": r.get("need_soothing", {}).get(need, ""),
                "verdict": need_verdict(success, r.get("need_soothing", {}).get(need)),
            }
            for r in rows
            for need, success in r.get("need_success", {}).items()
        ]
        or [{"setting": "", "learner": "", "reward": "", "need": "", "success": ""}],
    )


def answers_by_env(
    by_env: Mapping[str, list[dict[str, Any]]], main: str
) -> tuple[list[str], list[str]]:
    """The answer's lines and the unsettled verdicts' lines, under a heading per user when the
    study has several."""
    several = list(by_env) != [DEFAULT_ENV]
    answers: list[str] = []
    still: list[str] = []
    for env, rows in by_env.items():
        found = unsettled(rows, main)
        if several:  # blank lines: a heading line is not the list's lazy continuation
            answers += [f"**{env}**:", "", *answer(rows, main), ""]
            still += [f"**{env}**:", "", *found, ""] if found else []
        else:
            answers += answer(rows, main)
            still += found
    while still and not still[-1]:
        still.pop()
    if answers and answers[-1]:
        answers.append("")  # a paragraph of its own, not the last list item's continuation
    return answers, still


def breakdown_sections(by_env: Mapping[str, list[dict[str, Any]]], main: str) -> list[str]:
    """The per-need and per-problem sections, one of each per user."""
    several = list(by_env) != [DEFAULT_ENV]
    lines: list[str] = []
    for env, rows in by_env.items():
        heading = f" ({env})" if several else ""
        needs = need_table(rows, main)
        if needs:
            lines += section(
                f"Per hidden need{heading}",
                f"Success on the test cards of each hidden need (all seeds pooled); *solves*: at "
                f"least {SOLVES_AT:.0%}; *soothes*: below that with a soothing index of at least "
                f"{SOOTHING_AT} on that need (in brackets); *fails*: neither.",
                needs,
                "",
                *need_summary(rows, main),
            )
        problems = problem_table(rows, main)
        if problems:
            lines += section(
                f"Per problem type{heading}",
                "Success on the test cards of each problem type (ESConv's; 6 cards each, 12 for "
                "ongoing depression, all seeds pooled):",
                problems,
            )
    return lines


def sensitivity_section(
    rows: list[dict[str, Any]], learner: str, seeds: int, of: str = ""
) -> list[str]:
    """The simulator sweep's section: success per setting and reward, and where emotion-grounded
    rewards can and cannot replace the coarse bonus."""
    can, cannot = conditions(rows, learner)
    return [
        "",
        f"## Sensitivity to the simulator{of} ({learner}, {seeds} seeds per cell)",
        "",
        "Success IQM per setting and reward (soothing index; a verdict where the reward does "
        "not match the coarse bonus):",
        "",
        sensitivity_table(rows, learner),
        "",
        "Emotion-grounded rewards **can** replace the coarse bonus under: "
        + ("; ".join(can) if can else "none of the settings")
        + ".",
        "",
        "They **cannot** under: " + ("; ".join(cannot) if cannot else "none of the settings") + ".",
        "",
        "An emotion signal is only as trustworthy as the simulator producing it: these "
        "verdicts hold for this rule-based user under these settings, not for people.",
    ]


def write(
    out: Path,
    records: list[dict[str, Any]],
    baselines: list[dict[str, Any]],
    args: Any,
    elapsed: float,
    command: str,
    load: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Write the CSVs, plots, ``summary.json`` and ``report.md``; return the summary.

    ``load``: the machine's 1-minute load average at the start and at the end of the study
    (:func:`os.getloadavg`), quoted beside the wall time.
    """
    from dialogue_gym.evaluation.metrics import METRIC_DOCS

    rows = aggregate(records, args.bootstrap_reps)
    add_relative_grounding(rows, baselines)
    add_chance(rows, baselines)
    main = records[0]["setting"]
    margin = getattr(args, "margin", DEFAULT_MARGIN * 100) / 100
    verdicts(rows, main, margin)
    envs = list(dict.fromkeys(r["env"] for r in rows))
    llm_runs = llm_level.load(args.llm_results) if getattr(args, "llm_results", "") else None
    write_csvs(out, records, rows, baselines)

    by_env = {env: [r for r in rows if r["env"] == env] for env in envs}
    env_baselines = {
        env: [b for b in baselines if b.get("env", DEFAULT_ENV) == env] for env in envs
    }
    plots: list[str] = []
    if args.plots:
        for k, env in enumerate(envs):
            suffix = "" if k == 0 else "_" + _slug(env)
            plots += plot(out, by_env[env], env_baselines[env], main, suffix)

    several = envs != [DEFAULT_ENV]
    first = envs[0]
    tables = {env: results_table(by_env[env], main) for env in envs}

    def where(env: str) -> str:
        return f"with `{env}` in the `{main}` setting" if several else f"in the `{main}` setting"

    main_rows = {env: [r for r in by_env[env] if r["setting"] == main] for env in envs}
    answers, still = answers_by_env(by_env, main)
    answers.append(
        llm_level.combined_answer(llm_runs, {where(env): main_rows[env] for env in envs})
    )
    sweep_learner = next((r["learner"] for r in by_env[first] if r["setting"] != main), None)
    lines = [
        "# Reward study",
        "",
        f"Command: `{command}` — {len(records)} runs, {budgets_line(records)}, "
        f"{elapsed / 60:.1f} min on {describe(python=False)} ({args.workers} worker processes; "
        f"{load_note(load)}).",
        "",
        f"Settings: `{json.dumps({k: v for k, v in vars(args).items() if k != 'progress'}, default=str)}`",
    ]
    for env in envs:
        user = f", user `{env}`" if several else ""
        lines += [
            "",
            f"## Main setting: `{main}`{user} (test cards, template voice, IQM over "
            f"{args.seeds} seeds x 6 needs)",
            "",
            tables[env],
            "",
            "Reference policies (same episodes):",
            "",
            baselines_table(env_baselines[env], main),
        ]
    lines += [
        "",
        "## The answer",
        "",
        *answers,
        "",
        f"Margin: δ = {100 * margin:g} success points, declared before the study ran "
        "(`--margin`; in `args.json` and, when not the default, in every run's fingerprint). "
        "Only *beats* and *matches* say a reward can replace the coarse bonus.",
        "",
        "Rules: " + "; ".join(f"*{k}*: {v}" for k, v in rules(margin).items()) + ".",
    ]
    if still:
        lines += [
            "",
            "Verdicts this budget cannot settle (a learning curve, the reward's or the coarse "
            f"bonus's, still gained {FLAT_DELTA:.0%} or more at its last evaluation):",
            "",
            *still,
        ]
    lines += breakdown_sections(by_env, main)
    if sweep_learner is not None:
        of = f" of {first}" if several else ""
        lines += sensitivity_section(by_env[first], sweep_learner, args.sweep_seeds, of)
    lines += [""] + llm_level.section(llm_runs, main_rows[first], where(first))
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "## Metrics", ""] + [f"- `{k}`: {v}" for k, v in METRIC_DOCS.items()]
    (out / "report.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = {
        "rows": rows,
        "baselines": baselines,
        "envs": envs,
        "table": tables[first],
        "tables": tables,
        "elapsed_s": elapsed,
        "load": list(load) if load else None,
        "answer": answers,
        "unsettled": still,
        "plots": plots,
        "llm": llm_runs,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    return summary


def budgets_line(records: Sequence[dict[str, Any]]) -> str:
    """The runs' budgets as the report's first line gives them: one number, or per learner,
    with the decisions trained beside the budget where they differ (on-policy learners train
    whole rollouts: PPO asked for 36,000 decisions in five chunks trains 38,400).

    Example:
        >>> budgets_line([{"learner": "ppo", "steps": 8000}, {"learner": "hppo", "steps": 8000}])
        '8000 agent decisions each'
        >>> budgets_line([{"learner": "ppo", "steps": 40000}, {"learner": "hppo", "steps": 12000}])
        'agent decisions per learner: ppo 40000, hppo 12000'
        >>> budgets_line([{"learner": "ppo", "budget": 36000, "steps": 38400},
        ...               {"learner": "a2c", "budget": 36000, "steps": 36000}])
        '36000 agent decisions each (trained in whole rollouts: ppo 38400)'
    """
    asked = {r["learner"]: r.get("budget", r.get("steps")) for r in records}
    trained = {r["learner"]: r.get("steps") for r in records}
    more = {k: v for k, v in trained.items() if v != asked[k]}
    if len(set(asked.values())) <= 1:
        text = f"{next(iter(asked.values()), '?')} agent decisions each"
        if more:
            text += " (trained in whole rollouts: "
            text += ", ".join(f"{k} {v}" for k, v in more.items()) + ")"
        return text
    return "agent decisions per learner: " + ", ".join(
        f"{k} {v}" + (f" ({more[k]} trained)" if k in more else "") for k, v in asked.items()
    )


def terminal_summary(summary: dict[str, Any], out: Path, runs: int, elapsed: float) -> str:
    """What the study prints at the end: a narrow table, the answer in words, the files.

    Example:
        >>> row = {"setting": "default", "learner": "ppo", "reward": "sparse", "success_iqm": 0.5,
        ...        "success_lo": 0.3, "success_hi": 0.7, "mean_turns": 8.0, "soothing_index": 0.0,
        ...        "verdict": "reference", "speed": ""}
        >>> text = terminal_summary({"rows": [row], "answer": ["- **ppo** — ..."],
        ...     "unsettled": [], "plots": ["needs.png"]}, Path("out"), 1, 60.0)
        >>> "ppo — ..." in text and "out/needs.png" in text
        True
    """
    rows = summary["rows"]
    main = rows[0]["setting"] if rows else ""
    envs = list(dict.fromkeys(r.get("env", DEFAULT_ENV) for r in rows))
    head = f"{'learner':<13} {'reward':<17} {'success [95% CI]':<17} "
    head += f"{'vs sparse, pts':<15} {'soothe':>6}  verdict vs sparse"
    lines: list[str] = []
    for env in envs:
        user = f", {env}" if envs != [DEFAULT_ENV] else ""
        if lines:
            lines.append("")
        lines += [f"Main setting: {main}{user} (test cards)", head, "-" * len(head)]
        for r in rows:
            if r["setting"] != main or r.get("env", DEFAULT_ENV) != env:
                continue
            ci = f"{r['success_iqm']:.0%} [{r['success_lo']:.0%}, {r['success_hi']:.0%}]"
            vs = difference_cell(r).split(" | ")[0]
            lines.append(
                f"{r['learner']:<13} {r['reward']:<17} {ci:<17} {vs:<15} "
                f"{r['soothing_index']:>6.2f}  {verdict_cell(r)}"
            )
    lines += ["", "The answer:"]
    lines += [line.replace("**", "") for line in summary["answer"]]
    if summary.get("unsettled"):
        lines += ["", "Not settled at this budget (a learning curve still climbing):"]
        lines += [line.replace("**", "") for line in summary["unsettled"]]
    lines += [
        "",
        f"{runs} runs in {elapsed / 60:.1f} min. The verdict rules, the per-need breakdown and "
        "every metric are in the report:",
        f"  report: {out / 'report.md'}",
    ]
    if summary.get("plots"):
        lines.append("  plots:  " + ", ".join(str(out / p) for p in summary["plots"]))
    lines.append(f"  data:   {out / 'runs.jsonl'} (and the CSVs beside it)")
    return "\n".join(lines)
