"""Validation as data (issue 12): every argument declares its type and range once, one validator.

Regression tests for the defects of issue 12 that bad arguments caused: 3 (NaN in the simulator
crashed a step), 10 (errors that named neither field nor file), 11 (``max_turns`` unbounded) and 12
(out-of-range values accepted silently); and the tests that keep the specs complete: a new
``SimConfig`` field, env argument or reward argument without a spec fails here.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import pickle
import re
from contextlib import contextmanager

import gymnasium as gym
import numpy as np
import pytest
import yaml

import dialogue_gym
from dialogue_gym.cli import main as cli
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.scenario import ScenarioError, card_to_dict, load_card, load_scenarios
from dialogue_gym.registration import ENVS

NAN, INF = math.nan, math.inf
_DEFAULTS = SimConfig()


def _invalid_argument() -> type[Exception]:
    # Imported late: the regression tests below were run before the module existed.
    from dialogue_gym.core.validation import InvalidArgument

    return InvalidArgument


@contextmanager
def invalid(*parts: str):
    """Expect the documented error, its message containing each of ``parts`` verbatim."""
    with pytest.raises(ValueError) as info:
        yield info
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert isinstance(info.value, _invalid_argument()), repr(info.value)
    assert "\n" not in message


def make(env_id: str = "EmpathyDialogue-v0", **kwargs):
    return gym.make(env_id, **{"voice": "template", "scenarios": "test", **kwargs})


def _with(name: str, **entries: float) -> dict[str, float]:
    """A default mapping of ``SimConfig`` with some entries changed."""
    return {**getattr(_DEFAULTS, name), **entries}


# -- defect 3: NaN in SimConfig crashed a step ----------------------------------------------


@pytest.mark.parametrize(
    ("sim", "where"),
    [
        ({"others_effect": NAN}, "SimConfig.others_effect = nan: must be a finite number"),
        ({"disclosure_lift": NAN}, "SimConfig.disclosure_lift = nan: must be a finite number"),
        (
            {"volatility": _with("volatility", open=NAN)},
            "SimConfig.volatility['open'] = nan: must be a finite number",
        ),
    ],
)
def test_nan_in_the_simulator_is_refused_at_make_not_a_crash_at_step(sim, where):
    with invalid(where):
        make(sim=sim)


def test_study_sim_nan_is_the_clis_one_line_error(tmp_path, capsys):
    assert cli(["study", "--sim", "others_effect=nan", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dialogue-gym study: error: SimConfig.others_effect = nan: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


# -- defect 10: errors that named neither the field nor the file -----------------------------


@pytest.mark.parametrize(
    ("sim", "where"),
    [
        ({"drift": "0.1"}, "SimConfig.drift = '0.1': must be a finite number in [0, 1]"),
        ({"volatility": 5}, "SimConfig.volatility = 5: must be a mapping with the keys"),
        ({"volatility": {"open": 1.0}}, "SimConfig.volatility = {'open': 1.0}: lacks"),
        ({"resolvers": {**_DEFAULTS.resolvers, "validation": 4}}, "SimConfig.resolvers['valid"),
        ({"resolvers": {**_DEFAULTS.resolvers, "validation": (9,)}}, "['validation'][0] = 9"),
    ],
)
def test_a_wrong_type_in_sim_names_the_field_and_value(sim, where):
    with invalid(where):
        make(sim=sim)
    with invalid(where):
        SimConfig.coerce(sim)


def test_sim_itself_of_the_wrong_type_is_named():
    with invalid("sim = 5: must be a SimConfig"):
        SimConfig.coerce(5)
    with invalid("SimConfig.soothing_celing = 80: unknown SimConfig parameter"):
        SimConfig.coerce({"soothing_celing": 80})
    with invalid("SimConfig.soothing_celing = 80: unknown SimConfig parameter"):
        SimConfig().replace(soothing_celing=80)


def _card_text(age: str) -> str:
    data = card_to_dict(load_scenarios("test")[0])
    data["id"] = "huge-age"
    data["persona"]["age"] = "AGE"
    return yaml.safe_dump(data, sort_keys=False).replace("age: AGE", f"age: {age}")


def test_a_card_with_a_5000_digit_age_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "cards" / "huge.yaml"
    path.parent.mkdir()
    path.write_text(_card_text("9" * 5000), encoding="utf-8")
    for load in (lambda: load_card(path), lambda: load_scenarios(str(path.parent))):
        with pytest.raises(ScenarioError) as info:
            load()
        assert info.value.source == str(path)
        assert info.value.field == "persona.age"
        assert "5000 digits" in str(info.value) and len(str(info.value)) < 300


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_self_looping_symlink_in_a_folder_is_named(tmp_path):
    folder = tmp_path / "cards"
    folder.mkdir()
    (folder / "good.yaml").write_text(_card_text("30"), encoding="utf-8")
    loop = folder / "loop.yaml"
    os.symlink(loop, loop)
    with pytest.raises(ScenarioError) as info:
        load_scenarios(folder)
    assert info.value.source == str(loop), str(info.value)


def test_an_empty_set_of_cards_is_named_as_the_argument():
    with pytest.raises(
        ScenarioError, match=re.escape("scenarios=<list of 0 item(s)>: no scenario")
    ):
        make(scenarios=[])


def test_empty_scenarios_is_an_error_not_a_scan_of_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "stray.yaml").write_text(_card_text("30"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # a scan of the current folder would find a valid card
    for spec in ("", "  "):
        with pytest.raises(ScenarioError, match="scenarios="):
            load_scenarios(spec)
        with pytest.raises(ScenarioError, match="scenarios="):
            make(scenarios=spec)


@pytest.mark.parametrize("env_id", dialogue_gym.ENV_IDS)
@pytest.mark.parametrize(
    ("options", "where"),
    [
        ("card", "reset.options = 'card': must be a mapping"),
        (5, "reset.options = 5: must be a mapping"),
        (["card"], "reset.options = ['card']: must be a mapping"),
        ({"card": True}, "reset.options['card'] = True: must be a card id"),
        ({"card": 1.0}, "reset.options['card'] = 1.0: must be a card id"),
        ({"card": -1}, "reset.options['card'] = -1: must be a card id"),
        ({"card": "nope"}, "reset.options['card'] = 'nope': no card"),
        ({"crad": 1}, "reset.options['crad'] = 1: unknown reset option; valid: 'card'"),
    ],
)
def test_bad_reset_options_name_the_key_and_what_is_allowed(env_id, options, where):
    env = make(env_id)
    env.reset(seed=0)
    with invalid(where):
        env.reset(seed=0, options=options)
    env.reset(seed=0, options={"card": 1})  # still usable
    env.reset(seed=0, options={})


@pytest.mark.parametrize("actions", [5, np.int64(3), np.array(3), "ab", {"a": 0, "b": 1}, None])
def test_vector_step_wants_one_action_per_env(actions):
    envs = gym.make_vec("EmpathyDialogue-v0", num_envs=2, voice="template", scenarios="test")
    envs.reset(seed=0)
    with invalid("EmpathyDialogueVectorEnv.step.actions = ", "one per env"):
        envs.step(actions)
    envs.step([0, np.int64(1)])  # nothing was stepped: the vector env is still usable
    with invalid("EmpathyDialogueVectorEnv.reset.options = 'card': must be a mapping"):
        envs.reset(options="card")
    envs.close()


# -- defect 11: max_turns had no upper bound ---------------------------------------------------


@pytest.mark.parametrize("env_id", dialogue_gym.ENV_IDS)
@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"max_turns": 10**7}, "max_turns = 10000000: must be an integer in [1, 1000]"),
        ({"max_turns": 1001}, "max_turns = 1001: must be an integer in [1, 1000]"),
        ({"max_turns": True}, "max_turns = True: must be an integer in [1, 1000] (a bool is not"),
        ({"max_turns": 10.0}, "max_turns = 10.0: must be an integer"),
        ({"history_window": -1}, "history_window = -1: must be an integer in [0, 2001]"),
        ({"history_window": 1.5}, "history_window = 1.5: must be an integer in [0, 2001]"),
        ({"history_window": True}, "history_window = True: must be an integer"),
        ({"history_window": 10**9}, "history_window = 1000000000: must be an integer"),
        ({"render_mode": "depth_array"}, "render_mode = 'depth_array': must be one of"),
        ({"appraisal": "vibes"}, "appraisal = 'vibes': unknown appraisal; valid: 'rule', 'llm'"),
        ({"core": "vibes"}, "core = 'vibes': unknown appraisal; valid: 'rule', 'llm'"),
        ({"voice": None}, "voice = None: unknown user voice; valid: 'llm', 'template'"),
        ({"voice": {"nom": "llm"}}, "voice = {'nom': 'llm'}: unknown user voice; valid: "),
    ],
)
def test_env_arguments_out_of_range_are_named(env_id, kwargs, where):
    # The error names the id's env class (EmpathyDialogueEnv, EmpathyDialogueTextEnv, ...).
    owner = ENVS.entry(env_id).meta["env_class"].rpartition(":")[2] + "."
    with invalid(owner + where):
        make(env_id, **kwargs)


def test_the_largest_max_turns_works():
    env = make(max_turns=np.int64(1000), history_window=np.int32(2001))
    env.reset(seed=0)
    assert env.unwrapped.max_turns == 1000 and type(env.unwrapped.max_turns) is int


def test_text_env_arguments_are_checked_too():
    for bad in (True, 0, 2.5):
        with invalid(f"EmpathyDialogueTextEnv.max_length = {bad!r}: must be an integer"):
            make("EmpathyDialogueText-v0", max_length=bad)


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"num_envs": True}, "num_envs = True: must be an integer"),
        ({"num_envs": 0}, "num_envs = 0: must be an integer >= 1"),
        ({"num_envs": 2, "max_batch": 0}, "max_batch = 0: must be an integer >= 1 or None"),
    ],
)
def test_vector_env_arguments_are_named(kwargs, where):
    from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv

    with invalid("EmpathyDialogueVectorEnv." + where):
        EmpathyDialogueVectorEnv(voice="template", **kwargs)


# -- defect 12: out-of-range values accepted silently -----------------------------------------


@pytest.mark.parametrize(
    ("sim", "where"),
    [
        ({"noise": INF}, "SimConfig.noise = inf: must be a finite number in [0, 100]"),
        ({"noise": -0.5}, "SimConfig.noise = -0.5: must be a finite number in [0, 100]"),
        ({"max_change": INF}, "SimConfig.max_change = inf: must be a finite number in [0, 100]"),
        ({"max_change": -1.0}, "SimConfig.max_change = -1.0: must be a finite number in [0, 100]"),
        ({"max_change": True}, "SimConfig.max_change = True: must be a finite number in [0, 100]"),
        ({"success_threshold": INF}, "SimConfig.success_threshold = inf: must be a finite"),
        ({"success_threshold": 101}, "SimConfig.success_threshold = 101: must be a finite"),
        ({"leave_threshold": 80.0}, "SimConfig.leave_threshold = 80.0: must be below"),
        ({"soothing_ceiling": NAN}, "SimConfig.soothing_ceiling = nan: must be a finite"),
        ({"drift": 1.5}, "SimConfig.drift = 1.5: must be a finite number in [0, 1]"),
        (
            {"volatility": _with("volatility", passive=-1.0)},
            "SimConfig.volatility['passive'] = -1.0: must be a finite number in [0, 100]",
        ),
        (
            {"initial_trust": _with("initial_trust", open=7.0)},
            "SimConfig.initial_trust['open'] = 7.0: must be a finite number in [0, 1]",
        ),
        (
            {"resistance": _with("resistance", easy=5.0)},
            "SimConfig.resistance['easy'] = 5.0: must be a finite number in [0, 1)",
        ),
        (
            {"resistance": _with("resistance", hard=NAN)},
            "SimConfig.resistance['hard'] = nan: must be a finite number in [0, 1)",
        ),
        (
            {"resistance": _with("resistance", hard=1.0)},
            "SimConfig.resistance['hard'] = 1.0: must be a finite number in [0, 1)",
        ),
        ({"resistance": _with("resistance", extreme=0.5)}, "SimConfig.resistance['extreme']"),
    ],
)
def test_out_of_range_simulator_values_are_refused(sim, where):
    with invalid(where):
        SimConfig(**sim)
    with invalid(where):
        make(sim=sim)


@pytest.mark.parametrize(
    ("reward", "kwargs", "where"),
    [
        ("emotion_delta", {"scale": NAN}, "EmotionDeltaReward.scale = nan: must be a finite"),
        ("potential_emotion", {"scale": NAN}, "PotentialShapedEmotion.scale = nan: must be"),
        ("potential_emotion", {"gamma": NAN}, "PotentialShapedEmotion.gamma = nan: must be"),
        ("multi_turn", {"cost": NAN}, "MultiTurnValueReward.cost = nan: must be a finite"),
        ("multi_turn", {"cost": -0.1}, "MultiTurnValueReward.cost = -0.1: must be a finite"),
        ("multi_turn", {"progress_weight": INF}, "MultiTurnValueReward.progress_weight = inf"),
        ("multi_turn", {"horizon": 10**9}, "MultiTurnValueReward.horizon = 1000000000: must"),
        ("multi_turn", {"samples": True}, "MultiTurnValueReward.samples = True: must be an"),
        ("multi_turn", {"mode": "values"}, "MultiTurnValueReward.mode = 'values': must be one"),
        ("multi_turn", {"lookahead_voice": "no"}, "MultiTurnValueReward.lookahead_voice = 'no'"),
        ("multi_turn", {"seed": -1}, "MultiTurnValueReward.seed = -1: must be an integer >= 0"),
        ("multi_turn", {"rollout_policy": 3}, "MultiTurnValueReward.rollout_policy = 3: must"),
        ("next_turn", {"noise": NAN}, "NextTurnReward.noise = nan: must be a finite number"),
        ("next_turn", {"same_band": INF}, "NextTurnReward.same_band = inf: must be a finite"),
        ("next_turn", {"solved_emotion": NAN}, "NextTurnReward.solved_emotion = nan: must be"),
        ("next_turn", {"values": {"better": NAN}}, "NextTurnReward.values['better'] = nan"),
        ("next_turn", {"values": {"grand": 1.0}}, "NextTurnReward.values['grand'] = 1.0"),
        ("next_turn", {"samples": 0}, "NextTurnReward.samples = 0: must be an integer"),
        ("sparse", {"bonus": NAN}, "SparseBonus.bonus = nan: must be a finite number"),
        ("sparse", {"kind": "huge"}, "SparseBonus.kind = 'huge': must be one of"),
        ("final_emotion", {"leave_penalty": INF}, "SparseBonus.leave_penalty = inf: must be"),
        ("sparse", {"name": "a/b"}, "SparseBonus.name = 'a/b': must be"),
        ("composite", {"weights": {}}, "CompositeReward.weights = {}: must be a mapping"),
        ("composite", {"weights": {"sparse": True}}, "CompositeReward.weights['sparse'] = True"),
        ("composite", {"weights": {"sparse": NAN}}, "CompositeReward.weights['sparse'] = nan"),
    ],
)
def test_bad_reward_arguments_are_refused_at_make(reward, kwargs, where):
    with invalid(where):
        make(reward=reward, reward_kwargs=kwargs)


def test_composite_with_an_unknown_component_fails_at_construction():
    from dialogue_gym.rewards import REWARDS

    with invalid("CompositeReward.weights['bogus'] = 1.0: no reward component 'bogus'", "'sparse'"):
        make(reward="composite", reward_kwargs={"weights": {"sparse": 1.0, "bogus": 1.0}})
    with invalid("CompositeReward.weights['multi_turn/vibe'] = 2.0"):
        make(reward="composite", reward_kwargs={"weights": {"multi_turn/vibe": 2.0}})
    try:
        make(reward="composite", reward_kwargs={"weights": {"bogus": 1.0}})
    except ValueError as err:
        assert all(repr(name) in str(err) for name in REWARDS if name != "composite")
    # A component of a wrapper below, and a part of one, are fine.
    env = make(reward="composite", reward_kwargs={"weights": {"multi_turn/emotion": 1.0}})
    env.reset(seed=0)
    env.step(0)


# -- the validator itself ---------------------------------------------------------------------


def test_numpy_scalars_count_as_numbers_and_bools_never_do():
    config = SimConfig(noise=np.float64(2.0), max_change=np.int64(5), drift=np.float32(0.25))
    assert config.noise == 2.0 and config.max_change == 5
    for value in (True, np.bool_(True)):
        with invalid("SimConfig.noise = ", "(a bool is not a number)"):
            SimConfig(noise=value)


def test_huge_and_long_values_are_shown_short():
    with invalid("SimConfig.noise = <an int of 5001 digits>: must be a finite number"):
        SimConfig(noise=10**5000)
    with invalid("SimConfig.drift = 'xxx") as info:
        SimConfig(drift="x" * 10_000)
    assert len(str(info.value)) < 200
    with invalid("SimConfig.others_effect = 1e+300"):
        SimConfig(others_effect=1e300)


def test_the_error_pickles_and_keeps_its_parts():
    with invalid() as info:
        SimConfig(volatility=_with("volatility", open=-1.0))
    err = info.value
    assert str(err) == "SimConfig.volatility['open'] = -1.0: must be a finite number in [0, 100]"
    assert (err.owner, err.field, err.value) == ("SimConfig", "volatility['open']", -1.0)
    assert err.allowed == "must be a finite number in [0, 100]"
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is type(err) and str(again) == str(err) and again.field == err.field


def test_specs_describe_themselves():
    from dialogue_gym.core import validation as v

    assert v.number(0, 100).describe() == "a finite number in [0, 100]"
    assert v.number(0, 1, high_open=True).describe() == "a finite number in [0, 1)"
    assert v.number(0).describe() == "a finite number >= 0"
    assert v.number(finite=False).describe() == "a number (inf allowed, not NaN)"
    assert v.integer(1, optional=True).describe() == "an integer >= 1 or None"
    assert v.choice("a", None).describe() == "one of 'a', None"
    assert v.boolean().describe() == "True or False"
    v.check("x", "y", INF, v.number(0, finite=False))
    with invalid("x.y = nan"):
        v.check("x", "y", NAN, v.number(finite=False))


# -- every argument has a spec -------------------------------------------------------------------


def _interval(spec) -> str:
    """The interval a spec's numbers lie in, as the docstring writes it: ``"[0, 100]"``."""
    while spec.item is not None:
        spec = spec.item
    return spec.describe().rpartition(" in ")[2]


