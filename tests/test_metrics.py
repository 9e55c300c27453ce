"""The metrics (dialogue_gym/evaluation/metrics/) on hand-built episodes, and what evaluation records."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.agents.options import Options
from dialogue_gym.agents.reference import StageHeuristicPolicy, make_policy
from dialogue_gym.core.scenario import load_scenarios
from dialogue_gym.core.vocabulary import USER_ACTS
from dialogue_gym.evaluation.episodes import (
    ALL_REWARDS,
    EpisodeResult,
    ModelPolicy,
    TurnRecorder,
    evaluate,
    evaluate_model,
    make_eval_env,
    run_episode,
    summarize,
)
from dialogue_gym.evaluation.metrics import (
    METRIC_DOCS,
    PROBE_ORDER,
    QA_REASON,
    REWARD_PROBES,
    all_rewards_env,
    card_contradictions,
    compute_metrics,
    grounding_rate,
    grounding_rate_vs_reference,
    history_contradictions,
    line_to_line_consistency,
    mean_final_emotion,
    mean_returns,
    mean_turns,
    prompt_to_line_consistency,
    qa_consistency,
    qa_score,
    returns_by_reward,
    soothing_index,
    stack_reward_probes,
    strategies_covering,
    strategy_entropy,
    success_rate,
    user_left_rate,
)
from dialogue_gym.llm.backends import GenerationParams
from dialogue_gym.rewards import REWARDS, ComponentRewardWrapper, register_reward
from dialogue_gym.rewards.registry import COMPONENT_WRAPPERS
from dialogue_gym.user.voices import DEFAULT_LLM_PARAMS, LLMUserVoice, UserTurn

CARD = load_scenarios("test")[0]  # Tomás, 19, engineering student; average 70 / on 68; June


def episode(
    strategies=(),
    success=False,
    user_left=False,
    initial=30.0,
    final=40.0,
    resolved=None,
    card_id="c",
    **kw,
) -> EpisodeResult:
    return EpisodeResult(
        card_id,
        "be_heard",
        success,
        user_left,
        initial,
        final,
        len(strategies),
        list(strategies),
        [],
        0.0,
        resolved=resolved,
        **kw,
    )


# --------------------------------------------------------------------------- outcome


def test_outcome_metrics_on_built_episodes():
    results = [
        episode([0] * 4, success=True, final=80.0),
        episode([4] * 10, final=50.0),
        episode([5] * 2, user_left=True, final=0.0),
        episode([0] * 8, final=42.0),
    ]
    assert success_rate(results) == 0.25
    assert user_left_rate(results) == 0.25
    assert mean_final_emotion(results) == 43.0
    assert mean_turns(results) == 6.0
    with pytest.raises(ValueError, match="no episodes"):
        success_rate([])


def test_grounding_rate_is_pooled_over_turns_not_averaged_over_episodes():
    results = [episode([0, 1]), episode([4, 4, 4, 4, 4, 4, 4, 1])]
    # 3 grounding turns of 10; the mean of per-episode rates would be (1 + 1/8) / 2.
    assert grounding_rate(results) == 0.3
    # Other strategies are not grounding acts, even the exploratory-sounding ones.
    assert grounding_rate([episode([2, 3, 4, 5, 6, 7])]) == 0.0
    assert math.isnan(grounding_rate([episode([])]))


def test_grounding_rate_relative_to_a_reference():
    policy = [episode([0, 4, 4, 4, 4])]  # 0.2
    reference = [episode([0, 1, 4, 5])]  # 0.5
    assert grounding_rate_vs_reference(policy, reference) == pytest.approx(0.4)
    assert grounding_rate_vs_reference(policy, 0.8) == pytest.approx(0.25)
    assert math.isnan(grounding_rate_vs_reference(policy, [episode([4, 4])]))


def test_soothing_index_is_six_tenths_on_a_built_set():
    results = [
        # need resolved but no thanks before the end: its 20 points are not soothing
        episode([5], resolved=True, success=False, initial=50.0, final=70.0),
        episode([4], resolved=False, initial=30.0, final=45.0),  # 15 points of soothing
        episode([4], resolved=False, initial=30.0, final=45.0),  # 15 more
        episode([5], resolved=False, initial=30.0, final=10.0),  # lost emotion: gains 0
    ]
    assert soothing_index(results) == 0.6
    # The resolved flag, not success, decides: counting by success would give 50 of 50.
    assert soothing_index([episode([4], success=True, initial=30.0, final=60.0)]) == 0.0


def test_soothing_index_without_any_gain_is_zero_and_falls_back_to_success():
    assert soothing_index([episode([5], initial=40.0, final=10.0)]) == 0.0
    assert soothing_index([episode([5], initial=40.0, final=40.0)]) == 0.0
    hand_built = EpisodeResult("c", "be_heard", False, False, 30.0, 60.0, 1, [4], [], 0.0)
    assert hand_built.resolved is None and soothing_index([hand_built]) == 1.0


def test_strategy_entropy_pools_episodes():
    assert strategy_entropy([episode(range(8))]) == 3.0
    # Each episode alone has zero entropy; pooled, two strategies half each: one bit.
    assert strategy_entropy([episode([0, 0]), episode([4, 4])]) == 1.0
    assert strategy_entropy([episode([4] * 5)]) == 0.0
    p = np.array([6, 2, 2]) / 10
    expected = float(-(p * np.log2(p)).sum())
    assert strategy_entropy([episode([0] * 6 + [1, 1, 4, 4])]) == pytest.approx(expected)
    assert strategy_entropy([episode([])]) == 0.0


def test_strategies_covering_ninety_percent():
    assert strategies_covering([episode([4] * 9 + [0])]) == 1
    assert strategies_covering([episode([4] * 8 + [0, 1])]) == 2
    assert strategies_covering([episode([4] * 89 + [0] * 11)]) == 2  # 89% is not 90%
    assert strategies_covering([episode(list(range(8)) * 3)]) == 8
    assert strategies_covering([episode([4] * 5 + [0] * 5)], share=0.5) == 1
    assert strategies_covering([episode([])]) == 0
    with pytest.raises(ValueError, match="share"):
        strategies_covering([episode([0])], share=0.0)


# --------------------------------------------------------------------------- every reward


def test_reward_probes_cover_every_registered_reward_but_composite():
    assert set(REWARD_PROBES) == set(REWARDS) - {"composite"}
    assert sorted(PROBE_ORDER) == sorted(REWARD_PROBES)
    assert PROBE_ORDER[-1] == "sparse"  # the stacked env pays the default reward


def test_stacking_every_wrapper_logs_every_component():
    env = all_rewards_env({"voice": "template", "scenarios": "test", "reward": "next_turn"})
    _, info = env.reset(seed=0)
    for name in REWARD_PROBES:
        assert info["reward_components"][name] == 0.0
    _, reward, *_, info = env.step(0)
    assert all(name in info["reward_components"] for name in REWARD_PROBES)
    assert reward == info["reward_components"]["sparse"]
    # An env that already has one of the rewards cannot take the whole stack twice.
    with pytest.raises(ValueError, match="already in this stack"):
        stack_reward_probes(gym.make("EmpathyDialogue-v0", voice="template", reward="sparse"))
    with pytest.raises(ValueError, match="unknown reward"):
        stack_reward_probes(
            gym.make("EmpathyDialogue-v0", voice="template", reward=None), {"dense": {}}
        )


@pytest.mark.parametrize("policy,seed,card", [("stage-heuristic", 0, 0), ("random", 5, 3)])
def test_returns_by_reward_match_each_wrapper_alone(policy, seed, card):
    stacked = all_rewards_env({"voice": "template", "scenarios": "test"})
    together = run_episode(stacked, make_policy(policy, stacked), seed=seed, card=card)
    returns = returns_by_reward([together])
    for name, keys in REWARD_PROBES.items():
        env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test", reward=name)
        alone = run_episode(env, make_policy(policy, env), seed=seed, card=card)
        assert alone.strategies == together.strategies and alone.emotions == together.emotions
        assert returns[name] == [pytest.approx(alone.episode_return, abs=1e-12)]
        # Turn by turn too, not only in sum.
        per_turn = [sum(c[k] for k in keys) for c in together.reward_components]
        assert per_turn == pytest.approx(alone.rewards, abs=1e-12)
    # Non-trivial values: these returns differ from one another.
    assert len({round(v[0], 6) for v in returns.values()}) >= 4


#: The keys the study's report reads, in its order: a refactoring must not move them.
BUILT_IN_KEYS = [
    "episodes", "success_rate", "final_emotion", "user_left_rate", "mean_turns",
    "grounding_rate", "grounding_rate_vs_reference", "soothing_index", "strategy_entropy",
    "strategies_90", "return/sparse", "return/final_emotion", "return/next_turn",
    "return/multi_turn", "return/emotion_delta", "return/potential_emotion",
    "prompt_to_line", "line_to_line", "qa_consistency",
]  # fmt: skip


def test_built_in_metric_keys_and_probe_order_are_unchanged():
    assert list(METRIC_DOCS) == BUILT_IN_KEYS
    assert tuple(PROBE_ORDER) == (
        "final_emotion", "next_turn", "multi_turn", "emotion_delta", "potential_emotion", "sparse"
    )  # fmt: skip


class Halved(ComponentRewardWrapper):
    """A plugin reward: half the emotion change, every turn."""

    def __init__(self, env: gym.Env, name: str = "halved") -> None:
        super().__init__(env, name)

    def reward(self, reward, terminated, truncated, info):
        return 0.5 * info["change"], ()


def test_a_plugin_reward_is_probed_with_no_other_edit():
    with REWARDS.restoring(), COMPONENT_WRAPPERS.restoring():
        register_reward("halved", Halved)
        assert REWARD_PROBES["halved"] == ("halved",)
        assert PROBE_ORDER[-1] == "sparse" and "halved" in PROBE_ORDER
        assert list(METRIC_DOCS)[: len(BUILT_IN_KEYS) - 3] == BUILT_IN_KEYS[:-3]
        assert list(METRIC_DOCS)[-4:] == [
            "return/halved", "prompt_to_line", "line_to_line", "qa_consistency"
        ]  # fmt: skip
        env = all_rewards_env({"voice": "template", "scenarios": "test"})
        result = run_episode(env, StageHeuristicPolicy(), seed=0, card=0)
        changes = [c["emotion_delta/change"] for c in result.reward_components]
        metrics = compute_metrics([result])
        assert metrics["return/halved"] == pytest.approx(0.5 * sum(changes))
        assert metrics["return/halved"] != 0.0  # the episode moved the emotion
    assert "halved" not in REWARD_PROBES and "return/halved" not in METRIC_DOCS


def test_returns_by_reward_without_components_are_nan():
    plain = episode([0, 4])
    partial = episode([0], reward_components=[{"sparse": 1.0}])
    out = returns_by_reward([plain, partial])
    assert math.isnan(out["sparse"][0]) and out["sparse"][1] == 1.0
    assert math.isnan(out["potential_emotion"][1])
    assert math.isnan(mean_returns([plain, partial])["sparse"])


# --------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_keys_are_stable_and_documented():
    keys = list(METRIC_DOCS)
    assert keys[:5] == ["episodes", "success_rate", "final_emotion", "user_left_rate", "mean_turns"]
    assert {f"return/{name}" for name in REWARD_PROBES} <= set(keys)
    assert all(isinstance(doc, str) and doc for doc in METRIC_DOCS.values())
    bare = compute_metrics([episode([0, 4])])
    evaluated = evaluate("stage-heuristic", reward=ALL_REWARDS, seed=0)
    full = compute_metrics(evaluated, reference=evaluated)
    for metrics in (bare, full):
        assert list(metrics) == keys
        assert all(type(v) is float for v in metrics.values())
    for key in ("grounding_rate_vs_reference", "return/sparse", "prompt_to_line", "qa_consistency"):
        assert math.isnan(bare[key])
    assert all(not math.isnan(v) for k, v in full.items() if k != "qa_consistency")
    assert full["grounding_rate_vs_reference"] == 1.0
    # The summary the CLI prints is the same numbers under the same keys.
    summary = summarize(evaluated)
    assert all(full[key] == value for key, value in summary.items())
    assert full["return/sparse"] == full["success_rate"]
    json.dumps(full)  # NaN aside, plain floats: a study can write them as they are


def test_compute_metrics_separates_soothing_from_helping():
    helper = evaluate("stage-heuristic", seed=0)
    soother = evaluate("always-reassure", seed=0)
    h = compute_metrics(helper, reference=helper)
    s = compute_metrics(soother, reference=helper)
    assert s["success_rate"] == 0.0 and s["soothing_index"] == 1.0
    assert h["soothing_index"] < 0.5
    assert s["grounding_rate"] == 0.0 and s["grounding_rate_vs_reference"] == 0.0
    assert s["strategy_entropy"] == 0.0 and s["strategies_90"] == 1.0
    assert h["strategy_entropy"] > 1.0


# --------------------------------------------------------------------------- evaluation records


def test_episodes_record_every_turn():
    env = make_eval_env(reward=ALL_REWARDS)
    r = run_episode(env, StageHeuristicPolicy(), seed=2, card=1)
    assert len(r.strategies) == len(r.user_acts) == len(r.rewards) == r.turns
    assert len(r.reward_components) == r.turns
    assert len(r.emotions) == len(r.user_lines) == r.turns + 1
    assert set(r.user_acts) <= set(USER_ACTS) and all(r.user_lines)
    assert r.resolved is not None and r.need_resolved == r.resolved and r.seed == 2
    assert r.episode_return == sum(r.rewards)
    json.dumps(r.__dict__)  # the CLI writes results as JSONL
    # Old positional construction still works.
    old = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
    assert old.user_acts == [] and old.need_resolved


def test_plain_callables_models_and_env_kwargs_rewards():
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test", reward=None)
    r = run_episode(env, lambda obs: np.int64(6), seed=0, card=0)
    assert r.strategies == [6] * r.turns and r.reward_components == [{}] * r.turns
    # A training run's reward in env_kwargs is replaced by evaluate's reward.
    results = evaluate(lambda env: lambda obs: 0, env_kwargs={"reward": "next_turn"})
    assert set(results[0].reward_components[0]) == {"sparse", "sparse/success", "sparse/left"}


class FakeRecurrentModel:
    """SB3's predict signature; plays Question, then Restatement, remembering the episode."""

    def __init__(self):
        self.starts: list[bool] = []

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        self.starts.append(bool(episode_start[0]))
        count = 0 if episode_start[0] else state
        return np.array([min(count, 1)]), count + 1


