"""The voice-fidelity readers (role, emotion, act), their labelled lines, and the voice's check.

The readers in ``dialogue_gym.evaluation.metrics.fidelity`` measure the LLM voice; the voice's
own check (``dialogue_gym.user.voices.checks``) decides its retries. They are separate code, and
both are held to the hand-labelled lines here, so that neither silently drifts.
"""

from __future__ import annotations

import json
from collections import Counter

import gymnasium as gym
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents import make_policy
from dialogue_gym.core.scenario import NeedCue, Persona, ScenarioCard, load_scenarios
from dialogue_gym.core.vocabulary import USER_ACTS, emotion_band
from dialogue_gym.evaluation.metrics.fidelity import (
    CONFLICTS,
    ROLE_VIOLATIONS,
    act_agrees,
    emotion_agrees,
    fidelity_table,
    labelled_accuracy,
    load_labelled_lines,
    read_acts,
    read_role,
    read_sentiment,
)
from dialogue_gym.user.voices import TemplateUserVoice, UserTurn
from dialogue_gym.user.voices.checks import CHECKS, check_line

LINES = load_labelled_lines()


def turn_for(act: str, emotion: float, cue: str | None = None, name: str = "Maya") -> UserTurn:
    card = ScenarioCard(
        id="fidelity",
        split="test",
        situation_id="fidelity",
        persona=Persona(name, 29, "female", "nurse", ("proud",), "short", "open"),
        situation=f"{name} was laid off.",
        topic="losing my job",
        problem_type="job crisis",
        emotion_type="anxiety",
        initial_emotion=30.0,
        hidden_need="be_heard",
        need_cues=(NeedCue("be_heard", cue, 0.2, 0.5),) if cue else (),
        facts=(),
        difficulty="easy",
    )
    return UserTurn(
        card=card,
        act=act,
        emotion=emotion,
        band=emotion_band(emotion),
        reason="",
        cue=cue,
        agent_utterance="Tell me about it.",
        history=(),
        turn=1,
        seed=0,
    )


# --------------------------------------------------------------------------- labelled lines


def test_labelled_lines_cover_roles_acts_sentiments_and_splits() -> None:
    assert len(LINES) >= 60
    assert len({line.text for line in LINES}) == len(LINES)
    assert Counter(line.role_ok for line in LINES)[False] >= 15
    assert {line.why for line in LINES if not line.role_ok} == set(ROLE_VIOLATIONS)
    performed = Counter(act for line in LINES for act in line.acts)
    assert all(performed[act] >= 3 for act in USER_ACTS), performed
    assert {line.sentiment for line in LINES} == {"negative", "neutral", "mixed", "positive"}
    assert {line.change for line in LINES} == {"better", "worse", "none"}
    held_out = [line for line in LINES if line.split == "held_out"]
    assert len(held_out) == len(LINES) // 3


def test_bad_labels_are_refused(tmp_path) -> None:
    bad = tmp_path / "lines.yaml"
    bad.write_text("lines:\n- {text: hi, role: ok, acts: [dance], sentiment: neutral}\n")
    with pytest.raises(ValueError, match="bad label"):
        load_labelled_lines(bad)


def test_reader_accuracy_on_the_labelled_lines() -> None:
    """The figures docs/simulator.md reports; a change to a reader that lowers them fails."""
    every = labelled_accuracy(LINES)
    assert every["role"] >= 0.98 and every["role_false_alarm"] == 0.0
    assert every["sentiment"] >= 0.8 and every["change"] >= 0.95
    assert every["band_agreement"] >= 0.9
    assert every["acts_exact"] >= 0.9
    assert all(every[f"act/{act}"] >= 0.9 for act in USER_ACTS if act != "disclose")
    assert every["act/disclose"] >= 0.8  # a paraphrased cue shares few words with it
    held_out = labelled_accuracy(LINES, split="held_out")
    assert held_out["lines"] == len(LINES) // 3
    assert held_out["role"] >= 0.95 and held_out["acts_exact"] >= 0.85
    assert held_out["sentiment"] >= 0.6  # the lexicon's weakest reading: implicit distress


