"""mkdocs hook: the calibration table in ``simulator.md``, computed from the code at build time.

Replaces ``<!-- calibration-table -->`` with the reference policies' figures over the test
cards (template voice, seed 0, default ``SimConfig``), so the page cannot drift from the
simulator it documents. It takes a second or two.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- calibration-table -->"
POLICIES = (
    "random",
    "always-question",
    "always-reassure",
    "always-suggest",
    "stage-heuristic",
    "oracle",
)
TARGETS = {
    "random": "<= 15% success",
    "always-reassure": "0% success, final emotion above random's",
    "always-suggest": "most users leave",
    "stage-heuristic": ">= 70% success",
    "oracle": ">= 90% success",
}


def calibration_table() -> str:
    from dialogue_gym.evaluation.episodes import evaluate, summarize

    lines = [
        "| policy | success | final emotion | user left | turns | target |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in POLICIES:
        s = summarize(evaluate(name, env_kwargs={"scenarios": "test"}, seed=0))
        lines.append(
            f"| {name} | {s['success_rate']:.0%} | {s['final_emotion']:.1f} | "
            f"{s['user_left_rate']:.0%} | {s['mean_turns']:.1f} | {TARGETS.get(name, '')} |"
        )
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, calibration_table())
    return markdown