def test_every_simconfig_field_has_a_spec_its_default_meets_and_the_docstring_states():
    from dialogue_gym.core.config import SIM_SPECS
    from dialogue_gym.core.validation import Spec, check

    names = [f.name for f in dataclasses.fields(SimConfig)]
    assert list(SIM_SPECS) == names
    doc = inspect.getdoc(SimConfig)
    for name in names:
        assert isinstance(SIM_SPECS[name], Spec), name
        check("SimConfig", name, getattr(_DEFAULTS, name), SIM_SPECS[name])
        entry = re.search(rf"^    {name}: (.*?)(?=^    \w+:|^\S|\Z)", doc, re.M | re.S)
        assert entry and _interval(SIM_SPECS[name]) in " ".join(entry[1].split()), name


def _parameters(function) -> set[str]:
    return {
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.name not in ("self", "env") and p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_every_env_argument_has_a_spec_and_its_default_is_valid():
    from dialogue_gym.core.validation import check
    from dialogue_gym.envs.empathy import ENV_ARGUMENTS, EmpathyDialogueEnv
    from dialogue_gym.envs.text import TEXT_ENV_ARGUMENTS, EmpathyDialogueTextEnv
    from dialogue_gym.envs.vector import VECTOR_ENV_ARGUMENTS, EmpathyDialogueVectorEnv

    for cls, specs in (
        (EmpathyDialogueEnv, ENV_ARGUMENTS),
        (EmpathyDialogueTextEnv, TEXT_ENV_ARGUMENTS),
        (EmpathyDialogueVectorEnv, VECTOR_ENV_ARGUMENTS),
    ):
        assert _parameters(cls.__init__) == set(specs), cls.__name__
        for p in inspect.signature(cls.__init__).parameters.values():
            if p.name in specs and p.default is not inspect.Parameter.empty:
                check(cls.__name__, p.name, p.default, specs[p.name])


def test_every_registered_rewards_arguments_have_specs():
    from dialogue_gym.core.validation import check
    from dialogue_gym.rewards import REWARDS, ComponentRewardWrapper, CritiqueFeedback
    from dialogue_gym.rewards.base import iter_wrappers

    seen = set()
    for name in REWARDS:
        kwargs = {"weights": {"sparse": 1.0}} if name == "composite" else {}
        env = make(reward=name, reward_kwargs=kwargs)
        seen |= {type(w) for w in iter_wrappers(env) if isinstance(w, ComponentRewardWrapper)}
    seen.add(CritiqueFeedback)
    assert len(seen) >= 7
    for cls in seen:
        ours = [c for c in cls.__mro__ if c.__module__.startswith("dialogue_gym.rewards")]
        for owner in (c for c in ours if "__init__" in vars(c)):
            init = inspect.unwrap(vars(owner)["__init__"])
            specs = vars(owner).get("arguments")
            assert specs is not None and _parameters(init) == set(specs), owner.__name__
            for p in inspect.signature(init).parameters.values():
                if p.name in specs and p.default is not inspect.Parameter.empty:
                    check(owner.__name__, p.name, p.default, specs[p.name])


def test_defaults_are_unchanged():
    # The goldens hold the dynamics; this holds the documented defaults themselves.
    assert SimConfig.coerce(None) == _DEFAULTS == SimConfig.coerce({})
    assert (_DEFAULTS.success_threshold, _DEFAULTS.max_change, _DEFAULTS.noise) == (70.0, 10.0, 1.5)
    assert re.fullmatch(
        r"\{'easy': 0\.0, 'medium': 0\.2, 'hard': 0\.4\}", repr(_DEFAULTS.resistance)
    )


def test_gym_make_and_the_cli_pass_the_error_through_whole(capsys):
    # gym.make rewrites a TypeError from an env's constructor (appending every kwarg): the
    # error is a ValueError only, so it arrives as raised.
    with pytest.raises(ValueError) as info:
        make(max_turns=0)
    assert str(info.value) == "EmpathyDialogueEnv.max_turns = 0: must be an integer in [1, 1000]"
    assert cli(["episode", "--max-turns", "5000"]) == 2
    assert capsys.readouterr().err == (
        "dialogue-gym episode: error: EmpathyDialogueEnv.max_turns = 5000: must be an integer "
        "in [1, 1000]\n"
    )


def test_study_sim_values_go_through_the_same_validator(tmp_path, capsys):
    for sim, message in (
        ("drift=abc", "SimConfig.drift = 'abc': must be a finite number in [0, 1]"),
        ("noise=1e999", "SimConfig.noise = inf: must be a finite number in [0, 100]"),
        ("volatility=5", "SimConfig.volatility = 5.0: must be a mapping"),
    ):
        assert cli(["study", "--sim", sim, "--out", str(tmp_path)]) == 2
        assert f"dialogue-gym study: error: {message}" in capsys.readouterr().err


def test_a_refused_reset_leaves_the_env_as_it_was():
    env = make()
    env.reset(seed=0)
    env.step(0)
    sim = env.unwrapped
    before = (sim.np_random.bit_generator.state, sim.emotion, len(sim.messages), sim.card.id)
    for options in ("card", {"card": True}, {"crad": 0}):
        with pytest.raises(ValueError):
            env.reset(seed=123, options=options)
    assert (
        sim.np_random.bit_generator.state,
        sim.emotion,
        len(sim.messages),
        sim.card.id,
    ) == before
    env.step(1)  # the episode goes on


def test_a_folder_far_above_the_cards_fails_fast_naming_it(tmp_path):
    """Found by the fuzz suite's long run: scenarios="/" walked the whole filesystem."""
    from dialogue_gym.core.scenario import MAX_SCAN_DEPTH

    deep = tmp_path.joinpath(*[f"d{i}" for i in range(MAX_SCAN_DEPTH + 2)])
    deep.mkdir(parents=True)
    with pytest.raises(ScenarioError, match="nest deeper than"):
        gym.make("EmpathyDialogue-v0", voice="template", scenarios=str(tmp_path))


def test_a_huge_finite_reward_factor_is_refused():
    """Found by the fuzz suite's long run: scale=1.79e307 times an emotion change was inf."""
    with pytest.raises(dialogue_gym.InvalidArgument, match=r"scale = 1\.79e\+307"):
        gym.make(
            "EmpathyDialogue-v0",
            voice="template",
            reward="emotion_delta",
            reward_kwargs={"scale": 1.79e307},
        )
