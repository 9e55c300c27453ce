"""The Study report tab's logic: a study's results folder read for the page, no browser needed.

``dialogue-gym study`` writes ``<out>/<name>/`` (see :mod:`dialogue_gym.study.report`):
``report.md`` (the tables, the verdicts in words, links to the plots), the plots
(``learning_curves.png``, ``final_success.png``, ``emotion_trajectories.png``, with a sweep
``sensitivity.png``), ``aggregate.csv``, ``runs.jsonl``, ``summary.json`` and
``episodes/<run>.jsonl`` (the final evaluation's transcripts). :func:`load_report` reads the
report and finds the plots it links to, so the page shows the text as Markdown and the plots
as images beside it, and points at the episode logs for the Browse tab.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "report.md").write_text("# Reward study\\n\\n## Plots\\n\\n![a.png](a.png)\\n")
    >>> _ = (folder / "a.png").write_bytes(b"\\x89PNG")
    >>> report = load_report(folder)
    >>> [p.name for p, _ in report.plots], "![" in report.markdown, report.episodes is None
    (['a.png'], False, True)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPORT_FILE", "Report", "ReportError", "load_report"]

#: The file a results folder is recognised by.
REPORT_FILE = "report.md"
_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")
#: Reports larger than this are refused (a study's is a few kB).
MAX_REPORT_BYTES = 5 * 2**20


class ReportError(ValueError):
    """A folder whose report cannot be shown; the message says why, for the page."""


@dataclass(frozen=True)
class Report:
    """A study's report, ready for the page.

    Attributes:
        folder: The results folder.
        markdown: ``report.md`` with its image links taken out (the page shows the plots).
        plots: ``(path, caption)`` of each plot the report links to that exists, in order, then
            any other PNG of the folder.
        episodes: The folder of episode logs (``episodes/``), if the study wrote one.
        files: The folder's files, by name (what else is there to open).
    """

    folder: Path
    markdown: str
    plots: list[tuple[Path, str]]
    episodes: Path | None
    files: list[str]


def load_report(folder: str | os.PathLike[str]) -> Report:
    """Read a study's results folder (or its ``report.md``).

    Args:
        folder: ``<out>/<name>/`` of ``dialogue-gym study``, or the ``report.md`` in it.

    Raises:
        ReportError: No such folder, no ``report.md`` in it, or one that is not text.
    """
    text = os.fspath(folder).strip()
    if not text:
        raise ReportError("Give a study results folder: <out>/<name>/ of dialogue-gym study.")
    path = Path(text).expanduser()
    if path.is_file() and path.name == REPORT_FILE:
        path = path.parent
    if not path.is_dir():
        raise ReportError(f"No such folder: {path}")
    report = path / REPORT_FILE
    if not report.is_file():
        raise ReportError(
            f"No {REPORT_FILE} in {path}: is it a study results folder? `dialogue-gym study` "
            "writes one to <out>/<name>/ (benchmarks/results/quick/ for --quick); "
            "`dialogue-gym study --report-only` rebuilds it from runs.jsonl."
        )
    if report.stat().st_size > MAX_REPORT_BYTES:
        raise ReportError(f"{report} is too large to be a study's report.")
    try:
        markdown = report.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReportError(f"{report} is not a text file.") from None
    plots: list[tuple[Path, str]] = []

    def take(match: re.Match[str]) -> str:
        src = path / match.group("src")
        # Only the folder's own files: a link elsewhere is left as text, not served.
        inside = src.resolve().is_relative_to(path.resolve())
        if inside and src.is_file():
            plots.append((src, match.group("alt") or src.name))
            return f"*(plot: {src.name}, shown above)*"
        return match.group(0).lstrip("!")

    markdown = _IMAGE.sub(take, markdown)
    linked = {p.name for p, _ in plots}
    plots += [(p, p.name) for p in sorted(path.glob("*.png")) if p.name not in linked]
    episodes = path / "episodes"
    return Report(
        folder=path,
        markdown=markdown,
        plots=plots,
        episodes=episodes if episodes.is_dir() and any(episodes.glob("*.jsonl")) else None,
        files=sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()),
    )
