"""``dialogue-gym ui`` in a real browser: the app served on loopback, driven by Chromium.

The command starts as a person starts it (``python -m dialogue_gym.cli ui``, template voice, the
committed sample study preloaded) on a free port; Playwright's sync API drives the
distribution's Chromium (``apt-get install chromium``; no browser is downloaded at run time).
Each test plays, reads or compares through the page and reads the result back from it, and takes
a screenshot. ``UPDATE_SCREENSHOTS=1 pytest tests/test_ui_browser.py -m ""`` writes them to
``docs/ui/*.png``, the ones ``docs/ui.md`` shows; otherwise they go to a temporary folder (so
``make test`` leaves the working tree clean) and are checked to be real, non-blank images.

Skipped, with the reason, when Playwright, Gradio or Chromium is missing; ``make test``
installs them. Marked ``server`` and ``slow``: the fast tier leaves them out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_ui import RESOLVING, WORDS  # typed turns and strategy buttons, checked there

from dialogue_gym.core.vocabulary import NEEDS
from dialogue_gym.ports import free_port
from dialogue_gym.ui.play import STRATEGY_ENV, TEXT_ENV, PlayOptions, PlaySession

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
#: The sample study, relative to the repository's root (the server's working folder): the
#: paths typed into the page show in the screenshots.
SAMPLES = Path("tests/data/ui_samples/study")
DOCS_SHOTS = ROOT / "docs" / "ui"
CHROMIUM = (
    shutil.which("chromium")
    or shutil.which("chromium-browser")
    or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
)
#: How long the app may take to come up (Gradio's import is most of it on a busy machine).
START_TIMEOUT = 120.0
#: How long one page update may take.
STEP_MS = 30_000

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright: pip install playwright"
)
pytest.importorskip("gradio", reason="needs the 'ui' extra: pip install 'dialogue_gym[ui]'")
if CHROMIUM is None:
    pytest.skip(
        "needs the system Chromium (apt-get install -y chromium); Playwright's own download "
        "is not used",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    command = [sys.executable, "-m", "dialogue_gym.cli", "ui", "--port", str(port)]
    command += ["--voice", "template", "--logs", str(SAMPLES / "episodes")]
    command += ["--results", str(SAMPLES)]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"dialogue-gym ui exited with {proc.returncode}: {proc.stdout.read().decode()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"dialogue-gym ui did not answer within {START_TIMEOUT:.0f} s")
        time.sleep(0.5)
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(url)
    page.wait_for_selector("#play-start")
    yield page
    context.close()


# -- helpers: what a person does, and what they read ---------------------------------------


def _text(page, selector: str) -> str:
    return page.inner_text(selector)


def _wait_change(page, selector: str, before: str, must: str) -> str:
    """The element's text once it differs from ``before`` and contains ``must`` (an update in
    flight shows a timer first)."""
    page.wait_for_function(
        "([sel, before, must]) => { const e = document.querySelector(sel); "
        "return e && e.innerText !== before && e.innerText.includes(must); }",
        arg=[selector, before, must],
        timeout=STEP_MS,
    )
    return _text(page, selector)


def _wait_for_text(page, selector: str, pattern: str) -> str:
    page.wait_for_function(
        "([sel, pattern]) => { const e = document.querySelector(sel); "
        "return e && new RegExp(pattern).test(e.innerText); }",
        arg=[selector, pattern],
        timeout=STEP_MS,
    )
    return _text(page, selector)


def _choose(page, elem_id: str, option: str) -> None:
    """Pick ``option`` from a Gradio dropdown by its shown name."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()