def test_evaluate_model_carries_recurrent_state_and_records_every_reward():
    model = FakeRecurrentModel()
    results = evaluate_model(model, {"scenarios": "test"}, seed=0)
    assert len(results) == len(load_scenarios("test"))
    assert all(r.strategies == [0] + [1] * (r.turns - 1) for r in results)
    assert model.starts.count(True) == len(results)  # memory cleared once per episode
    assert all(name in results[0].reward_components[0] for name in REWARD_PROBES)
    with pytest.raises(TypeError, match="predict"):
        ModelPolicy(object())


def test_options_turns_are_recorded_one_by_one():
    class Explore:
        def predict(self, obs, deterministic=False):
            return np.array(0), None  # the "explore" option: Question/Restatement, 2 turns

    results = evaluate_model(Explore(), {"scenarios": "test"}, wrapper=Options)
    r = results[0]
    assert r.turns == 10 and set(r.strategies) == {0, 1}
    assert len(r.reward_components) == r.turns and r.episode_return == sum(r.rewards)
    bare = Options(gym.make("EmpathyDialogue-v0", voice="template"))
    with pytest.raises(ValueError, match="TurnRecorder"):
        run_episode(bare, lambda obs: 0, seed=0)
    assert run_episode(Options(TurnRecorder(bare.env)), lambda obs: 0, seed=0).turns == 10


