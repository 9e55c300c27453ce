"""Scenario cards: the built-in set, the builder that makes it, and the loader's validation."""

from __future__ import annotations

import copy
import pickle
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialogue_gym.core.scenario import (
    SPLITS,
    ScenarioCard,
    ScenarioError,
    card_from_dict,
    card_to_dict,
    load_card,
    load_scenarios,
)
from dialogue_gym.core.vocabulary import (
    CHARACTER_TYPES,
    DIFFICULTIES,
    EMOTION_TYPES,
    NEEDS,
    PROBLEM_TYPES,
)
from dialogue_gym.envs import data_dir as envs_dir
from tools import scenario_builder  # the authoring tool (repository root is on sys.path)

SCENARIOS = envs_dir() / "scenarios"
#: ESConv's five most frequent problem types; the brief asks for at least four situations each.
BIG_FIVE = PROBLEM_TYPES[:5]


def _evidence(card: ScenarioCard, understanding: float = 1.0) -> Counter[str]:
    """Summed cue strength per need once understanding has reached ``understanding``."""
    total: Counter[str] = Counter()
    for cue in card.need_cues:
        if cue.reveal_at <= understanding:
            total[cue.need] += cue.strength
    return total


@pytest.fixture(scope="module")
def valid_dict() -> dict[str, Any]:
    """A valid card as parsed from its YAML file (ints stay ints, lists stay lists)."""
    path = sorted((SCENARIOS / "train").glob("*.yaml"))[0]
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# --- The built-in cards --------------------------------------------------------------------


def test_all_builtin_cards_load() -> None:
    cards = load_scenarios("all")
    train, test = load_scenarios("train"), load_scenarios("test")
    assert isinstance(cards, tuple)
    assert all(isinstance(card, ScenarioCard) for card in cards)
    assert len(cards) == len(train) + len(test)
    assert [card.id for card in cards] == sorted(card.id for card in cards)
    assert {card.split for card in train} == {"train"}
    assert {card.split for card in test} == {"test"}


def test_there_are_at_least_200_cards_split_two_to_one() -> None:
    train, test = load_scenarios("train"), load_scenarios("test")
    assert len(train) + len(test) >= 200
    assert len(train) == 2 * len(test)


def test_splits_share_no_situation() -> None:
    train = {card.situation_id for card in load_scenarios("train")}
    test = {card.situation_id for card in load_scenarios("test")}
    assert train and test
    assert not train & test


@pytest.mark.parametrize("split", SPLITS)
def test_every_need_problem_type_and_difficulty_in_each_split(split: str) -> None:
    cards = load_scenarios(split)
    assert {card.hidden_need for card in cards} == set(NEEDS)
    assert {card.problem_type for card in cards} == set(PROBLEM_TYPES)
    difficulties = Counter(card.difficulty for card in cards)
    assert set(difficulties) == set(DIFFICULTIES)
    # Balanced: about a third each.
    assert all(abs(n / len(cards) - 1 / 3) < 0.05 for n in difficulties.values())


@pytest.mark.parametrize("split", SPLITS)
def test_every_situation_has_one_card_per_need(split: str) -> None:
    by_situation: dict[str, list[str]] = {}
    for card in load_scenarios(split):
        by_situation.setdefault(card.situation_id, []).append(card.hidden_need)
    for needs in by_situation.values():
        assert sorted(needs) == sorted(NEEDS)


@pytest.mark.parametrize("split", SPLITS)
def test_personas_spread_evenly_and_fit_the_situation(split: str) -> None:
    cards = load_scenarios(split)
    uses = Counter(card.persona.name for card in cards)
    assert len(uses) >= 18
    assert max(uses.values()) - min(uses.values()) <= 1
    parts = scenario_builder.load_parts()
    situations = {situation.id: situation for situation in parts.situations}
    for card in cards:
        assert situations[card.situation_id].fits(card.persona), card.id


