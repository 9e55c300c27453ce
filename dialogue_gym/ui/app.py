"""The Gradio layout of ``dialogue-gym ui``: four tabs wired to the plain functions beside it.

The page is thin on purpose: what to show and every check of the input live in
:mod:`~dialogue_gym.ui.play`, :mod:`~dialogue_gym.ui.browse` and
:mod:`~dialogue_gym.ui.report_view`, tested without a browser; here they are laid out and
wired to events. Every handler turns a refusal (bad input, a malformed log, an unknown card)
into a message on the page, never an exception, so the app keeps serving.

Each browser tab has its own conversation and its own logs (``gr.State``); a conversation's
env is closed when the tab goes away or a new one starts.

Usage (what ``dialogue-gym ui`` does)::

    app = build_app(UiDefaults(voice="template", logs=("runs.jsonl",)))
    app.queue().launch(server_name="127.0.0.1", server_port=7860, css=CSS)
"""

from __future__ import annotations

import functools
import html
import logging
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import pandas as pd

import dialogue_gym
from dialogue_gym.core.vocabulary import NEEDS, STRATEGIES
from dialogue_gym.rewards import REWARDS
from dialogue_gym.ui.browse import (
    ALL,
    FILTERS,
    LogError,
    LogSet,
    common_cards,
    compare,
    episode_view,
    load_logs,
)
from dialogue_gym.ui.play import (
    NO_REWARD,
    RANDOM_CARD,
    SPLITS,
    TEXT_ENV,
    TEXT_ENVS,
    PlayInputError,
    PlayOptions,
    PlaySession,
    card_choices,
    parse_seed,
)
from dialogue_gym.ui.report_view import ReportError, load_report

__all__ = ["UiDefaults", "build_app"]

log = logging.getLogger(__name__)

#: Plot rows' columns (long format: one series per colour).
PLOT_COLUMNS = ["turn", "value", "series"]
#: The turn categories' order on a plot's axis (as numbers, not "0", "1", "10", "2"). Fixed:
#: the plot takes its data and this order in separate updates, and draws the data with the
#: order it had before. Turns past the last, in no log the page reads, would come after it.
TURN_ORDER = [str(turn) for turn in range(501)]
#: Series colours, in order (Vega's ``tableau10``, the plots' own default scheme); a plot
#: with a legend of its own (:func:`_legend`) maps its series to them.
PALETTE = (
    "#4c78a8",
    "#f58518",
    "#e45756",
    "#72b7b2",
    "#54a24b",
    "#eeca3b",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
)
#: The need cues' series (``NEEDS`` order, in words) and their colours.
CUE_COLOURS = {need.replace("_", " "): PALETTE[i % len(PALETTE)] for i, need in enumerate(NEEDS)}
CSS = """
#play-status, #play-outcome { font-size: 1.05em; }
.notice p { color: #b3261e; font-weight: 600; }
/* The chat's label and icons float over the top of the chat: the messages scroll below them,
   never under them. */
.chat { --chat-head: 2rem; }
.chat .wrapper > .bubble-wrap { margin-top: var(--chat-head); height: calc(100% - var(--chat-head)); }
/* Report tables: a header wraps between its words, never inside one ("learn|er"). */
#report-md th { word-break: normal; overflow-wrap: normal; hyphens: none; }
/* A plot's own legend, below it: every series named in full, wrapping as the width needs. */
.plot-legend { display: flex; flex-wrap: wrap; gap: 2px 14px; padding: 2px 10px 6px;
  font-size: var(--text-sm); }
.plot-legend .legend-item { display: inline-flex; align-items: center; gap: 5px;
  white-space: nowrap; }
.plot-legend .legend-swatch { display: inline-block; width: 16px; height: 3px;
  border-radius: 2px; }
"""