# --------------------------------------------------------------------------- consistency


@pytest.mark.parametrize(
    "line,why",
    [
        ("Hi, I'm Anna and I don't know what to do.", "name"),
        ("My name is Tom.", "name"),
        ("I'm 25, and this is my whole future.", "age"),
        ("I'm a 30-year-old who cannot cope.", "age"),
        ("I work as a nurse, so it's not even my main thing.", "job"),
        ("My average is sixty-five now.", "fact"),
        ("I need 80 to keep it.", None),  # no topic word in the sentence: not checked
        ("I'll find out about the exams in July.", "fact"),
    ],
)
def test_card_contradictions_find_each_kind(line, why):
    reasons = card_contradictions(line, CARD)
    if why is None:
        assert reasons == []
    else:
        assert len(reasons) == 1 and reasons[0].startswith(why), reasons


@pytest.mark.parametrize(
    "line",
    [
        "Hi, I'm Tomás. I'm 19 and I study engineering.",
        "I'm TOMAS, nineteen.",
        "My average needs to be seventy and I'm on 68.",
        "I'll find out after the exams in June, and my average is 68.",
        "I'm So tired of this, I'm sorry.",
        "I work as a student helper in engineering.",
        "I'm 9.6 on that scale, I'm 2 weeks behind and I'm on sixty-eight.",
        "My scholarship covers all of my tuition fees.",
    ],
)
def test_card_contradictions_accept_faithful_lines(line):
    assert card_contradictions(line, CARD) == []


