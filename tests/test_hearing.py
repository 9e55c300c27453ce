"""The hearing user (EmpathyDialogueText-v1): how the words are said moves the user.

The core without a delivery is the core of v0 and the strategy env (their goldens hold it bit
for bit, tests/test_golden.py); here: each part of a delivery moves the core the way
docs/simulator.md says, the listeners read what they claim to, and v1 carries it all to `info`
and the user's words.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from repo_scripts import load_script

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.core.affect import AffectiveCore
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.delivery import WELL_DELIVERED, Delivery, reaction
from dialogue_gym.core.scenario import load_scenarios
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.core.vocabulary import AFFIRMATION, QUESTION, REFLECTION
from dialogue_gym.user.hearing import LISTENERS, HearingContext, make_listener
from dialogue_gym.user.hearing.lexicon import content_words, tone

CARDS = load_scenarios("test")


def core(card: int = 0, noise: int = 0) -> AffectiveCore:
    draws = np.random.default_rng(noise).standard_normal(10)
    return AffectiveCore(CARDS[card], SimConfig(), draws)


def play(acts: list[int], delivery: Delivery | None, card: int = 0) -> AffectiveCore:
    user = core(card)
    for act in acts:
        user.step(act, delivery)
    return user


# -- the core ------------------------------------------------------------------------------------


@pytest.mark.parametrize("card", [0, 7, 33, 71])
def test_a_well_delivered_turn_is_the_strategy_alone(card: int) -> None:
    acts = [QUESTION, 1, QUESTION, REFLECTION, AFFIRMATION, 5, 6, 3, 7, QUESTION]
    a, b = play(acts, None, card), play(acts, WELL_DELIVERED, card)
    assert dataclasses.asdict(a.state) == dataclasses.asdict(b.state)


def test_hostility_costs_emotion_and_trust_and_drives_the_user_away() -> None:
    hostile = Delivery(tone="hostile", hostility=0.9)
    kind, cruel = play([QUESTION] * 3, None), play([QUESTION] * 3, hostile)
    assert cruel.state.understanding == 0.0 < kind.state.understanding
    assert cruel.state.trust < kind.state.trust and cruel.state.emotion < kind.state.emotion
    assert cruel.state.left  # trust hit the walk-out floor within three insults


def test_a_user_with_trust_to_spare_gives_one_insult_another_chance() -> None:
    user = core(0)
    user.state.trust = 1.0
    appraisal = user.step(QUESTION, Delivery(tone="hostile", hostility=0.6))
    assert not appraisal.left and appraisal.user_act == "resist"


def test_off_topic_turns_build_no_understanding_and_cost_patience() -> None:
    off = play([QUESTION] * 4, Delivery(relevance=0.1))
    assert off.state.understanding == 0.0 and off.state.emotion < CARDS[0].initial_emotion


def test_muddled_help_cannot_meet_the_need() -> None:
    # Build understanding cleanly, then deliver the resolving act as a pile of phrases.
    user = core(0)
    while not user.ready_for_help():
        user.step(QUESTION)
    resolver = next(iter(user.resolvers))
    muddled = user.fork().step(resolver, Delivery(coherence=0.2))
    clear = user.fork().step(resolver, Delivery(coherence=0.9))
    assert clear.resolved_now and not muddled.resolved_now
    assert "stock phrases" in muddled.reason


@pytest.mark.parametrize(
    "worse, better",
    [
        (Delivery(repetition=1.0), Delivery()),
        (Delivery(coldness=1.0), Delivery()),
        (Delivery(coherence=0.6), Delivery()),
        (Delivery(), Delivery(specificity=1.0)),
    ],
)
def test_delivery_scales_what_a_turn_builds(worse: Delivery, better: Delivery) -> None:
    a, b = play([QUESTION, 1, QUESTION], worse), play([QUESTION, 1, QUESTION], better)
    assert a.state.understanding < b.state.understanding
    assert core().quality(worse) < core().quality(better)


def test_reactions_name_what_went_wrong() -> None:
    c = SimConfig()
    args = (c.hostile_at, c.relevance_needed, c.clarity_needed)
    assert reaction(Delivery(hostility=0.9), *args) == "hurt"
    assert reaction(Delivery(relevance=0.0), *args) == "off_topic"
    assert reaction(Delivery(coherence=0.2), *args) == "muddled"
    assert reaction(Delivery(repetition=0.9), *args) == "repeated"
    assert reaction(WELL_DELIVERED, *args) is None


def test_hearing_parameters_are_validated_like_every_other() -> None:
    with pytest.raises(InvalidArgument, match="hostile_at"):
        SimConfig(hostile_at=1.5)
    assert SimConfig.coerce({"relevance_needed": 0.2}).relevance_needed == 0.2


# -- the listeners -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, hostile",
    [
        ("It sounds like you feel sorry for yourself, which is pathetic.", True),
        ("So basically this is your own fault.", True),
        ("Honestly, you're overreacting. Get over it.", True),
        ("Just drink it away, that's what I do.", True),
        ("It's not your fault, and you don't have to give up.", False),
        ("You said you feel stupid for letting it slide; that is a hard feeling.", False),
        ("I'm so sorry. That sounds exhausting.", False),
    ],
)
def test_the_tone_reading(text: str, hostile: bool) -> None:
    assert (tone(text).hostility >= SimConfig().hostile_at) is hostile


@pytest.mark.parametrize("kind", LISTENERS.names())
def test_every_listener_reads_each_part(kind: str) -> None:
    listener = make_listener(kind)
    card = CARDS[0]
    said = f"I can't stop thinking about {card.topic}."
    ctx = HearingContext(card, said)
    salad = "You must feel sad. I can imagine you feel hurt. It sounds like you feel lonely."
    texts = [
        "What do you think about learning to juggle this weekend?",
        f"What worries you most about {card.topic.replace('I might', 'you might')}?",
        salad,
        card.facts[0].question,
    ]
    contexts = [ctx, ctx, HearingContext(card, said, acts=(2, 4, 0)), ctx]
    off, specific, muddled, fact = (h.delivery for h in listener.hear(texts, contexts))
    assert off.relevance < SimConfig().relevance_needed <= specific.relevance
    assert specific.specificity > off.specificity
    assert muddled.coherence < SimConfig().clarity_needed
    assert fact.answer == card.facts[0].answer
    again = listener.hear([salad], [HearingContext(card, said, earlier=(salad,))])[0]
    assert again.delivery.repetition == 1.0 and again.repeats == 0


def test_the_lexical_listener_is_a_pure_function() -> None:
    listener = make_listener("lexical")
    ctx = HearingContext(CARDS[3], "It has been weeks.")
    first = listener.hear(["How have you been sleeping?"], [ctx])[0]
    assert listener.hear(["How have you been sleeping?"], [ctx])[0] == first


def test_content_words_ignore_function_words() -> None:
    assert content_words("What is it that you feel about this?") == frozenset()


# -- the env -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v1() -> gym.Env:
    return gym.make("EmpathyDialogueText-v1", voice="template", scenarios="test")


def test_v1_reports_what_the_user_heard(v1: gym.Env) -> None:
    v1.reset(seed=0, options={"card": 0})
    *_, info = v1.step("What has been the hardest part of all this for you?")
    heard = info["heard"]
    assert {"tone", "hostility", "relevance", "coherence", "repetition", "specificity"} <= set(
        heard
    )
    assert heard["tone"] in ("warm", "neutral") and heard["source"] == "embedding"
    assert info["recognition"]["source"] == "embedding"


def test_v1_user_answers_a_fact_question_and_voices_a_hurt(v1: gym.Env) -> None:
    card = CARDS[0]
    v1.reset(seed=0, options={"card": 0})
    *_, info = v1.step(card.facts[0].question)
    assert card.facts[0].answer in info["user_utterance"]
    *_, terminated, _, info = v1.step("So basically this is your own fault. Grow up.")
    assert info["heard"]["tone"] == "hostile" and info["user_act"] in ("resist", "leave")
    assert info["emotion"] < info["emotion_before"]


def test_insults_that_carry_a_cue_drive_users_away_in_v1_not_in_v0() -> None:
    insult = "It sounds like you feel sorry for yourself, which is pathetic."
    left = {}
    for env_id in ("EmpathyDialogueText-v0", "EmpathyDialogueText-v1"):
        env = gym.make(env_id, voice="template", scenarios="test", max_turns=6)
        gone = 0
        for k in range(6):
            env.reset(seed=k, options={"card": k})
            done = False
            while not done:
                *_, terminated, truncated, info = env.step(insult)
                done = terminated or truncated
            gone += info["user_left"]
        left[env_id] = gone
    assert left["EmpathyDialogueText-v0"] == 0 and left["EmpathyDialogueText-v1"] >= 4


def test_v0_has_no_listener_and_reports_nothing_heard() -> None:
    env = gym.make("EmpathyDialogueText-v0", voice="template", scenarios="test")
    env.reset(seed=0)
    *_, info = env.step("So basically this is your own fault.")
    assert "heard" not in info and env.unwrapped.listener is None


def test_a_bad_listener_is_refused_by_name() -> None:
    with pytest.raises(InvalidArgument, match="listener"):
        gym.make("EmpathyDialogueText-v1", voice="template", listener="telepathy")


@pytest.mark.slow
def test_counterfactual_benchmark_quick(tmp_path) -> None:
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "counterfactual.py"
    bench = load_script(path, "counterfactual")
    args = bench.Args(
        split="dev", styles=("natural", "hostile"), quick=True, out=tmp_path / "r.json"
    )
    result = bench.main(args)
    rows = {(r["env"], r["style"]): r for r in result["rows"]}
    assert rows[("EmpathyDialogueText-v1", "hostile")]["left"] > 0.0
    assert rows[("EmpathyDialogueText-v0", "hostile")]["left"] == 0.0
    assert (tmp_path / "r.json").is_file()


def test_the_tone_model_hears_contempt_no_list_holds() -> None:
    from dialogue_gym.user.hearing.tone_model import fitted

    unlisted = "Did it ever occur to you that this is nobody's fault but yours?"
    assert tone(unlisted).hostility < SimConfig().hostile_at  # the word lists miss it
    kind = "I'm here for you, take your time."
    p_unlisted, p_kind = fitted().hostile_probability([unlisted, kind])
    assert p_unlisted > p_kind
    # Kindness the words show overrules the model: "fault" near "not your" is not blame.
    listener = make_listener("embedding")
    heard = listener.hear(
        ["It's not your fault, and I'm glad you told me."], [HearingContext(CARDS[0], "")]
    )[0]
    assert heard.delivery.tone == "warm" and heard.delivery.hostility == 0.0


def test_the_tone_model_is_kept_between_processes(tmp_path, monkeypatch) -> None:
    from dialogue_gym.user.hearing import tone_model

    monkeypatch.setenv("DIALOGUE_GYM_CACHE", str(tmp_path))
    monkeypatch.setattr(tone_model, "training_lines", lambda: (("You idiot.", 1), ("Hi.", 0)))
    tone_model.fitted.cache_clear()
    try:
        first = tone_model.fitted()
        kept = list(tmp_path.glob("tone_model-*.pkl"))
        tone_model.fitted.cache_clear()
        again = tone_model.fitted()
    finally:
        tone_model.fitted.cache_clear()
    assert len(kept) == 1 and again is not first
    assert np.array_equal(
        first.hostile_probability(["You idiot."]), again.hostile_probability(["You idiot."])
    )


def test_the_embedding_reader_reads_natural_support() -> None:
    from dialogue_gym.user.recognise import make_recogniser

    reader = make_recogniser("embedding")
    lines = ("When my dad was ill I barely slept for a year.", "How long has it been like this?")
    assert [r.strategy for r in reader.recognise(lines)] == ["Self-disclosure", "Question"]


def test_a_vector_env_of_hearing_users_embeds_a_step_in_one_pass() -> None:
    from dialogue_gym.user.hearing.embedding import SentenceEncoder

    envs = gym.make_vec("EmpathyDialogueText-v1", num_envs=3, voice="template", scenarios="test")
    envs.reset(seed=0)
    envs.step(["What happened?"] * 3)  # the cards' situations and topics are embedded once
    encoder = SentenceEncoder.shared()
    before = encoder.calls
    envs.step([f"How long has this been weighing on you, {k} weeks?" for k in range(3)])
    assert encoder.calls - before == 1