@dataclass(frozen=True)
class UiDefaults:
    """What the page starts with (``dialogue-gym ui``'s options).

    Attributes:
        env_id: The Play tab's env.
        scenarios: The Play tab's cards.
        voice: The Play tab's voice (``template``: instant; ``llm``: the embedded model).
        reward: The Play tab's reward wrapper.
        max_turns: Turns before an episode is truncated.
        logs: Episode logs (files or folders) the Browse and Compare tabs open at load.
        results: A study results folder the Study report tab opens at load.
    """

    env_id: str = TEXT_ENV
    scenarios: str = "test"
    voice: str = "template"
    reward: str = "sparse"
    max_turns: int = 10
    logs: Sequence[str] = field(default_factory=tuple)
    results: str | None = None


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame | None:
    """Plot rows as a typed frame; ``None`` (an empty plot) when there are none.

    The turn is a category, "0", "1", ...: a number would give the axis ticks between
    turns (0.5, 1.5) and labels such as "0.000000" while only turn 0 is drawn. The plots
    order the categories as numbers (``TURN_ORDER``).
    """
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=PLOT_COLUMNS)
    frame["turn"] = frame["turn"].astype("int64").astype(str)
    return frame.astype({"turn": "string", "value": "float64", "series": "string"})


def _plot(rows: list[dict[str, Any]], colours: dict[str, str] | None = None) -> Any:
    """A plot's update: its rows, and with ``colours`` each series' colour (a plot whose
    legend is :func:`_legend`)."""
    extra = {"color_map": colours} if colours is not None else {}
    return gr.update(value=_frame(rows), **extra)


