"""``dialogue-gym ui``'s logic without a browser: play sessions, episode logs, reports, the command.

The page (``dialogue_gym/ui/app.py``) only lays these functions out; ``tests/test_ui_browser.py``
drives the running app in Chromium. Here: a session replays exactly as ``gym.make`` plays, what
the page shows of each turn, every refusal's message, logs read / filtered / compared, a study
report, and the command's one-line errors.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from repo_scripts import load_script

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.cli import main
from dialogue_gym.core.scenario import load_scenarios
from dialogue_gym.core.vocabulary import NEEDS
from dialogue_gym.ui.browse import (
    ALL,
    LogError,
    common_cards,
    compare,
    episode_outcome,
    episode_view,
    load_logs,
)
from dialogue_gym.ui.play import (
    MAX_SEED,
    RANDOM_CARD,
    STRATEGY_ENV,
    TEXT_ENV,
    PlayInputError,
    PlayOptions,
    PlaySession,
    card_choices,
    parse_seed,
    replay,
)
from dialogue_gym.ui.report_view import ReportError, load_report

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "data" / "ui_samples" / "study"
SPARSE_RUN = "default__sparse__ppo__s0"
EMOTION_RUN = "default__final_emotion__ppo__s0"

#: Typed turns that read as several strategies (the lexical recogniser's cues).
WORDS = [
    "What happened? How are you feeling about it?",
    "So what you're saying is that it has been weighing on you.",
    "It sounds like you feel scared and alone with this.",
    "You're doing the best you can, and that matters.",
    "Maybe you could try talking to someone you trust about it.",
]
#: Strategies that resolve test card 0 with seed 1 (checked below).
RESOLVING = [0, 0, 1, 2, 4, 2, 4, 5, 4, 5]


@pytest.fixture
def session_factory():
    made: list[PlaySession] = []

    def start(**kwargs) -> PlaySession:
        session = PlaySession.start(PlayOptions(**kwargs))
        made.append(session)
        return session

    yield start
    for session in made:
        session.close()


def _play(session: PlaySession, actions: list) -> None:
    for action in actions:
        if session.done:
            break
        session.act(action)


# -- Play: same dynamics and seeds as gym.make ----------------------------------------------


@pytest.mark.parametrize(
    ("env_id", "actions"),
    [(TEXT_ENV, WORDS * 2), (STRATEGY_ENV, [0, 1, 2, 4, 5, 6, 3, 7, 0, 2])],
)
def test_a_session_replays_exactly_in_gym_make(session_factory, env_id, actions):
    """A UI session's actions, played in a plain ``gym.make`` env: the same transcript, the
    same emotions, the same rewards."""
    session = session_factory(env_id=env_id, card="3", seed=11, reward="emotion_delta")
    _play(session, actions)
    assert session.actions, "no turn was taken"

    env = gym.make(env_id, **session.options.make_kwargs())
    _, info = env.reset(seed=11, options={"card": 3})
    emotions, rewards = [info["emotion"]], []
    for action in session.actions:
        _, reward, terminated, truncated, info = env.step(action)
        emotions.append(info["emotion"])
        rewards.append(reward)
    env.close()
    assert [dict(m) for m in info["messages"]] == [dict(m) for m in session.messages]
    assert [t.emotion for t in session.turns] == emotions
    assert [t.reward for t in session.turns[1:]] == rewards
    assert [dict(m) for m in replay(session.options, session.actions)] == [
        dict(m) for m in session.messages
    ]


def test_a_random_card_is_the_one_gym_make_draws_with_the_seed(session_factory):
    session = session_factory(env_id=STRATEGY_ENV, card=RANDOM_CARD, seed=5)
    env = gym.make(STRATEGY_ENV, voice="template", scenarios="test")
    env.reset(seed=5)
    assert session.card.id == env.unwrapped.card.id
    env.close()


def test_no_seed_draws_one_and_shows_it(session_factory):
    session = session_factory(env_id=STRATEGY_ENV)
    assert isinstance(session.options.seed, int) and 0 <= session.options.seed <= MAX_SEED
    assert f"Seed {session.options.seed}" in session.intro


def test_each_turn_shows_emotion_hidden_state_cues_and_reward(session_factory):
    session = session_factory(env_id=STRATEGY_ENV, card="0", seed=1, reward="emotion_delta")
    _play(session, [0, 0, 1])
    assert [t.turn for t in session.turns] == [0, 1, 2, 3]
    # The need cues are the observation's; trust and understanding the user model's.
    assert session.turns[-1].need_cues == tuple(
        float(v) for v in session.env.unwrapped.observe()["need_cues"]
    )
    state = session.env.unwrapped.fork_user().state
    assert (session.turns[-1].trust, session.turns[-1].understanding) == (
        state.trust,
        state.understanding,
    )
    assert session.turns[-1].understanding > session.turns[0].understanding  # questions explore
    assert len(session.emotion_rows()) == 4
    assert {r["series"] for r in session.state_rows()} == {"trust", "understanding"}
    assert {r["series"] for r in session.cue_rows()} == {n.replace("_", " ") for n in NEEDS}
    assert all(0.0 <= r["value"] <= 1.0 for r in session.state_rows() + session.cue_rows())
    series = {r["series"] for r in session.reward_rows()}
    assert {"reward", "emotion_delta"} <= series
    headers, rows = session.turn_table()
    assert headers[:6] == ["turn", "strategy", "user act", "emotion", "change", "reward"]
    assert "emotion_delta" in headers and len(rows) == 3
    chat = session.chat()
    assert (
        len(chat) == 1 + 2 * 3 and chat[1]["role"] == "user" and "[Question]" in chat[1]["content"]
    )
    assert session.status().startswith(f"Emotion: {session.turns[-1].emotion:.0f}/100")


def test_the_end_reveals_the_hidden_need_and_the_outcome(session_factory):
    session = session_factory(env_id=STRATEGY_ENV, card="0", seed=1)
    assert session.hidden_need is None and session.summary() == ""
    _play(session, RESOLVING)
    assert session.done and session.outcome == "resolved"
    need = session.env.unwrapped.hidden_need.replace("_", " ")
    assert session.hidden_need == need
    assert f"hidden need was: **{need}**" in session.summary()
    assert "outcome: resolved" in session.status()
    assert session.turns[-1].reward == 1.0  # the coarse bonus, paid on success


def test_running_out_of_turns_is_an_outcome(session_factory):
    session = session_factory(env_id=TEXT_ENV, card="0", seed=2, max_turns=2)
    _play(session, WORDS)
    assert session.done and session.outcome == "ran out of turns" and len(session.actions) == 2
    with pytest.raises(PlayInputError, match="has ended"):
        session.act("Hello again")


def test_the_card_list_does_not_give_the_need_away():
    choices = card_choices("test")
    cards = load_scenarios("test")
    assert choices[0][1] == RANDOM_CARD and len(choices) == len(cards) + 1
    for (label, value), card in zip(choices[1:], cards, strict=True):
        assert value == str(cards.index(card))
        assert card.hidden_need not in label and card.id not in label
    with pytest.raises(PlayInputError, match="Cannot load"):
        card_choices("no-such-split")


# -- Play: refusals, each a message for the page --------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the message is empty"),
        ("   \n ", "the message is empty"),
        ("x" * 1001, "That is 1001 characters; the most is 1000"),
        ("你好", "The character '你' cannot be used"),
        (42, "Type what you say"),
    ],
)
def test_bad_words_are_refused_and_spend_no_turn(session_factory, text, message):
    session = session_factory(env_id=TEXT_ENV, card="0", seed=0)
    with pytest.raises(PlayInputError, match=message):
        session.act(text)
    assert session.actions == [] and len(session.turns) == 1
    session.act("How are you?")  # the session goes on
    assert len(session.actions) == 1


@pytest.mark.parametrize(
    ("action", "message"), [(8, "no strategy 9"), (-1, "no strategy 0"), ("hug", "press one")]
)
def test_bad_strategies_are_refused(session_factory, action, message):
    session = session_factory(env_id=STRATEGY_ENV, card="0", seed=0)
    with pytest.raises(PlayInputError, match=message):
        session.act(action)
    assert session.act("2").strategy == "Reflection of feelings"  # a digit string, as a button


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"card": "no-such-card"}, "No card 'no-such-card' in the test cards"),
        ({"card": "999"}, "There is no card 999"),
        ({"reward": "hugs"}, "No reward 'hugs'"),
        ({"env_id": "CartPole-v1"}, "No env 'CartPole-v1'"),
        ({"seed": -3}, "The seed must be"),
        ({"max_turns": 0}, "turn limit"),
        ({"scenarios": "no-such-split"}, "Cannot make"),
    ],
)
def test_bad_options_are_refused_with_a_message(options, message):
    with pytest.raises(PlayInputError, match=message):
        PlaySession.start(PlayOptions(**{"env_id": STRATEGY_ENV, "seed": 0, **options}))


def test_a_typed_seed_is_a_whole_number_or_empty():
    assert parse_seed("7") == 7 and parse_seed(" ") is None and parse_seed(None) is None
    for bad in ("seven", "1.5", "-1", str(MAX_SEED + 1)):
        with pytest.raises(PlayInputError, match="whole number"):
            parse_seed(bad)


# -- Browse and Compare ---------------------------------------------------------------------


def test_the_committed_samples_show_the_soothing_trap():
    """PPO on the coarse bonus resolves the needs; PPO on final_emotion only soothes."""
    logs = load_logs(SAMPLES / "episodes")
    assert set(logs.values("run")) == {SPARSE_RUN, EMOTION_RUN}
    assert len(logs.entries) == 8 and len(logs.sources) == 2
    assert {e.outcome for e in logs.filter(run=SPARSE_RUN)} == {"resolved"}
    soothing = logs.filter(reward="final_emotion")
    assert {e.outcome for e in soothing} == {"ran out of turns"}
    assert all(
        {s["strategy"] for s in e.episode["steps"]} <= {"Reflection of feelings"} for e in soothing
    )


def test_a_results_folder_opens_its_episodes():
    assert len(load_logs(SAMPLES).entries) == 8  # <results>/episodes/
    assert "8 episode(s) of 2 run(s) from 2 file(s)" in load_logs(SAMPLES).describe()


def test_filters_combine():
    logs = load_logs(SAMPLES / "episodes")
    card = logs.entries[0].card
    assert len(logs.filter(card=card)) == 2
    assert len(logs.filter(card=card, learner="ppo", outcome="resolved")) == 1
    assert len(logs.filter(run=ALL, reward=None, outcome="")) == 8
    assert logs.filter(outcome="user left") == []
    with pytest.raises(TypeError, match="unknown filter"):
        logs.filter(colour="blue")


def test_an_episode_is_shown_as_chat_table_and_trajectory():
    logs = load_logs(SAMPLES / "episodes")
    entry = logs.filter(run=SPARSE_RUN)[0]
    view = episode_view(entry)
    turns = entry.episode["turns"]
    assert len(view.chat) == 1 + 2 * turns and len(view.rows) == turns
    assert len(view.trajectory) == turns + 1
    assert view.trajectory[-1] == pytest.approx(entry.episode["final_emotion"])
    assert view.headers[:3] == ["turn", "strategy (as read)", "acts heard"]
    assert "sparse" in view.headers and "final_emotion" in view.headers  # every probe's parts
    need = entry.episode["need"].replace("_", " ")
    assert f"hidden need: **{need}**" in view.summary and "resolved" in view.summary
    assert logs.get(entry.key) is entry
    with pytest.raises(LogError, match="load them again"):
        logs.get("nothing#0")


def test_two_runs_compare_on_a_common_card():
    logs = load_logs(SAMPLES / "episodes")
    cards = common_cards(logs, SPARSE_RUN, EMOTION_RUN)
    assert len(cards) == 4
    c = compare(logs, SPARSE_RUN, EMOTION_RUN)
    assert c.card == cards[0]
    assert (c.left.entry.outcome, c.right.entry.outcome) == ("resolved", "ran out of turns")
    assert "never met the hidden need" in c.verdict
    assert {r["series"] for r in c.trajectory_rows()} == {SPARSE_RUN, EMOTION_RUN}
    same = compare(logs, SPARSE_RUN, SPARSE_RUN, cards[1])
    assert {r["series"] for r in same.trajectory_rows()} == {f"A: {SPARSE_RUN}", f"B: {SPARSE_RUN}"}
    with pytest.raises(LogError, match="No run 'nope'"):
        compare(logs, SPARSE_RUN, "nope")
    with pytest.raises(LogError, match="did not play card"):
        compare(logs, SPARSE_RUN, EMOTION_RUN, "test-nothing")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("this is not json\n{}\n", "not an episode log"),
        ('[1, 2]\n{"a": 1}\n', "not an episode log line"),
        ('{"steps": 3}\n', "not an episode log line"),
    ],
)
def test_a_malformed_log_is_refused_with_a_message(tmp_path, content, message):
    with pytest.raises(LogError, match=message):
        load_logs(_write(tmp_path / "bad.jsonl", content))


def test_missing_paths_empty_folders_and_binary_files_are_refused(tmp_path):
    with pytest.raises(LogError, match="No such file"):
        load_logs(tmp_path / "nothing.jsonl")
    with pytest.raises(LogError, match="No episode logs"):
        load_logs(tmp_path)
    with pytest.raises(LogError, match="Give an episode log"):
        load_logs([" "])
    (tmp_path / "x.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LogError, match="not a text file"):
        load_logs(tmp_path / "x.jsonl")


def test_a_line_cut_short_by_a_crash_is_skipped_with_a_note(tmp_path):
    line = (SAMPLES / "episodes" / f"{SPARSE_RUN}.jsonl").read_text().splitlines()[0]
    path = _write(tmp_path / "crashed.jsonl", line + "\n" + line[:200])
    logs = load_logs(path)
    assert len(logs.entries) == 1 and "cut short" in logs.describe()
    assert logs.entries[0].run == SPARSE_RUN  # the study's run field, not the file's name


def test_logs_of_the_episode_command_are_labelled_by_policy(tmp_path, capsys):
    path = tmp_path / "oracle.jsonl"
    main(["episode", "--policy", "oracle", "--episodes", "2", "--out", str(path)])
    logs = load_logs(path)
    assert {(e.run, e.learner, e.reward) for e in logs.entries} == {("oracle", "oracle", "sparse")}
    assert all(e.outcome in ("resolved", "user left", "ran out of turns") for e in logs.entries)


def test_outcomes_are_named_as_the_play_tab_names_them():
    assert episode_outcome({"complete": False, "success": True}) == "incomplete"
    assert episode_outcome({"success": True}) == "resolved"
    assert episode_outcome({}) == "ran out of turns"


# -- Study report ---------------------------------------------------------------------------


def test_the_sample_report_shows_tables_verdicts_and_plots():
    report = load_report(SAMPLES)
    assert "| ppo | final_emotion |" in report.markdown and "soothes" in report.markdown
    assert "![" not in report.markdown
    assert [p.name for p, _ in report.plots] == [
        "learning_curves.png",
        "final_success.png",
        "emotion_trajectories.png",
    ]
    assert report.episodes == SAMPLES / "episodes"
    assert load_report(SAMPLES / "report.md").folder == SAMPLES


def test_a_folder_without_a_report_is_refused(tmp_path):
    with pytest.raises(ReportError, match="No report.md"):
        load_report(tmp_path)
    with pytest.raises(ReportError, match="No such folder"):
        load_report(tmp_path / "nothing")
    with pytest.raises(ReportError, match="Give a study results folder"):
        load_report("")


def test_a_report_links_only_its_own_plots(tmp_path):
    (tmp_path / "secret.png").write_bytes(b"x")
    study = tmp_path / "study"
    study.mkdir()
    _write(study / "report.md", "# R\n\n![s](../secret.png) ![m](missing.png)\n")
    report = load_report(study)
    assert report.plots == [] and "[s](../secret.png)" in report.markdown


# -- the command and the package ------------------------------------------------------------


def test_ui_without_gradio_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # find_spec: not installed
    assert main(["ui"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "dialogue-gym ui: error: ui needs Gradio: pip install 'dialogue_gym[ui]'"


def test_ui_refuses_a_missing_log_in_one_line(capsys):
    assert main(["ui", "--logs", "no/such/file.jsonl"]) == 2
    assert capsys.readouterr().err.strip() == (
        "dialogue-gym ui: error: no such file or folder: no/such/file.jsonl"
    )


def test_ui_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ui", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--logs", "--results", "--voice", "--env", "--host"):
        assert option in out


def test_only_the_layout_imports_gradio():
    """The logic is testable without a browser or Gradio: only app.py imports it."""
    for path in sorted((ROOT / "dialogue_gym" / "ui").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        if path.name != "app.py":
            assert "gradio" not in names and "pandas" not in names, path.name


def test_the_ui_reads_the_simulator_only_through_its_published_view():
    from test_simulator_view import violations

    for path in sorted((ROOT / "dialogue_gym" / "ui").glob("*.py")):
        assert violations(path.read_text(encoding="utf-8"), str(path)) == [], path.name


def test_the_sample_script_keeps_the_most_telling_cards():
    module = load_script(ROOT / "docs/ui/make_samples.py", "make_samples")
    success = {"a": {"x": True, "y": True, "z": False}, "b": {"x": True, "y": False, "z": True}}
    assert module.pick_cards(success, 2) == ["y", "z"]
    assert module.OUT == SAMPLES


@pytest.mark.llm
def test_the_llm_voice_plays_on_the_page_as_in_gym_make(session_factory):
    session = session_factory(env_id=STRATEGY_ENV, card="0", seed=1, voice="llm")
    turn = session.act(2)
    assert turn.user.strip() and session.options.make_kwargs()["voice"] == "llm"
    assert [dict(m) for m in replay(session.options, session.actions)] == [
        dict(m) for m in session.messages
    ]


@pytest.mark.slow
def test_the_page_builds_and_its_handlers_turn_errors_into_messages(tmp_path):
    """The Gradio layout (importing Gradio takes seconds: the slow tier) and its handlers,
    called as the page calls them."""
    from dialogue_gym.ui import app

    built = app.build_app(app.UiDefaults(logs=(str(SAMPLES / "episodes"),), results=str(SAMPLES)))
    assert type(built).__name__ == "Blocks"
    out = app._start(STRATEGY_ENV, "test", "no-such-card", "template", "sparse", "1", 10, None)
    assert out[0] is None and "No card 'no-such-card'" in out[3]
    out = app._start(STRATEGY_ENV, "test", "0", "template", "sparse", "1", 10, None)
    session = out[0]
    assert isinstance(session, PlaySession) and out[3] == ""
    out = app._act(3, session)
    assert out[3] == "" and "turn 1 of 10" in out[2]
    assert app._say("hello", None)[3].endswith("Press Start first.")
    session.close()
    loaded = app._load_path(str(_write(tmp_path / "bad.jsonl", "nope\n{}\n")), None)
    assert loaded[0] is None and "not an episode log" in loaded[1]
    loaded = app._load_path(str(SAMPLES), None)
    assert loaded[0] is not None and "8 episode(s)" in loaded[2]
    compared = app._compare_outputs(loaded[0], SPARSE_RUN, EMOTION_RUN, "")
    assert compared[0] == "" and "never met the hidden need" in compared[1]
    assert app._compare_outputs(None, SPARSE_RUN, EMOTION_RUN, "")[0].endswith("Browse first.")
    assert app._report(str(tmp_path))[0].startswith("⚠ No report.md")
    notice, text, images, episodes = app._report(str(SAMPLES))
    assert notice == "" and len(images) == 3 and episodes == str(SAMPLES / "episodes")
    frame = app._frame([{"turn": 0, "value": 1.0, "series": "a"}])
    assert str(frame["value"].dtype) == "float64" and app._frame([]) is None
    assert np.isfinite(frame["value"]).all()
    assert json.loads(json.dumps(app._play_outputs(None)[1])) == []