def test_one_card_per_file_named_after_its_id() -> None:
    files = sorted(SCENARIOS.rglob("*.yaml"))
    assert len(files) == len(load_scenarios("all"))
    for path in files:
        assert path.parent.parent == SCENARIOS, f"{path} is not in a split folder"
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert len(documents) == 1 and isinstance(documents[0], dict), path
        card = load_card(path)
        assert card.id == path.stem
        assert card.split == path.parent.name


def test_cards_have_no_unfilled_placeholders() -> None:
    for card in load_scenarios("all"):
        texts = [card.situation, card.topic, *(cue.text for cue in card.need_cues)]
        assert not any("{" in text or "}" in text for text in texts), card.id
        assert card.persona.name in card.situation


def test_initial_emotion_is_lower_for_harder_cards() -> None:
    cards = load_scenarios("all")
    assert all(25 <= card.initial_emotion <= 45 for card in cards)
    mean = {
        level: sum(c.initial_emotion for c in cards if c.difficulty == level)
        / sum(c.difficulty == level for c in cards)
        for level in DIFFICULTIES
    }
    assert mean["easy"] > mean["medium"] > mean["hard"]


def test_hidden_need_dominates_the_evidence_once_all_cues_are_revealed() -> None:
    for card in load_scenarios("all"):
        evidence = _evidence(card)
        hidden = evidence.pop(card.hidden_need)
        assert all(hidden > other for other in evidence.values()), card.id


def test_an_early_cue_can_mislead_but_two_true_cues_outweigh_it() -> None:
    for card in load_scenarios("all"):
        first = card.need_cues[0]
        assert first.need != card.hidden_need, card.id
        assert _evidence(card, first.reveal_at)[card.hidden_need] == 0
        early = _evidence(card, 0.45)
        assert early[card.hidden_need] > early[first.need], card.id


def test_red_herrings_vary() -> None:
    cards = load_scenarios("train")
    for need in NEEDS:
        decoys = Counter(c.need_cues[0].need for c in cards if c.hidden_need == need)
        assert len(decoys) == len(NEEDS) - 1


def test_cards_are_shared_immutable_and_pickle() -> None:
    first, second = load_scenarios("test"), load_scenarios("test")
    assert first == second
    assert first[0] is second[0]  # cached: no re-parse per env
    card = first[0]
    assert copy.deepcopy(card) is card
    assert pickle.loads(pickle.dumps(card)) == card
    with pytest.raises(AttributeError):
        card.id = "x"  # type: ignore[misc]


def test_card_to_dict_round_trips() -> None:
    for card in load_scenarios("test"):
        assert card_from_dict(card_to_dict(card)) == card


# --- The authored parts and the builder ----------------------------------------------------


def test_parts_cover_the_problem_types_and_split_by_situation() -> None:
    parts = scenario_builder.load_parts()
    assert len(parts.personas) >= 18
    assert {p.character_type for p in parts.personas} >= {"open", "negative", "passive", "avoidant"}
    assert min(p.age for p in parts.personas) <= 17 and max(p.age for p in parts.personas) >= 65
    situations = parts.situations
    assert len(situations) >= 36
    per_type = Counter(s.problem_type for s in situations)
    assert all(per_type[t] >= 2 for t in PROBLEM_TYPES)
    assert all(per_type[t] >= 4 for t in BIG_FIVE)
    test = [s for s in situations if s.split == "test"]
    assert 3 * len(test) == len(situations)
    assert {s.problem_type for s in test} == set(PROBLEM_TYPES)
    assert all(len(parts.needs[need].cues) >= 4 for need in NEEDS)


def test_builder_check_passes_on_the_committed_cards(capsys: pytest.CaptureFixture[str]) -> None:
    assert scenario_builder.main(["--check"]) == 0, capsys.readouterr().err


def test_builder_is_deterministic() -> None:
    parts = scenario_builder.load_parts()
    assert scenario_builder.build_files(parts) == scenario_builder.build_files(parts)