def test_the_voice_check_agrees_with_the_labels_too() -> None:
    """The voice's own check, read against the same labels: role on every line; the act on
    the role-ok lines, for the act each line performs (its first label)."""
    role = [
        ("role" not in check_line(line.text, turn_for("vent", 30.0, name=line.name)))
        == line.role_ok
        for line in LINES
    ]
    assert sum(role) / len(role) >= 0.9
    acts = [
        "act"
        not in check_line(line.text, turn_for(sorted(line.acts)[0], 50.0, line.cue, line.name))
        for line in LINES
        if line.role_ok and line.acts
    ]
    assert sum(acts) / len(acts) >= 0.85


# --------------------------------------------------------------------------- the readers


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("I'm so sorry to hear that you're feeling this way.", ("consoles",)),
        ("Have you considered a walk each morning?", ("advises",)),
        ("I'm here for you. What's on your mind?", ("supporter",)),
        ("Maya is exhausted and wants to be heard.", ("third_person",)),
        ("As an AI, I can't feel sad.", ("meta",)),
        ("I'm not listening to that advice again.", ()),
        ("My mum says you're not alone if you talk about it, but I am.", ()),
    ],
)
def test_role_reader(line: str, why: tuple[str, ...]) -> None:
    assert read_role(line, "Maya").why == why


def test_sentiment_reader_negation_and_change() -> None:
    assert read_sentiment("I don't feel better at all.").worse
    assert read_sentiment("It isn't as bad as I thought.").label == "positive"
    assert read_sentiment("I'd feel better if I knew what to do.").label == "neutral"
    assert not emotion_agrees("I feel great, everything is wonderful.", 5.0)
    assert emotion_agrees("I feel great, everything is wonderful.", 55.0)
    assert not emotion_agrees("That helped a lot.", 45.0, change=-4.0)
    assert emotion_agrees("That helped a lot.", 45.0, change=-2.0)  # under the margin


def test_act_reader_and_conflicts() -> None:
    assert set(CONFLICTS) == set(USER_ACTS)
    assert read_acts("What should I do about it?") == {"ask"}
    assert read_acts("What really gets me is the silence.") == {"vent"}
    assert act_agrees("Thank you, I feel lighter. Bye for now!", "thank")
    assert not act_agrees("I feel so stuck. Anyway, I have to go now.", "vent")
    assert act_agrees("Hello. Could we talk about my exams?", "vent", opening=True)
    assert not act_agrees("Hello. Could we talk about my exams?", "vent")
    cue = "My dad hasn't spoken to me since Christmas."
    assert act_agrees("Dad hasn't spoken to me since Christmas, honestly.", "disclose", cue)
    assert not act_agrees("It's about my family.", "disclose", cue)
    with pytest.raises(ValueError, match="unknown act"):
        act_agrees("hi", "dance")


def test_template_voice_is_faithful_by_these_readers() -> None:
    """The authored lines were written to fit each act and band: the readers must agree, or
    they are the thing that is wrong. Seeded episodes of the benchmark's policy mix."""
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test", reward=None)
    rows = []
    for k, name in enumerate(("oracle", "stage-heuristic", "random", "always-suggest") * 3):
        policy = make_policy(name, env)
        obs, info = env.reset(seed=k, options={"card": k})
        policy.reset(seed=k)
        rows.append(_row(k, info, 0.0))
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(int(policy(obs)))
            done = terminated or truncated
            rows.append(_row(k, info, info["change"], done))
    cards = {c.id: c for c in load_scenarios("test")}
    table = fidelity_table(rows, cards)
    assert table["role_violation"] == 0.0
    assert table["act_agreement"] >= 0.98 and table["emotion_agreement"] >= 0.98
    assert table["thanks_at_success"] == 1.0 and table["goodbye_at_leave"] == 1.0
    assert table["prompt_to_line"] == 1.0
    assert "fallback" not in table  # the template voice has no check to report
    json.dumps(table)  # the benchmark writes it as JSON