def test_authored_card_text_never_contradicts_its_card():
    for card in load_scenarios("all"):
        lines = [cue.text for cue in card.need_cues] + [fact.answer for fact in card.facts]
        assert all(card_contradictions(line, card) == [] for line in lines), card.id
        assert all(r == [] for r in history_contradictions(lines, card)), card.id


def test_history_contradictions():
    lines = [
        "Hi, I'm Tomás.",
        "My average is sixty-five, and I'll hear in July about the exams.",
        "I'm on sixty-five, as I said.",  # no topic word: unchecked
        "My average is 65, the exams are in July.",  # wrong, but steadily
        "Call me Tom. My average is sixty.",
        "The exams results come in June.",
    ]
    found = history_contradictions(lines, CARD)
    assert [bool(r) for r in found] == [False, False, False, False, True, True]
    assert len(found[4]) == 2 and found[4][0].startswith("name")
    assert "earlier july" in found[5][0]


def test_consistency_shares_on_built_lines():
    lines = [
        "Hi, I'm Tomás.",
        "My average is sixty-five.",  # against the card (68)
        "I'm 19 and tired.",
        "My average is sixty-five.",  # against the card, consistent with line 2
        "Really, my average is seventy.",  # matches the card, contradicts lines 2 and 4
    ]
    r = episode([0] * 4, user_lines=lines, card_id=CARD.id)
    assert prompt_to_line_consistency([r]) == 0.6  # 3 of 5, cards found by id
    assert line_to_line_consistency([r]) == 0.8  # 4 of 5
    assert math.isnan(prompt_to_line_consistency([episode([0], card_id="nowhere")]))
    assert math.isnan(line_to_line_consistency([episode([0], card_id=CARD.id)]))