@pytest.mark.slow
def test_builder_writes_checks_and_prunes(tmp_path: Path) -> None:
    out = tmp_path / "scenarios"
    assert scenario_builder.main(["--out", str(out)]) == 0
    assert scenario_builder.main(["--out", str(out), "--check"]) == 0
    assert len(load_scenarios(out)) == len(load_scenarios("all"))

    edited = sorted((out / "test").glob("*.yaml"))[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    stale = out / "train" / "train-gone-be_heard.yaml"
    stale.write_text("id: gone\n", encoding="utf-8")
    assert scenario_builder.main(["--out", str(out), "--check"]) == 1

    assert scenario_builder.main(["--out", str(out)]) == 0
    assert not stale.exists()
    assert scenario_builder.main(["--out", str(out), "--check"]) == 0


def test_builder_reports_bad_parts_by_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parts = tmp_path / "parts"
    shutil.copytree(envs_dir() / "parts", parts)
    situations = parts / "situations.yaml"
    text = situations.read_text(encoding="utf-8")
    typo = text.replace("{name} has felt flat", "{nmae} has felt flat")
    assert typo != text
    situations.write_text(typo, encoding="utf-8")
    status = scenario_builder.main(["--parts", str(parts), "--out", str(tmp_path / "out")])
    assert status == 2
    err = capsys.readouterr().err
    assert "situations.yaml" in err and "backstory" in err and "{nmae}" in err


# --- Loading: specs, caching, duplicates ---------------------------------------------------


def _copy_cards(tmp_path: Path, count: int) -> list[Path]:
    sources = sorted((SCENARIOS / "test").glob("*.yaml"))[:count]
    for source in sources:
        shutil.copy(source, tmp_path / source.name)
    return [tmp_path / source.name for source in sources]


def test_load_from_directory_file_and_sequence(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    paths = _copy_cards(nested, 3)
    assert len(load_scenarios(tmp_path)) == 3  # recursive
    assert load_scenarios(paths[0])[0].id == paths[0].stem
    card = load_scenarios("train")[0]
    mixed = load_scenarios([paths[1], card, str(paths[2])])
    assert [c.id for c in mixed] == sorted([paths[1].stem, card.id, paths[2].stem])


def test_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    (path,) = _copy_cards(tmp_path, 1)
    shutil.copy(path, tmp_path / "copy.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(tmp_path)
    assert "copy.yaml" in str(info.value) and path.name in str(info.value)
    assert "duplicate" in str(info.value)


def test_empty_set_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="no scenario cards found"):
        load_scenarios(tmp_path)
    with pytest.raises(ScenarioError, match="no scenario cards found"):
        load_scenarios([])


def test_unknown_set_name_lists_the_valid_names() -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenarios("trian")
    for name in ("'train'", "'test'", "'all'"):
        assert name in str(info.value)


@pytest.mark.parametrize("spec", ["missing/cards", "nowhere.yaml"])
def test_missing_paths_are_named(spec: str) -> None:
    with pytest.raises(ScenarioError, match="no such file or directory"):
        load_scenarios(spec)


def test_unsupported_spec_types_are_type_errors() -> None:
    with pytest.raises(TypeError):
        load_scenarios(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        load_scenarios([42])


def test_an_edited_card_is_reloaded(tmp_path: Path) -> None:
    (path,) = _copy_cards(tmp_path, 1)
    before = load_scenarios(tmp_path)[0]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["initial_emotion"] = 12.5
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    after = load_scenarios(tmp_path)[0]
    assert before.initial_emotion != 12.5 and after.initial_emotion == 12.5


def test_scenario_error_pickles_with_its_parts() -> None:
    error = ScenarioError("bad.yaml", "must be a string", "persona.name")
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) == "bad.yaml: field 'persona.name': must be a string"
    assert (clone.source, clone.field, clone.reason) == (
        "bad.yaml",
        "persona.name",
        "must be a string",
    )


# --- Validation: every corruption names the file and the field -----------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation that sets a dotted field path (``need_cues.1.reveal_at``) to ``value``."""

    def mutate(card: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = card
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(card: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = card
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[int(last) if last.isdigit() else last]

    return mutate


def _no_hidden_cue(card: dict[str, Any]) -> None:
    other = next(need for need in NEEDS if need != card["hidden_need"])
    for cue in card["need_cues"]:
        cue["need"] = other


CORRUPTIONS: list[tuple[str, Mutation, str]] = [
    ("missing id", _drop("id"), "id"),
    ("missing hidden need", _drop("hidden_need"), "hidden_need"),
    ("missing persona age", _drop("persona.age"), "persona.age"),
    ("missing fact answer", _drop("facts.0.answer"), "facts[0].answer"),
    ("unknown field", _set("mood", "grumpy"), "mood"),
    ("unknown persona field", _set("persona.hobbies", ["chess"]), "persona.hobbies"),
    ("unknown cue field", _set("need_cues.1.weight", 2), "need_cues[1].weight"),
    ("id not a string", _set("id", 5), "id"),
    ("persona not a mapping", _set("persona", "Bob"), "persona"),
    ("traits not a list", _set("persona.traits", "kind"), "persona.traits"),
    ("empty trait", _set("persona.traits.1", ""), "persona.traits[1]"),
    ("age is a bool", _set("persona.age", True), "persona.age"),
    ("age is fractional", _set("persona.age", 17.5), "persona.age"),
    ("emotion above 100", _set("initial_emotion", 101), "initial_emotion"),
    ("emotion negative", _set("initial_emotion", -1), "initial_emotion"),
    ("emotion is text", _set("initial_emotion", "high"), "initial_emotion"),
    ("emotion is NaN", _set("initial_emotion", float("nan")), "initial_emotion"),
    ("reveal_at is text", _set("need_cues.1.reveal_at", "high"), "need_cues[1].reveal_at"),
    ("reveal_at above 1", _set("need_cues.0.reveal_at", 1.5), "need_cues[0].reveal_at"),
    ("strength zero", _set("need_cues.2.strength", 0), "need_cues[2].strength"),
    ("strength infinite", _set("need_cues.2.strength", float("inf")), "need_cues[2].strength"),
    ("unknown hidden need", _set("hidden_need", "money"), "hidden_need"),
    ("unknown cue need", _set("need_cues.2.need", "hugs"), "need_cues[2].need"),
    ("unknown problem type", _set("problem_type", "taxes"), "problem_type"),
    ("unknown emotion type", _set("emotion_type", "joy"), "emotion_type"),
    ("unknown difficulty", _set("difficulty", "extreme"), "difficulty"),
    ("unknown character type", _set("persona.character_type", "grumpy"), "persona.character_type"),
    ("unknown split", _set("split", "validation"), "split"),
    ("blank topic", _set("topic", "   "), "topic"),
    ("no facts", _set("facts", []), "facts"),
    ("facts not a list", _set("facts", "none"), "facts"),
    ("fact not a mapping", _set("facts.1", "Why?"), "facts[1]"),
    ("no cues", _set("need_cues", []), "need_cues"),
    ("no cue for the hidden need", _no_hidden_cue, "need_cues"),
]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [pytest.param(mutate, field, id=name) for name, mutate, field in CORRUPTIONS],
)
def test_bad_card_names_file_and_field(
    tmp_path: Path, valid_dict: dict[str, Any], mutate: Mutation, field: str
) -> None:
    card = copy.deepcopy(valid_dict)
    mutate(card)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_card(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert f"field '{field}'" in message, message
    assert info.value.field == field
    # The same data in memory fails the same way.
    with pytest.raises(ScenarioError, match=f"^<dict>: field '{re.escape(field)}'"):
        card_from_dict(card)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("id: [unclosed\nsplit: train\n", "invalid YAML", id="syntax error"),
        pytest.param("id: a\n  split: : b\n", "invalid YAML", id="bad indentation"),
        pytest.param("", "empty", id="empty file"),
        pytest.param("# only a comment\n", "empty", id="only comments"),
        pytest.param("- a\n- b\n", "must be a mapping", id="top-level list"),
        pytest.param("just a string\n", "must be a mapping", id="top-level scalar"),
        pytest.param("id: a\n---\nid: b\n", "invalid YAML", id="two documents"),
    ],
)
def test_bad_file_names_the_file(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=reason) as info:
        load_card(path)
    assert str(info.value).startswith(str(path))


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="missing.yaml: cannot read file"):
        load_card(tmp_path / "missing.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes("id: café\n".encode("latin-1"))
    with pytest.raises(ScenarioError, match="latin1.yaml: not UTF-8"):
        load_card(path)


def test_huge_numbers_are_reported_not_crashed_on(valid_dict: dict[str, Any]) -> None:
    card = copy.deepcopy(valid_dict)
    card["initial_emotion"] = 10**5000  # too long even for str()
    with pytest.raises(ScenarioError, match="'initial_emotion': must be a number in"):
        card_from_dict(card)


def test_misspelt_field_is_reported_as_missing_and_unknown(valid_dict: dict[str, Any]) -> None:
    card = copy.deepcopy(valid_dict)
    card["hidden_ned"] = card.pop("hidden_need")
    with pytest.raises(ScenarioError, match="'hidden_need': missing required field.*'hidden_ned'"):
        card_from_dict(card)


# --- Fuzzing -------------------------------------------------------------------------------

_WORDS = [*NEEDS, *PROBLEM_TYPES, *DIFFICULTIES, *CHARACTER_TYPES, *EMOTION_TYPES, *SPLITS]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(_WORDS)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Values of the same type as ``value`` (vocabulary words for strings, often)."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, str):
        return st.text(min_size=1, max_size=20) | st.sampled_from(_WORDS)
    if isinstance(value, (int, float)):
        return st.integers(-5, 130) | st.floats(-1.0, 101.0)
    return _VALUES


def _slots(node: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a nested dict/list structure, parents before children."""
    if isinstance(node, dict):
        for key in list(node):
            found.append((node, key))
            _slots(node[key], found)
    elif isinstance(node, list):
        for index in range(len(node)):
            found.append((node, index))
            _slots(node[index], found)
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_cards_give_a_card_or_a_scenario_error(
    data: st.DataObject, valid_dict: dict[str, Any]
) -> None:
    card: Any = copy.deepcopy(valid_dict)
    # Hypothesis' own Random picks the slots: sampled_from would favour the first field.
    rnd = data.draw(st.randoms(use_true_random=False))
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        slots = _slots(card, [])
        action = rnd.choice(["tweak"] * 3 + ["replace"] * 3 + ["drop"] * 2 + ["add"] + ["whole"])
        if action == "whole" or not slots:
            card = data.draw(_VALUES, label="whole card")
            continue
        container, key = rnd.choice(slots)
        if action == "tweak":
            # Same type, new value: keeps many cards valid, so the success path is fuzzed too.
            container[key] = data.draw(_like(container[key]))
        elif action == "drop":
            del container[key]
        elif action == "replace":
            container[key] = data.draw(_VALUES)
        elif isinstance(container, dict):
            container[data.draw(st.text(max_size=8))] = data.draw(_VALUES)
        else:
            container.append(data.draw(_VALUES))
    try:
        result = card_from_dict(card, source="fuzz.yaml")
    except ScenarioError as error:
        assert str(error).startswith("fuzz.yaml: ")
    else:
        assert isinstance(result, ScenarioCard)
        assert any(cue.need == result.hidden_need for cue in result.need_cues)
        assert 0 <= result.initial_emotion <= 100
        hash(result)  # every field is immutable


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_files_give_a_card_or_a_scenario_error(
    text: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_card(path)
    except ScenarioError as error:
        assert str(path) in str(error)