def _row(episode: int, info: dict, change: float, done: bool = False) -> dict:
    return {
        "episode": episode,
        "card_id": info["card_id"],
        "turn": info["turn"],
        "act": info["user_act"],
        "emotion": info["emotion"],
        "change": change,
        "cue": info.get("cue"),
        "line": info["user_utterance"],
        "success": info.get("success") if done else None,
        "user_left": info.get("user_left") if done else None,
    }


def test_fidelity_table_counts_the_voice_check() -> None:
    rows = [
        {"line": "I feel so stuck.", "act": "vent", "emotion": 30.0, "change": 0.0,
         "card_id": "c", "episode": 0, "turn": 1,
         "voice_check": {"retries": 2, "fallback": False}},
        {"line": "I'm sorry to hear that.", "act": "vent", "emotion": 30.0, "change": 0.0,
         "card_id": "c", "episode": 0, "turn": 2,
         "voice_check": {"retries": 3, "fallback": True}},
    ]  # fmt: skip
    table = fidelity_table(rows)
    assert table["retried"] == 1.0 and table["mean_retries"] == 2.5 and table["fallback"] == 0.5
    assert table["model_lines"] == 1 and table["model/role_violation"] == 0.0
    assert table["role_violation"] == 0.5


# --------------------------------------------------------------------------- the voice's check


def test_check_line_names_what_is_wrong() -> None:
    assert CHECKS == ("role", "act", "mood")
    vent = turn_for("vent", 25.0)
    assert check_line("I can't sleep and I keep replaying it.", vent) == ()
    assert check_line("I'm so sorry to hear that, it's okay to feel sad.", vent)[0] == "role"
    assert check_line("Things are going really well for me lately.", vent) == ("mood",)
    assert "act" in check_line("I can't sleep. Anyway, bye.", vent)
    assert check_line("Thank you, that really helped.", turn_for("thank", 75.0)) == ()
    assert "act" in check_line("I still feel awful.", turn_for("thank", 75.0))
    assert check_line("I'm leaving now. Goodbye.", turn_for("leave", 2.0)) == ()
    assert check_line("What should I do next?", turn_for("ask", 50.0)) == ()
    cue = "I keep wondering if I was wrong to speak up."
    assert check_line(f"Honestly, {cue}", turn_for("disclose", 30.0, cue)) == ()


@pytest.mark.parametrize(
    ("line", "in_role"),
    [
        # Offers of help or company to the listener, and wishes for their mood: the supporter's.
        ("I'd really like to help you get through this.", False),
        ("Whatever happens, I'll always be there for you.", False),
        ("I hope you feel better soon, honestly.", False),
        ("So tell me, what happened?", False),
        ("That's fine. What about your family, though?", False),
        # The user asking for the same, or telling what happened, is in role.
        ("Can you help me figure out what to say to her?", True),
        ("I just need someone to be there for me.", True),
        ("I don't even know what happened between us.", True),
        ("My family keeps asking what happened.", True),
    ],
)
def test_the_check_reads_offers_to_the_listener_as_out_of_role(line: str, in_role: bool) -> None:
    assert ("role" not in check_line(line, turn_for("vent", 30.0))) == in_role


def test_every_template_line_passes_the_voice_check() -> None:
    """The fallback must never be something the check itself would reject."""
    voice = TemplateUserVoice()
    for act in USER_ACTS:
        for emotion in (0.0, 25.0, 55.0, 80.0, 100.0):
            for seed in range(12):
                turn = turn_for(act, emotion)
                turn.seed = seed
                line = voice.speak([turn])[0]
                assert check_line(line, turn) == (), (act, emotion, line)