def test_template_voice_is_consistent():
    results = evaluate("random", seed=1)
    assert prompt_to_line_consistency(results) == 1.0
    assert line_to_line_consistency(results) == 1.0


def test_qa_score():
    answer = "Seventy percent, and I'm on sixty-eight."
    assert qa_score("Seventy percent. I have 68.", answer) == 1.0
    assert qa_score("I need 70.", answer) == pytest.approx(1 / 3)
    assert qa_score("No idea.", answer) == 0.0
    assert qa_score("anything", "No.") == 1.0  # an answer with no tokens cannot be missed


class FactVoice:
    """A user voice that answers a fact question with the card's answer (or a wrong one)."""

    kind = "fact"

    def __init__(self, wrong: bool = False):
        self.wrong = wrong
        self.turns = []

    def speak(self, turns):
        self.turns.extend(turns)
        out = []
        for t in turns:
            answer = next(f.answer for f in t.card.facts if f.question == t.agent_utterance)
            out.append("I really couldn't say." if self.wrong else f"Well... {answer}")
        return out


def test_qa_consistency_asks_every_fact_mid_episode_without_changing_it():
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    plain = run_episode(env, StageHeuristicPolicy(), seed=4, card=2)
    voice = FactVoice()
    qa = qa_consistency(env, StageHeuristicPolicy(), seed=4, card=2, ask_after=3, voice=voice)
    assert qa.episode == plain  # the questions are side conversations
    card = env.unwrapped.cards[2]
    assert qa.card_id == card.id and qa.turn == 3 and qa.score == 1.0
    assert [a.question for a in qa.answers] == [f.question for f in card.facts]
    asked = voice.turns[0]
    assert asked.act == "disclose" and asked.reason and asked.history and asked.turn == 4
    assert len({t.seed for t in voice.turns}) == len(voice.turns)
    wrong = qa_consistency(env, StageHeuristicPolicy(), seed=4, card=2, voice=FactVoice(True))
    assert wrong.score == 0.0 and wrong.turn == env.unwrapped.max_turns // 2