def _type_choice(page, elem_id: str, text: str) -> None:
    """Type into a dropdown that takes any value (the card), then Enter."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(text)
    box.press("Enter")
    page.keyboard.press("Escape")


def _wait_turn(page, turn: int) -> str:
    """The status line once it shows ``turn`` (a turn in flight shows a timer first)."""
    return _wait_for_text(page, "#play-status", rf"^Emotion: .* turn {turn} of ")


def _emotion(status: str) -> int:
    match = re.search(r"Emotion: (\d+)/100", status)
    assert match, status
    return int(match.group(1))


def _start(page, env_id: str, seed: int, card: str) -> str:
    if env_id != TEXT_ENV:
        _choose(page, "play-env", env_id)
    page.fill("#play-seed textarea", str(seed))
    _type_choice(page, "play-card", card)
    page.click("#play-start")
    return _wait_for_text(page, "#play-status", rf"turn 0 of [\s\S]*Seed {seed}\.")


def _axis_labels(page, plot: str) -> dict[str, list[str]]:
    """A plot's tick labels as drawn, by axis ("X", "Y"), read from its SVG."""
    return page.evaluate(
        """(sel) => { const out = {};
          for (const g of document.querySelectorAll(sel + ' svg g.role-axis')) {
            const name = (g.getAttribute('aria-label') || '').split('-')[0];
            out[name] = Array.from(g.querySelectorAll('.role-axis-label text'),
                                   t => t.textContent); }
          return out; }""",
        f"#{plot}",
    )


def _legend(page, plot: str) -> list[dict[str, object]]:
    """What a person reads as a plot's legend: the labels of the plot's own legend drawn
    whole inside the plot, and those of a legend below it (``#<plot>-legend``) shown whole,
    each with its colour."""
    return page.evaluate(
        """(id) => { const out = [];
          const inside = (r, box) => r.width > 0 && r.left >= box.left - 1 &&
            r.right <= box.right + 1 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
          const svg = document.querySelector('#' + id + ' svg');
          if (svg) {
            const box = svg.getBoundingClientRect();
            for (const t of svg.querySelectorAll('.role-legend-label text')) {
              if (inside(t.getBoundingClientRect(), box))
                out.push({label: t.textContent, colour: null, where: 'plot'});
            } }
          const legend = document.querySelector('#' + id + '-legend');
          if (legend) {
            const box = legend.getBoundingClientRect();
            for (const item of legend.querySelectorAll('.legend-item')) {
              const label = item.querySelector('.legend-label');
              if (!label || label.scrollWidth > label.clientWidth + 1) continue;
              if (!inside(label.getBoundingClientRect(), box)) continue;
              const swatch = item.querySelector('.legend-swatch');
              out.push({label: label.innerText,
                        colour: swatch && getComputedStyle(swatch).backgroundColor,
                        where: 'below'}); } }
          return out; }""",
        plot,
    )