def _series_colours(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each series of the rows, in first-seen order, to its palette colour."""
    names = dict.fromkeys(str(row["series"]) for row in rows)
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _legend(colours: dict[str, str]) -> str:
    """A plot's legend as HTML: each series' colour and its name in full.

    The plots' own legend is one row under the plot, cut off at its edge: six needs, or a
    reward's components, do not fit beside the chat.
    """
    items = "".join(
        f'<span class="legend-item"><span class="legend-swatch" style="background: {colour}">'
        f'</span><span class="legend-label">{html.escape(name)}</span></span>'
        for name, colour in colours.items()
    )
    return f'<div class="plot-legend">{items}</div>'


def _table(headers: list[str], rows: list[list[Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=headers)


def _notice(text: str) -> str:
    return f"⚠ {text}" if text else ""


def _unexpected(where: str, err: BaseException) -> str:
    """A message for an error no check foresaw: logged in full, shown in one line."""
    log.error("%s failed:\n%s", where, "".join(traceback.format_exception(err)))
    return f"{where} failed: {type(err).__name__}: {err}"


def _close_session(session: Any) -> None:
    if isinstance(session, PlaySession):
        session.close()


# -- Play ---------------------------------------------------------------------------------


def _play_outputs(session: PlaySession | None, notice: str = "") -> tuple[Any, ...]:
    """(state, chat, status, notice, outcome, emotion, hidden state, cues, reward, table,
    reward legend)."""
    if session is None:
        return (
            None,
            [],
            "Press **Start** to meet a simulated user.",
            _notice(notice),
            "",
            _plot([]),
            _plot([]),
            _plot([]),
            _plot([]),
            pd.DataFrame(),
            "",
        )
    headers, rows = session.turn_table()
    rewards = session.reward_rows()
    colours = _series_colours(rewards)
    return (
        session,
        session.chat(),
        f"{session.status()}\n\n{session.intro}",
        _notice(notice),
        session.summary(),
        _plot(session.emotion_rows()),
        _plot(session.state_rows()),
        _plot(session.cue_rows()),
        _plot(rewards, colours),
        _table(headers, rows),
        _legend(colours) if colours else "",
    )


def _start(
    env_id: str,
    scenarios: str,
    card: str | None,
    voice: str,
    reward: str,
    seed: str | None,
    max_turns: float | None,
    old: PlaySession | None,
) -> tuple[Any, ...]:
    try:
        options = PlayOptions(
            env_id=env_id,
            scenarios=scenarios,
            card=card,
            voice=voice,
            reward=reward,
            seed=parse_seed(seed),
            max_turns=int(max_turns or 10),
        )
        session = PlaySession.start(options)
    except PlayInputError as err:
        return (old, *_play_outputs(old, str(err))[1:])
    except Exception as err:  # a backend that fails to load, say: the page keeps serving
        return (old, *_play_outputs(old, _unexpected("Start", err))[1:])
    _close_session(old)
    return _play_outputs(session)


def _act(action: int | str, session: PlaySession | None) -> tuple[Any, ...]:
    if session is None:
        return _play_outputs(None, "Press Start first.")
    try:
        session.act(action)
    except PlayInputError as err:
        return _play_outputs(session, str(err))
    except Exception as err:
        return _play_outputs(session, _unexpected("The turn", err))
    return _play_outputs(session)


def _say(text: str, session: PlaySession | None) -> tuple[Any, ...]:
    out = _act(text, session)
    # Keep the words in the box when they were refused, so the person can fix them.
    refused = bool(out[3])
    return (*out, text if refused else "")


def _mode(env_id: str) -> tuple[Any, Any]:
    text = env_id in TEXT_ENVS
    return gr.update(visible=text), gr.update(visible=not text)


def _cards(scenarios: str) -> tuple[Any, str]:
    try:
        return gr.update(choices=card_choices(scenarios), value=RANDOM_CARD), ""
    except PlayInputError as err:
        return gr.update(choices=[("random", RANDOM_CARD)], value=RANDOM_CARD), _notice(str(err))


def _lineplot(
    label: str,
    y_title: str,
    y_lim: list[float] | None,
    elem_id: str,
    colours: dict[str, str] | None = None,
) -> gr.LinePlot:
    """A plot of ``{turn, value, series}`` rows (:func:`_plot`), turns as whole-number
    categories. With ``colours`` (series to colour, or ``{}`` for colours sent with the rows)
    the plot draws no legend: :func:`_legend` is shown below it instead."""
    # No frame at first: the plot fixes its axes' kinds from the first frame it is built with.
    return gr.LinePlot(
        None,
        x="turn",
        y="value",
        color="series",
        label=label,
        x_title="turn",
        y_title=y_title,
        y_lim=y_lim,
        # Without fixed limits a flat line (every reward 0) gets one tick, "0.000000".
        y_axis_format=None if y_lim else "~g",
        color_title="",
        sort=TURN_ORDER,
        color_map=colours or None,
        colors_in_legend=[] if colours is not None else None,
        elem_id=elem_id,
    )


def _play_tab(defaults: UiDefaults) -> None:
    gr.Markdown(
        "You are the support agent. The simulated user has a **hidden need**: find it, comfort "
        "them, then meet it. Type your words (text env: a recogniser reads them as a strategy) "
        "or press a strategy (strategy env). Same dynamics and seeds as `gym.make`."
    )
    with gr.Row():
        env_id = gr.Dropdown(
            list(dialogue_gym.ENV_IDS), value=defaults.env_id, label="env", elem_id="play-env"
        )
        scenarios = gr.Dropdown(
            list(SPLITS),
            value=defaults.scenarios,
            label="cards",
            allow_custom_value=True,
            elem_id="play-split",
        )
        card = gr.Dropdown(
            card_choices(defaults.scenarios) if defaults.scenarios in SPLITS else [RANDOM_CARD],
            value=RANDOM_CARD,
            label="card (random: drawn by the seed)",
            allow_custom_value=True,
            filterable=True,
            elem_id="play-card",
            scale=3,
        )
    with gr.Row():
        voice = gr.Dropdown(
            ["template", "llm"], value=defaults.voice, label="user voice", elem_id="play-voice"
        )
        reward = gr.Dropdown(
            [*sorted(REWARDS), NO_REWARD],
            value=defaults.reward,
            label="reward wrapper",
            elem_id="play-reward",
        )
        seed = gr.Textbox("", label="seed (empty: a new one)", elem_id="play-seed")
        max_turns = gr.Number(
            defaults.max_turns, label="max turns", precision=0, minimum=1, elem_id="play-turns"
        )
        start = gr.Button("Start", variant="primary", elem_id="play-start")
    notice = gr.Markdown("", elem_id="play-notice", elem_classes=["notice"])
    with gr.Row():
        with gr.Column(scale=3):
            status = gr.Markdown("Press **Start** to meet a simulated user.", elem_id="play-status")
            chat = gr.Chatbot(
                [], label="conversation", height=460, elem_id="play-chat", elem_classes=["chat"]
            )
            with gr.Row(visible=defaults.env_id in TEXT_ENVS) as text_row:
                text = gr.Textbox(
                    "",
                    placeholder="What you say to them (Enter sends)",
                    show_label=False,
                    lines=1,
                    max_lines=4,
                    scale=5,
                    elem_id="play-text",
                )
                say = gr.Button("Say", elem_id="play-say", scale=1)
            with gr.Row(visible=defaults.env_id not in TEXT_ENVS) as button_row:
                buttons = [
                    gr.Button(name, size="sm", elem_id=f"strategy-{i}")
                    for i, name in enumerate(STRATEGIES)
                ]
            outcome = gr.Markdown("", elem_id="play-outcome")
        with gr.Column(scale=2):
            emotion_plot = _lineplot("emotion score", "emotion", [0, 100], "plot-emotion")
            state_plot = _lineplot(
                "hidden state: trust, understanding", "0–1", [0, 1], "plot-state"
            )
            cue_plot = _lineplot(
                "need cues (observation)", "evidence", [0, 1], "plot-cues", CUE_COLOURS
            )
            gr.HTML(_legend(CUE_COLOURS), elem_id="plot-cues-legend")
            reward_plot = _lineplot("reward and components", "reward", None, "plot-reward", {})
            reward_legend = gr.HTML("", elem_id="plot-reward-legend")
    table = gr.Dataframe(label="each turn", interactive=False, elem_id="play-table")
    session = gr.State(None, delete_callback=_close_session)

    shown = [session, chat, status, notice, outcome, emotion_plot, state_plot, cue_plot]
    shown += [reward_plot, table, reward_legend]
    start.click(
        _start,
        [env_id, scenarios, card, voice, reward, seed, max_turns, session],
        shown,
    )
    for event in (say.click, text.submit):
        event(_say, [text, session], [*shown, text])
    for i, button in enumerate(buttons):
        button.click(functools.partial(_act, i), [session], shown)
    env_id.change(_mode, [env_id], [text_row, button_row])
    scenarios.change(_cards, [scenarios], [card, notice])


# -- Browse and Compare ------------------------------------------------------------------


def _filter_updates(logs: LogSet | None) -> list[Any]:
    return [
        gr.update(choices=[ALL, *(logs.values(name) if logs else [])], value=ALL)
        for name in FILTERS
    ]


def _episode_outputs(logs: LogSet | None, key: str | None) -> tuple[Any, ...]:
    """(summary, chat, trajectory, table) of one episode."""
    if logs is None or not key:
        return "", [], _plot([]), pd.DataFrame()
    view = episode_view(logs.get(key))
    return view.summary, view.chat, _plot(view.trajectory_rows()), _table(view.headers, view.rows)


def _episode_choices(logs: LogSet | None, chosen: Sequence[str]) -> tuple[Any, str | None]:
    entries = logs.filter(**dict(zip(FILTERS, chosen, strict=True))) if logs else []
    key = entries[0].key if entries else None
    return gr.update(choices=[(e.label, e.key) for e in entries], value=key), key


def _compare_updates(logs: LogSet | None) -> list[Any]:
    runs = logs.values("run") if logs else []
    # The coarse bonus first, when there is one: the run the others are compared with.
    first = next((r for r in runs if "sparse" in r), runs[0] if runs else None)
    second = next((r for r in runs if r != first), first)
    cards = common_cards(logs, first, second) if logs and first else []
    return [
        gr.update(choices=runs, value=first),
        gr.update(choices=runs, value=second),
        gr.update(choices=cards, value=cards[0] if cards else None),
    ]


#: What _load fills after the filters: the episode picker, summary, chat, plot, table and the
#: three Compare pickers.
_AFTER_FILTERS = 8


def _load(paths: Sequence[str], old: LogSet | None) -> tuple[Any, ...]:
    """(logs, notice, info, 5 filters, episode picker, summary, chat, plot, table, 3 compare)."""
    try:
        logs = load_logs(paths)
    except LogError as err:
        return (
            old,
            _notice(str(err)),
            gr.update(),
            *[gr.update()] * (len(FILTERS) + _AFTER_FILTERS),
        )
    except Exception as err:
        return (
            old,
            _notice(_unexpected("Loading the logs", err)),
            gr.update(),
            *[gr.update()] * (len(FILTERS) + _AFTER_FILTERS),
        )
    picker, key = _episode_choices(logs, [ALL] * len(FILTERS))
    return (
        logs,
        "",
        logs.describe(),
        *_filter_updates(logs),
        picker,
        *_episode_outputs(logs, key),
        *_compare_updates(logs),
    )


def _load_path(path: str, old: LogSet | None) -> tuple[Any, ...]:
    return _load([p for p in (path or "").split(";") if p.strip()], old)


def _load_upload(files: list[Any] | None, old: LogSet | None) -> tuple[Any, ...]:
    paths = [getattr(f, "name", f) for f in (files or [])]
    if not paths:
        return (old, "", gr.update(), *[gr.update()] * (len(FILTERS) + _AFTER_FILTERS))
    return _load(paths, old)


def _refilter(logs: LogSet | None, *chosen: str) -> tuple[Any, ...]:
    picker, key = _episode_choices(logs, chosen)
    return (picker, *_episode_outputs(logs, key))


def _show(logs: LogSet | None, key: str | None) -> tuple[Any, ...]:
    try:
        return ("", *_episode_outputs(logs, key))
    except LogError as err:
        return (_notice(str(err)), "", [], _plot([]), pd.DataFrame())


def _step_episode(logs: LogSet | None, key: str | None, by: int, *chosen: str) -> Any:
    entries = logs.filter(**dict(zip(FILTERS, chosen, strict=True))) if logs else []
    keys = [e.key for e in entries]
    if not keys:
        return gr.update()
    index = keys.index(key) + by if key in keys else 0
    return gr.update(value=keys[index % len(keys)])


def _browse_tab() -> dict[str, Any]:
    gr.Markdown(
        "Open episode logs: the JSONL of `dialogue-gym episode --out`, `dialogue-gym play "
        "--log`, or a study's `<results>/episodes/` (a folder, or a results folder). Several "
        "paths: separate them with `;`."
    )
    with gr.Row():
        path = gr.Textbox(
            label="log file or folder (on this machine)",
            placeholder="benchmarks/results/quick/episodes",
            scale=4,
            elem_id="browse-path",
        )
        load = gr.Button("Load", variant="primary", elem_id="browse-load", scale=1)
        upload = gr.File(
            label="or upload .jsonl",
            file_count="multiple",
            file_types=[".jsonl"],
            height=110,
            scale=2,
            elem_id="browse-upload",
        )
    notice = gr.Markdown("", elem_id="browse-notice", elem_classes=["notice"])
    info = gr.Markdown("", elem_id="browse-info")
    with gr.Row():
        filters = [
            gr.Dropdown([ALL], value=ALL, label=name, elem_id=f"browse-filter-{name}")
            for name in FILTERS
        ]
    with gr.Row():
        previous = gr.Button("◀ previous", size="sm", elem_id="browse-prev", scale=1)
        picker = gr.Dropdown([], label="episode", elem_id="browse-episode", scale=6)
        following = gr.Button("next ▶", size="sm", elem_id="browse-next", scale=1)
    summary = gr.Markdown("", elem_id="browse-summary")
    with gr.Row():
        with gr.Column(scale=3):
            chat = gr.Chatbot(
                [], label="episode", height=460, elem_id="browse-chat", elem_classes=["chat"]
            )
        with gr.Column(scale=2):
            plot = _lineplot("emotion trajectory", "emotion", [0, 100], "browse-plot")
    table = gr.Dataframe(
        label="each turn: strategy as read, reward components",
        interactive=False,
        elem_id="browse-table",
    )
    shown = [summary, chat, plot, table]
    return {
        "path": path,
        "load": load,
        "upload": upload,
        "notice": notice,
        "info": info,
        "filters": filters,
        "picker": picker,
        "previous": previous,
        "following": following,
        "shown": shown,
    }


def _compare_outputs(logs: LogSet | None, run_a: str, run_b: str, card: str) -> tuple[Any, ...]:
    """(notice, verdict, summary A, chat A, summary B, chat B, plot)."""
    if logs is None:
        return (_notice("Load episode logs in Browse first."), "", "", [], "", [], _plot([]))
    try:
        c = compare(logs, run_a, run_b, card or None)
    except LogError as err:
        return (_notice(str(err)), "", "", [], "", [], _plot([]))
    return (
        "",
        c.verdict,
        c.left.summary,
        c.left.chat,
        c.right.summary,
        c.right.chat,
        _plot(c.trajectory_rows()),
    )


def _compare_tab() -> dict[str, Any]:
    gr.Markdown(
        "Two runs on the same test card, side by side: for example PPO trained on `sparse` "
        "against PPO trained on `final_emotion`. The runs are those of the logs loaded in "
        "**Browse**."
    )
    with gr.Row():
        run_a = gr.Dropdown([], label="run A", elem_id="compare-a", scale=3)
        run_b = gr.Dropdown([], label="run B", elem_id="compare-b", scale=3)
        card = gr.Dropdown([], label="card (both runs played it)", elem_id="compare-card", scale=3)
        go = gr.Button("Compare", variant="primary", elem_id="compare-go", scale=1)
    notice = gr.Markdown("", elem_id="compare-notice", elem_classes=["notice"])
    verdict = gr.Markdown("", elem_id="compare-verdict")
    plot = _lineplot("emotion, both runs", "emotion", [0, 100], "compare-plot")
    with gr.Row():
        with gr.Column():
            summary_a = gr.Markdown("", elem_id="compare-summary-a")
            chat_a = gr.Chatbot(
                [], label="run A", height=420, elem_id="compare-chat-a", elem_classes=["chat"]
            )
        with gr.Column():
            summary_b = gr.Markdown("", elem_id="compare-summary-b")
            chat_b = gr.Chatbot(
                [], label="run B", height=420, elem_id="compare-chat-b", elem_classes=["chat"]
            )
    return {
        "run_a": run_a,
        "run_b": run_b,
        "card": card,
        "go": go,
        "outputs": [notice, verdict, summary_a, chat_a, summary_b, chat_b, plot],
    }


# -- Study report ------------------------------------------------------------------------


def _report(folder: str) -> tuple[Any, ...]:
    """(notice, markdown, plots, episodes folder)."""
    try:
        report = load_report(folder or "")
    except ReportError as err:
        return (_notice(str(err)), gr.update(), gr.update(), "")
    except Exception as err:
        return (_notice(_unexpected("Loading the report", err)), gr.update(), gr.update(), "")
    from PIL import Image  # Gradio's own requirement; the images are served from its cache

    images = []
    for path, caption in report.plots:
        try:
            with Image.open(path) as image:
                images.append((image.convert("RGB"), caption))
        except OSError:
            continue  # a plot a crash left half-written: the report still shows
    episodes = str(report.episodes) if report.episodes else ""
    files = ", ".join(report.files)
    text = f"{report.markdown}\n\n---\nFolder `{report.folder}`: {files}."
    return ("", text, images, episodes)


def _report_tab() -> dict[str, Any]:
    gr.Markdown(
        "A reward study's report from its results folder (`dialogue-gym study` writes "
        "`<out>/<name>/`: `report.md`, the plots, `episodes/`)."
    )
    with gr.Row():
        folder = gr.Textbox(
            label="results folder",
            placeholder="benchmarks/results/quick",
            scale=4,
            elem_id="report-path",
        )
        load = gr.Button("Open report", variant="primary", elem_id="report-load", scale=1)
        browse = gr.Button("Browse its episodes", elem_id="report-browse", scale=1)
    notice = gr.Markdown("", elem_id="report-notice", elem_classes=["notice"])
    episodes = gr.Textbox(visible=False, elem_id="report-episodes")
    plots = gr.Gallery(
        label="plots",
        columns=3,
        height=340,
        object_fit="contain",
        elem_id="report-plots",
        format="png",
    )
    text = gr.Markdown("", elem_id="report-md")
    return {
        "folder": folder,
        "load": load,
        "browse": browse,
        "episodes": episodes,
        "outputs": [notice, text, plots, episodes],
    }


# -- the app -----------------------------------------------------------------------------


def build_app(defaults: UiDefaults | None = None) -> gr.Blocks:
    """The four-tab app: Play, Browse, Compare, Study report.

    Args:
        defaults: The page's starting choices and the logs and results folder to open.

    Returns:
        The ``gr.Blocks``; ``launch(server_name=..., server_port=..., css=CSS)`` serves it.
    """
    defaults = defaults or UiDefaults()
    with gr.Blocks(title="dialogue_gym") as app:
        gr.Markdown(f"## dialogue_gym {dialogue_gym.__version__}: talk to the simulated user")
        logs_state = gr.State(None)
        with gr.Tabs() as tabs:
            with gr.Tab("Play", id="play"):
                _play_tab(defaults)
            with gr.Tab("Browse", id="browse"):
                b = _browse_tab()
            with gr.Tab("Compare", id="compare"):
                c = _compare_tab()
            with gr.Tab("Study report", id="report"):
                r = _report_tab()

        compare_inputs = [c["run_a"], c["run_b"], c["card"]]
        loaded = [logs_state, b["notice"], b["info"], *b["filters"], b["picker"], *b["shown"]]
        loaded += compare_inputs

        def then_compare(event: Any) -> None:
            # After new logs: show the comparison of the default runs at once.
            event.then(_compare_outputs, [logs_state, *compare_inputs], c["outputs"])

        then_compare(b["load"].click(_load_path, [b["path"], logs_state], loaded))
        then_compare(b["path"].submit(_load_path, [b["path"], logs_state], loaded))
        then_compare(b["upload"].upload(_load_upload, [b["upload"], logs_state], loaded))
        for dropdown in b["filters"]:
            dropdown.input(_refilter, [logs_state, *b["filters"]], [b["picker"], *b["shown"]])
        b["picker"].change(_show, [logs_state, b["picker"]], [b["notice"], *b["shown"]])
        for button, by in ((b["previous"], -1), (b["following"], 1)):
            button.click(_stepper(by), [logs_state, b["picker"], *b["filters"]], [b["picker"]])

        for run in (c["run_a"], c["run_b"]):
            run.input(_compare_cards, [logs_state, c["run_a"], c["run_b"]], [c["card"]])
        c["go"].click(_compare_outputs, [logs_state, *compare_inputs], c["outputs"])
        c["card"].input(_compare_outputs, [logs_state, *compare_inputs], c["outputs"])

        r["load"].click(_report, [r["folder"]], r["outputs"])
        r["folder"].submit(_report, [r["folder"]], r["outputs"])
        then_compare(
            r["browse"].click(
                _browse_report, [r["folder"], r["episodes"], logs_state], [b["path"], tabs, *loaded]
            )
        )

        if defaults.logs or defaults.results:
            logs = ";".join(defaults.logs)
            if not logs and defaults.results:
                logs = defaults.results  # a results folder reads its episodes/
            results = defaults.results or ""

            def preload() -> tuple[str, str]:
                return logs, results

            first = app.load(preload, None, [b["path"], r["folder"]])
            if logs:
                then_compare(first.then(_load_path, [b["path"], logs_state], loaded))
            if results:
                first.then(_report, [r["folder"]], r["outputs"])
    return app


def _stepper(by: int) -> Callable[..., Any]:
    def step(logs: LogSet | None, key: str | None, *chosen: str) -> Any:
        return _step_episode(logs, key, by, *chosen)

    return step


def _compare_cards(logs: LogSet | None, run_a: str, run_b: str) -> Any:
    cards = common_cards(logs, run_a, run_b) if logs and run_a and run_b else []
    return gr.update(choices=cards, value=cards[0] if cards else None)


def _browse_report(folder: str, episodes: str, old: LogSet | None) -> tuple[Any, ...]:
    """Open the report's episode logs in Browse: (path, tabs, then what loading shows)."""
    if not episodes:
        why = f"Open a report with episode logs first ({folder or 'no folder'} has none)."
        # After the notice: the info line, the filters and what follows them (as _load).
        rest = 1 + len(FILTERS) + _AFTER_FILTERS
        return (gr.update(), gr.update(), old, _notice(why), *[gr.update()] * rest)
    return (episodes, gr.Tabs(selected="browse"), *_load_path(episodes, old))