def test_qa_consistency_edges_and_template_floor():
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
    at_start = qa_consistency(env, StageHeuristicPolicy(), seed=0, card=0, ask_after=0)
    assert at_start.turn == 0 and len(at_start.answers) == 3
    assert at_start.episode == run_episode(env, StageHeuristicPolicy(), seed=0, card=0)
    late = qa_consistency(env, StageHeuristicPolicy(), seed=0, card=0, ask_after=99)
    assert late.turn == late.episode.turns  # asked at the end, when it came sooner
    few = qa_consistency(env, StageHeuristicPolicy(), seed=0, card=0, max_questions=1)
    assert len(few.answers) == 1 and few.answers[0].reply  # the template voice says something
    assert compute_metrics([few.episode], qa=[few, at_start])["qa_consistency"] == pytest.approx(
        np.mean([few.score, at_start.score])
    )
    with pytest.raises(ValueError, match="ask_after"):
        qa_consistency(env, StageHeuristicPolicy(), ask_after=-1)


@pytest.mark.llm
def test_qa_consistency_with_the_llm_voice():
    params = GenerationParams(max_tokens=24, stop=DEFAULT_LLM_PARAMS.stop)
    voice = LLMUserVoice("llama_cpp", params=params)
    env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")

    def probe():
        return qa_consistency(
            env, StageHeuristicPolicy(), seed=0, card=0, ask_after=1, max_questions=2, voice=voice
        )

    first, again = probe(), probe()
    replies = [a.reply for a in first.answers]
    assert len(replies) == 2 and all(replies)
    assert replies == [a.reply for a in again.answers]  # seeded per question
    assert 0.0 <= first.score <= 1.0
    # The question reaches the model as the supporter's last line.
    asked = UserTurn(
        card=CARD,
        act="disclose",
        emotion=40.0,
        band="middle",
        reason=QA_REASON,
        cue=None,
        agent_utterance=CARD.facts[0].question,
        history=(),
        turn=1,
        seed=0,
    )
    assert voice.build_chat(asked)[-1] == {"role": "user", "content": CARD.facts[0].question}
    for reply in replies:  # the lexical checks read free text without failing
        assert isinstance(card_contradictions(reply, CARD), list)