def _line_colours(page, plot: str) -> dict[str, str]:
    """Each series' line colour in a plot's SVG, as ``rgb(r, g, b)``."""
    strokes = page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel + ' svg path'))
             .filter(p => p.getAttribute('aria-roledescription') === 'line mark')
             .map(p => [p.getAttribute('aria-label') || '', p.getAttribute('stroke') || ''])""",
        f"#{plot}",
    )
    colours = {}
    for label, stroke in strokes:
        match = re.search(r"series: (.*)$", label)
        if match and re.fullmatch(r"#[0-9a-fA-F]{6}", stroke):
            r, g, b = (int(stroke[i : i + 2], 16) for i in (1, 3, 5))
            colours[match.group(1)] = f"rgb({r}, {g}, {b})"
    return colours


def _overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        min(a["right"], b["right"]) - max(a["left"], b["left"]) > 0.5
        and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 0.5
    )


def _chat_layout(page, chat: str) -> dict[str, object]:
    """The boxes of a chat's label and icons, and the visible part of each message (clipped
    to the scrolling area)."""
    return page.evaluate(
        """(sel) => { const c = document.querySelector(sel);
          const box = e => { const r = e.getBoundingClientRect();
            return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
          const log = c.querySelector('[role=log]'); const view = box(log);
          const messages = [];
          for (const m of log.querySelectorAll('.message-row')) {
            const r = box(m);
            const seen = {left: Math.max(r.left, view.left), right: Math.min(r.right, view.right),
                          top: Math.max(r.top, view.top), bottom: Math.min(r.bottom, view.bottom)};
            if (seen.bottom - seen.top > 0.5) messages.push({box: seen, text: m.innerText});
          }
          return {badge: box(c.querySelector('label[data-testid=block-label]')),
                  icons: Array.from(c.querySelectorAll('.top-panel button'), box),
                  messages, scrollTop: log.scrollTop,
                  scrollable: log.scrollHeight - log.clientHeight}; }""",
        f"#{chat}",
    )


def _scroll_chat(page, chat: str, fraction: float) -> None:
    page.eval_on_selector(
        f"#{chat} [role=log]",
        "(log, f) => { log.scrollTop = f * (log.scrollHeight - log.clientHeight); }",
        fraction,
    )
    page.wait_for_timeout(200)


#: Each report table header's rendered lines: its characters grouped by the line box they
#: are drawn on.
HEADER_LINES = """() => Array.from(document.querySelectorAll('#report-md th'), th => {
    const lines = []; let top = null; const range = document.createRange();
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (let i = 0; i < n.data.length; i++) {
        range.setStart(n, i); range.setEnd(n, i + 1);
        const rects = range.getClientRects(); if (!rects.length) continue;
        const t = rects[0].top;
        if (top === null || Math.abs(t - top) > 3) { lines.push(''); top = t; }
        lines[lines.length - 1] += n.data[i];
      } }
    return {text: th.textContent, lines, scroll: th.scrollWidth, client: th.clientWidth};
  })"""


def _settle(page) -> None:
    """Let the plots draw (Vega renders after the values arrive)."""
    page.wait_for_timeout(800)


def _shot(page, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        folder = DOCS_SHOTS
    else:
        import tempfile

        folder = Path(tempfile.gettempdir()) / f"dialogue_gym_ui_shots_{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    _settle(page)
    page.screenshot(path=str(folder / name), full_page=True)
    from PIL import Image

    with Image.open(folder / name) as image:
        colours = image.convert("L").getextrema()
        assert image.width > 400 and image.height > 300 and colours[0] != colours[1], name


# -- Play -----------------------------------------------------------------------------------


def test_play_a_whole_episode_by_typing(page):
    status = _start(page, TEXT_ENV, seed=4, card="0")
    typed = []
    while "outcome:" not in status:
        words = WORDS[len(typed) % len(WORDS)]
        page.fill("#play-text textarea", words)
        page.click("#play-say")
        typed.append(words)
        status = _wait_turn(page, len(typed))
    # The page's numbers are gym.make's: the same words, seed and card, played without a page.
    session = PlaySession.start(PlayOptions(env_id=TEXT_ENV, card="0", seed=4))
    for words in typed:
        session.act(words)
    assert session.done
    assert _emotion(status) == round(session.turns[-1].emotion)
    assert f"outcome: {session.outcome}" in status
    chat = _text(page, "#play-chat")
    for message in session.messages:
        if message["role"] == "user":  # the simulated user's words, as the env said them
            assert message["content"] in chat
    outcome = _text(page, "#play-outcome")
    assert f"hidden need was: {session.hidden_need}" in outcome
    session.close()
    assert page.locator("#plot-emotion canvas, #plot-emotion svg").count() > 0
    _shot(page, "play_text.png")


def test_play_a_whole_episode_with_strategy_buttons(page):
    status = _start(page, STRATEGY_ENV, seed=1, card="0")
    assert page.locator("#play-text").is_hidden()
    assert _emotion(status) == 45
    for clicks, action in enumerate(RESOLVING, start=1):
        page.click(f"#strategy-{action}")
        status = _wait_turn(page, clicks)
        if "outcome:" in status:
            break
    assert "outcome: resolved" in status and _emotion(status) >= 70
    outcome = _text(page, "#play-outcome")
    assert outcome.startswith("Resolved:") and "hidden need was:" in outcome
    # The per-turn table: the strategies pressed, and the user's thanks at the end.
    table = _text(page, "#play-table")
    assert "Reflection of feelings" in table and "thank" in table
    _shot(page, "play_strategy.png")


def test_the_plots_tick_whole_turns(page):
    _start(page, STRATEGY_ENV, seed=1, card="0")
    plots = ["plot-emotion", "plot-state", "plot-cues", "plot-reward"]
    for turns in (0, 3):
        for clicks in range(1, turns + 1):
            page.click(f"#strategy-{RESOLVING[clicks - 1]}")
            _wait_turn(page, clicks)
        _settle(page)
        for plot in plots:
            axes = _axis_labels(page, plot)
            if plot == "plot-reward" and turns == 0:
                continue  # nothing paid before the first turn: an empty plot
            # Whole turns, each once, in order: no 0.5 between them, no "0.000000".
            first = 1 if plot == "plot-reward" else 0
            assert axes["X"] == [str(t) for t in range(first, turns + 1)], (plot, axes)
            for label in axes["Y"]:
                assert re.fullmatch(r"-?\d+(\.\d{1,2})?", label), (plot, label, axes["Y"])


def test_the_need_cues_legend_names_every_need_in_full(page):
    _start(page, STRATEGY_ENV, seed=1, card="0")
    for clicks in (1, 2):
        page.click(f"#strategy-{RESOLVING[clicks - 1]}")
        _wait_turn(page, clicks)
    _settle(page)
    # The six needs, in full, each in its line's colour.
    legend = _legend(page, "plot-cues")
    needs = [need.replace("_", " ") for need in NEEDS]
    assert sorted(item["label"] for item in legend) == sorted(needs), legend
    lines = _line_colours(page, "plot-cues")
    assert set(lines) == set(needs), lines
    for item in legend:
        if item["colour"] is not None:
            assert item["colour"] == lines[item["label"]], (item, lines)
    # The reward plot's legend: every series drawn, named.
    drawn = _line_colours(page, "plot-reward")
    assert sorted(item["label"] for item in _legend(page, "plot-reward")) == sorted(drawn)


# -- Browse, Compare, Study report ------------------------------------------------------------


def test_browse_a_sample_log_and_switch_episodes(page):
    page.get_by_role("tab", name="Browse").click()
    info = _wait_for_text(page, "#browse-info", "8 episode")
    assert "2 run(s)" in info
    first = _wait_for_text(page, "#browse-summary", "Outcome")
    page.click("#browse-next")
    second = _wait_change(page, "#browse-summary", first, "Outcome")
    assert second != first and "Outcome" in second
    # Filter to the soothing run: every episode ran out of turns, reflecting feelings.
    _choose(page, "browse-filter-reward", "final_emotion")
    shown = _wait_for_text(page, "#browse-summary", "reward final_emotion")
    assert "ran out of turns" in shown and "Reflection of feelings x10" in shown
    chat = _text(page, "#browse-chat")
    assert "[Reflection of feelings]" in chat
    # The return shown is the evaluation's, paid in the coarse bonus: not final_emotion's.
    paid = re.search(r"evaluation return \(sparse bonus\) (\d+\.\d{3})", shown)
    assert paid, shown
    log = SAMPLES / "episodes" / "default__final_emotion__ppo__s0.jsonl"
    episodes = [json.loads(line) for line in (ROOT / log).read_text().splitlines()]
    sparse = {f"{sum(s['reward_components']['sparse'] for s in e['steps']):.3f}" for e in episodes}
    assert paid.group(1) in sparse, (paid.group(1), sparse)
    assert "evaluation return (sparse bonus)" in page.input_value("#browse-episode input")
    assert "reward (sparse bonus)" in _text(page, "#browse-table")
    _shot(page, "browse.png")
    # Open one file by its path, as a person types it.
    page.fill("#browse-path textarea", str(SAMPLES / "episodes" / "default__sparse__ppo__s0.jsonl"))
    page.click("#browse-load")
    assert "4 episode(s) of 1 run(s)" in _wait_for_text(page, "#browse-info", "4 episode")


def test_the_chat_label_and_icons_never_cover_a_message(page):
    page.get_by_role("tab", name="Browse").click()
    _wait_for_text(page, "#browse-summary", "Outcome")
    _wait_for_text(page, "#browse-chat", "Reflection of feelings")
    checked = 0
    for fraction in (1.0, 0.5, 0.37, 0.0):  # as loaded (the end), then scrolled up
        _scroll_chat(page, "browse-chat", fraction)
        layout = _chat_layout(page, "browse-chat")
        assert layout["scrollable"] > 100 and layout["messages"], layout
        first = layout["messages"][0]  # the topmost message in view
        for cover in [layout["badge"], *layout["icons"]]:
            assert not _overlaps(cover, first["box"]), (fraction, cover, first)
            checked += 1
    assert checked >= 8


def test_compare_two_runs_on_the_same_card(page):
    page.get_by_role("tab", name="Compare").click()
    verdict = _wait_for_text(page, "#compare-verdict", "never met the hidden need")
    assert "resolved" in verdict and "ran out of turns" in verdict
    assert "reward sparse" in _text(page, "#compare-summary-a")
    assert "reward final_emotion" in _text(page, "#compare-summary-b")
    _shot(page, "compare.png")


def test_the_study_report_renders_tables_verdicts_and_plots(page):
    page.get_by_role("tab", name="Study report").click()
    text = _wait_for_text(page, "#report-md", "The answer")
    assert "soothes" in text and "final_emotion" in text
    page.wait_for_function("document.querySelectorAll('#report-plots img').length >= 3")
    # Table headers wrap between words only ("learner", never "learn" / "er").
    headers = page.evaluate(HEADER_LINES)
    assert len(headers) >= 10
    for header in headers:
        lines = header["lines"]
        assert "".join(lines) == header["text"], header
        for before, after in zip(lines, lines[1:], strict=False):
            assert before[-1:].isspace() or after[:1].isspace(), header
        assert header["scroll"] <= header["client"] + 1, header
    _shot(page, "report.png")


# -- bad input: a message on the page, and the app goes on -----------------------------------


def test_bad_input_gives_a_message_and_the_app_keeps_serving(page, server, tmp_path):
    _, proc = server
    status = _start(page, TEXT_ENV, seed=2, card="1")
    for words, message in (("", "the message is empty"), ("x" * 1001, "the most is 1000")):
        page.fill("#play-text textarea", words)
        page.click("#play-say")
        assert message in _wait_for_text(page, "#play-notice", re.escape(message))
    assert _text(page, "#play-status") == status  # no turn was spent
    page.fill("#play-text textarea", WORDS[0])
    page.click("#play-say")
    _wait_turn(page, 1)
    assert _text(page, "#play-notice").strip() == ""

    _type_choice(page, "play-card", "no-such-card")
    page.click("#play-start")
    notice = _wait_for_text(page, "#play-notice", "No card")
    assert "'no-such-card'" in notice
    assert "turn 1 of 10" in _text(page, "#play-status")  # the game in progress is kept
    _shot(page, "bad_input.png")

    bad = tmp_path / "malformed.jsonl"
    bad.write_text("this is not an episode\n{}\n", encoding="utf-8")
    page.get_by_role("tab", name="Browse").click()
    _wait_for_text(page, "#browse-info", "8 episode")
    page.fill("#browse-path textarea", str(bad))
    page.click("#browse-load")
    assert "not an episode log" in _wait_for_text(page, "#browse-notice", "not an episode log")
    assert "8 episode" in _text(page, "#browse-info")  # the logs loaded before are kept

    page.get_by_role("tab", name="Study report").click()
    page.fill("#report-path textarea", str(tmp_path))
    page.click("#report-load")
    assert "No report.md" in _wait_for_text(page, "#report-notice", "No report.md")

    assert proc.poll() is None
    page.get_by_role("tab", name="Play").click()
    page.click("#play-say")  # the box is empty again
    _wait_for_text(page, "#play-notice", "empty")
    with urllib.request.urlopen(page.url, timeout=5) as reply:
        assert reply.status == 200
