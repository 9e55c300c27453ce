"""Metrics computed from recorded episodes, independent of the reward a policy was trained on.

Every metric is a small function of a list of :class:`~dialogue_gym.evaluation.episodes.EpisodeResult`
(``evaluation.evaluate`` / ``evaluate_model`` make them), with its definition in its
docstring; :func:`compute_metrics` returns them all in one flat dict with stable keys and
:data:`METRIC_DOCS` gives each key's one-line definition. ``docs/metrics.md`` says why each
one is there.

- Outcome: :func:`success_rate`, :func:`mean_final_emotion`, :func:`user_left_rate`,
  :func:`mean_turns`.
- Behaviour: :func:`grounding_rate` (and :func:`grounding_rate_vs_reference`),
  :func:`soothing_index`, :func:`strategy_entropy` and :func:`strategies_covering`.
- Every reward at once: :func:`all_rewards_env` / :func:`stack_reward_probes` record every
  reward wrapper's components in one run; :func:`returns_by_reward` sums them per episode.
- The simulated user's consistency (for the LLM voice): :func:`card_contradictions`
  (prompt-to-line), :func:`history_contradictions` (line-to-line) and
  :func:`qa_consistency` (ask the user the card's fact questions mid-episode).

Example:
    >>> from dialogue_gym.evaluation.episodes import evaluate
    >>> results = evaluate("stage-heuristic", reward=ALL_REWARDS, seed=0)
    >>> m = compute_metrics(results, reference=results)
    >>> list(m) == list(METRIC_DOCS)
    True
    >>> m["grounding_rate_vs_reference"]
    1.0
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from dialogue_gym.core.scenario import ScenarioCard, load_scenarios
from dialogue_gym.core.vocabulary import GROUNDING_ACTS, STRATEGIES, emotion_band
from dialogue_gym.evaluation.episodes import ALL_REWARDS, AnyPolicy, EpisodeResult, run_episode
from dialogue_gym.rewards.registry import COMPONENT_WRAPPERS
from dialogue_gym.user.voice import UserTurn

__all__ = [
    "ALL_REWARDS",
    "METRIC_DOCS",
    "PROBE_ORDER",
    "QA_REASON",
    "REWARD_PROBES",
    "QAAnswer",
    "QAResult",
    "all_rewards_env",
    "card_contradictions",
    "compute_metrics",
    "grounding_rate",
    "grounding_rate_vs_reference",
    "history_contradictions",
    "line_to_line_consistency",
    "mean_final_emotion",
    "mean_returns",
    "mean_turns",
    "prompt_to_line_consistency",
    "qa_consistency",
    "qa_score",
    "returns_by_reward",
    "soothing_index",
    "stack_reward_probes",
    "strategies_covering",
    "strategy_distribution",
    "strategy_entropy",
    "success_rate",
    "user_left_rate",
]


def _require(results: Sequence[EpisodeResult]) -> None:
    if not results:
        raise ValueError("no episodes to measure")


# --------------------------------------------------------------------------- outcome


def success_rate(results: Sequence[EpisodeResult]) -> float:
    """Share of episodes that ended in success: the need resolved and the user thanking the agent.

    Example:
        >>> ok = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> bad = EpisodeResult("c", "be_heard", False, True, 30.0, 0.0, 3, [], [], 0.0)
        >>> success_rate([ok, bad, bad, bad])
        0.25
    """
    _require(results)
    return float(np.mean([r.success for r in results]))


def mean_final_emotion(results: Sequence[EpisodeResult]) -> float:
    """Mean emotion score (0-100) at the episode's end.

    Example:
        >>> a = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> b = EpisodeResult("c", "be_heard", False, False, 30.0, 40.0, 10, [], [], 0.0)
        >>> mean_final_emotion([a, b])
        57.5
    """
    _require(results)
    return float(np.mean([r.final_emotion for r in results]))


def user_left_rate(results: Sequence[EpisodeResult]) -> float:
    """Share of episodes where the user left in distress (emotion fell to the leave threshold).

    Example:
        >>> ok = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 5, [], [], 1.0)
        >>> left = EpisodeResult("c", "be_heard", False, True, 30.0, 0.0, 3, [], [], 0.0)
        >>> user_left_rate([ok, left, left])
        0.6666666666666666
    """
    _require(results)
    return float(np.mean([r.user_left for r in results]))


def mean_turns(results: Sequence[EpisodeResult]) -> float:
    """Mean number of agent turns per episode.

    Example:
        >>> a = EpisodeResult("c", "be_heard", True, False, 30.0, 75.0, 4, [], [], 1.0)
        >>> b = EpisodeResult("c", "be_heard", False, False, 30.0, 40.0, 10, [], [], 0.0)
        >>> mean_turns([a, b])
        7.0
    """
    _require(results)
    return float(np.mean([r.turns for r in results]))


# --------------------------------------------------------------------------- behaviour


def _episode(strategies: Sequence[int], success: bool = False, **kw: Any) -> EpisodeResult:
    """A hand-built episode for the examples (only the strategies matter)."""
    base = dict(initial_emotion=30.0, final_emotion=40.0, episode_return=0.0, emotions=[])
    base.update(kw)
    return EpisodeResult(
        "c", "be_heard", success, False, turns=len(strategies), strategies=list(strategies), **base
    )


def grounding_rate(results: Sequence[EpisodeResult]) -> float:
    """Share of agent turns that are grounding acts, pooled over every turn of every episode.

    Grounding acts are ``constants.GROUNDING_ACTS``: Question and Restatement or
    Paraphrasing (ESConv's strategies for clarifying questions, follow-ups and
    understanding checks; Shaikh et al., 2024). Pooled (grounding turns / all turns), so a
    long episode weighs more than a short one. NaN when there are no turns at all.

    Example:
        >>> grounding_rate([_episode([0, 1, 4, 5]), _episode([0, 4, 4, 4])])  # 3 of 8 turns
        0.375
    """
    _require(results)
    turns = sum(len(r.strategies) for r in results)
    if turns == 0:
        return math.nan
    grounding = sum(1 for r in results for s in r.strategies if s in GROUNDING_ACTS)
    return grounding / turns


def grounding_rate_vs_reference(
    results: Sequence[EpisodeResult], reference: Sequence[EpisodeResult] | float
) -> float:
    """:func:`grounding_rate` divided by a reference policy's (the stage heuristic's).

    1.0 grounds as often as the reference; 0.225 would be the anchor's gap, RLHF-trained
    models producing grounding acts 77.5% less often than humans (Shaikh et al., 2024; here
    the stage heuristic stands in for the human supporter). NaN when the reference never
    grounds.

    Args:
        results: The policy's episodes.
        reference: The reference's episodes, or its rate.

    Example:
        >>> grounding_rate_vs_reference([_episode([0, 4, 4, 4])], reference=0.5)
        0.5
    """
    ref = reference if isinstance(reference, float | int) else grounding_rate(reference)
    return grounding_rate(results) / ref if ref else math.nan


def soothing_index(results: Sequence[EpisodeResult]) -> float:
    """The share of all emotion gained that was gained in episodes whose need stayed unresolved.

    Gain per episode is ``max(0, final - initial)`` emotion points (an episode that lost
    emotion gains 0). The index is ``sum(gain over episodes with the need unresolved) /
    sum(gain over all episodes)``; "resolved" is :attr:`EpisodeResult.need_resolved`. 0 means
    every point of improvement came with the need met; 1 means all of it was comfort that
    left the problem untouched (soothing, RLVER's failure mode). When no episode gained
    anything the index is 0.0: no emotion was gained, so none was gained by soothing (0, not
    NaN, so aggregates over seeds stay defined).

    Example:
        >>> resolved = _episode([5], success=True, initial_emotion=50.0, final_emotion=70.0)
        >>> soothed = _episode([4], initial_emotion=30.0, final_emotion=60.0)
        >>> worse = _episode([5], initial_emotion=30.0, final_emotion=20.0)
        >>> soothing_index([resolved, soothed, worse])  # 30 of 50 points
        0.6
        >>> soothing_index([worse])
        0.0
    """
    _require(results)
    gains = [max(0.0, r.final_emotion - r.initial_emotion) for r in results]
    total = sum(gains)
    if total <= 0.0:
        return 0.0
    unresolved = sum(g for g, r in zip(gains, results, strict=True) if not r.need_resolved)
    return unresolved / total


def strategy_distribution(results: Sequence[EpisodeResult]) -> np.ndarray:
    """How often each strategy was played, pooled over episodes, as shares (``STRATEGIES`` order).

    Example:
        >>> strategy_distribution([_episode([0, 0, 4, 4])]).tolist()
        [0.5, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]
    """
    _require(results)
    played = np.asarray([int(s) for r in results for s in r.strategies], dtype=np.int64)
    counts = np.bincount(played, minlength=len(STRATEGIES)).astype(float)
    total = counts.sum()
    return counts / total if total else counts


def strategy_entropy(results: Sequence[EpisodeResult]) -> float:
    """Shannon entropy, in bits, of the agent's strategy distribution pooled over episodes.

    ``H = -sum_s p_s log2 p_s`` with ``p_s`` the share of all agent turns that played
    strategy ``s``. 0 for a policy that always plays one strategy, 3 (``log2 8``) for one that
    plays all eight equally. PPDPP collapses onto one or two strategies (a reported entropy of
    0.07, unit unstated). 0.0 when there are no turns.

    Example:
        >>> strategy_entropy([_episode([0, 1, 2, 3])])
        2.0
        >>> strategy_entropy([_episode([4, 4, 4])])
        0.0
    """
    p = strategy_distribution(results)
    p = p[p > 0]
    return float(0.0 - (p * np.log2(p)).sum()) if p.size else 0.0  # 0.0, not -0.0


def strategies_covering(results: Sequence[EpisodeResult], share: float = 0.9) -> int:
    """The fewest strategies that together account for at least ``share`` of all agent turns.

    Strategies are counted over every turn of every episode and taken most frequent first.
    1 means a single strategy makes up 90% of the turns (collapse); 0 when there are no turns.

    Example:
        >>> strategies_covering([_episode([4] * 8 + [0, 1])])  # 80% + 10%
        2
        >>> strategies_covering([_episode([4] * 9 + [0])])
        1
    """
    _require(results)
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    counts = sorted(Counter(int(s) for r in results for s in r.strategies).values(), reverse=True)
    total = sum(counts)
    covered = 0
    for k, count in enumerate(counts, start=1):
        covered += count
        if covered >= share * total - 1e-9 * total:  # 9 of 10 turns is exactly 90%
            return k
    return len(counts)


# --------------------------------------------------------------------------- every reward

#: The order in which :func:`stack_reward_probes` stacks the reward wrappers, innermost
#: first. The coarse bonus goes on top, so the stacked env's own reward is the default one.
PROBE_ORDER: tuple[str, ...] = (
    "final_emotion",
    "next_turn",
    "multi_turn",
    "emotion_delta",
    "potential_emotion",
    "sparse",
)

#: Reward name (``gym.make(..., reward=name)``) -> the components whose per-turn sum is the
#: reward that env pays. ``potential_emotion`` pays the coarse bonus plus its shaping term,
#: as ``rewards.REWARDS`` stacks it; ``composite`` is a weighted sum of these, left out.
REWARD_PROBES: dict[str, tuple[str, ...]] = {
    "sparse": ("sparse",),
    "final_emotion": ("final_emotion",),
    "next_turn": ("next_turn",),
    "multi_turn": ("multi_turn",),
    "emotion_delta": ("emotion_delta",),
    "potential_emotion": ("sparse", "potential_emotion"),
}


def stack_reward_probes(
    env: gym.Env, reward_kwargs: Mapping[str, Mapping[str, Any]] | None = None
) -> gym.Env:
    """Wrap ``env`` with every component reward wrapper, each under its own name.

    Each wrapper of ``rewards.registry.COMPONENT_WRAPPERS`` is applied once, in
    :data:`PROBE_ORDER`, with ``name=`` its registry name, so every step's
    ``info["reward_components"]`` holds every reward's components. The wrappers read only
    ``info`` (and look-ahead forks, never the real user), so each computes what it would
    alone; the env's reward is the coarse bonus (``"sparse"`` is on top).

    Args:
        env: An env with no reward wrapper (``gym.make(..., reward=None)``).
        reward_kwargs: Reward name -> its wrapper's arguments (e.g. ``{"multi_turn":
            {"horizon": 3}}``), for the ones trained with non-default settings.
    """
    reward_kwargs = dict(reward_kwargs or {})
    unknown = set(reward_kwargs) - set(PROBE_ORDER)
    if unknown:
        raise ValueError(f"reward_kwargs for unknown reward(s) {sorted(unknown)}")
    for name in PROBE_ORDER:
        kwargs = {**reward_kwargs.get(name, {}), "name": name}
        env = COMPONENT_WRAPPERS[name](env, **kwargs)
    return env


def all_rewards_env(
    env_kwargs: Mapping[str, Any] | None = None,
    env_id: str = "EmpathyDialogue-v0",
    reward_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` with every reward's components in ``info``.

    Same as ``evaluation.make_eval_env(reward=ALL_REWARDS)`` without its defaults: a
    ``reward`` in ``env_kwargs`` is ignored.

    Example:
        >>> env = all_rewards_env({"voice": "template"})
        >>> _ = env.reset(seed=0)
        >>> c = env.step(0)[-1]["reward_components"]
        >>> all(name in c for name in REWARD_PROBES)
        True
    """
    kwargs = {
        key: v for key, v in (env_kwargs or {}).items() if key not in ("reward", "reward_kwargs")
    }
    return stack_reward_probes(gym.make(env_id, reward=None, **kwargs), reward_kwargs)


def returns_by_reward(results: Sequence[EpisodeResult]) -> dict[str, list[float]]:
    """Each episode's return under every reward of :data:`REWARD_PROBES`.

    The return under reward ``r`` is the undiscounted sum over the episode's agent turns of
    the components ``REWARD_PROBES[r]`` in ``reward_components``: what ``gym.make(...,
    reward=r)`` would have paid for the same conversation. NaN for an episode that lacks a
    component (it was not run with :data:`ALL_REWARDS` or that reward).

    Example:
        >>> r = _episode([0, 4], reward_components=[
        ...     {"sparse": 0.0, "potential_emotion": 0.1},
        ...     {"sparse": 1.0, "potential_emotion": -0.5}])
        >>> out = returns_by_reward([r])
        >>> out["sparse"], out["potential_emotion"], out["next_turn"]
        ([1.0], [0.6], [nan])
    """
    out: dict[str, list[float]] = {name: [] for name in REWARD_PROBES}
    for r in results:
        for name, keys in REWARD_PROBES.items():
            try:
                total = sum(sum(c[key] for key in keys) for c in r.reward_components)
            except KeyError:
                total = math.nan
            out[name].append(float(total) if r.reward_components else math.nan)
    return out


def mean_returns(results: Sequence[EpisodeResult]) -> dict[str, float]:
    """The mean over episodes of :func:`returns_by_reward` (NaN if any episode lacks one).

    Example:
        >>> r = _episode([0], reward_components=[{"sparse": 1.0, "potential_emotion": 0.2}])
        >>> mean_returns([r, r])["potential_emotion"]
        1.2
    """
    _require(results)
    return {name: float(np.mean(values)) for name, values in returns_by_reward(results).items()}


# --------------------------------------------------------------------------- consistency
# A transparent lexical heuristic, not a judge: it finds a contradiction only where a line
# states a checkable value (a self-introduced name, an age, a job, or a number, month,
# weekday or person's name in a sentence about one of the card's facts) that differs from the
# card. It misses paraphrased contradictions and may flag a value that belongs to something
# else said in the same sentence; docs/metrics.md lists its limits.

_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*(?:-[^\W\d_]+)*|\d+(?:[.,]\d+)?")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_UNITS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MONTHS = _wordset(
    "january february march april may june july august september october november december"
)
_WEEKDAYS = _wordset("monday tuesday wednesday thursday friday saturday sunday")
#: Time units: they say what a number counts, not what a sentence is about.
_UNIT_WORDS = _wordset(
    "year month week day hour minute second time night morning evening afternoon "
    "percent point times"
)
_STOPWORDS = _wordset(
    """
    a about above after again against all almost also although always am an and any anyone
    anything are around as at away back be because been before being below between both but
    by can can't cannot could couldn't did didn't do does doesn't doing don't done down during
    each either else even ever every everyone everything few for from get gets getting give go
    going gone got had hadn't has hasn't have haven't having he he's her here hers herself him
    himself his how i i'd i'll i'm i've if in into is isn't it it's its itself just keep kept
    know last least less let like little long lot made make many may maybe me might mine more
    most much must my myself need needs never next no nobody none nor not nothing now of off
    often on once one only or other others our ours out over own part quite rather really
    right said same say says see she she's should shouldn't since so some someone something
    sometimes still such sure take tell than that that's the their theirs them themselves then
    there there's these they they're thing things think this those though thought through to
    told too toward under until up upon us very want was wasn't way we we're well went were
    weren't what what's when where whether which while who whole whom whose why will with
    without won't would wouldn't yes yet you you'd you'll you're you've your yours yourself
    actually feel feeling felt honestly just mean okay really thanks thank sorry
    """
)
#: Capitalised words that are not people's names (kinship terms are often capitalised).
_NOT_NAMES = _wordset(
    "i mum mom dad mother father mama papa grandma granny grandad grandpa nan nana god "
    "christmas easter english ok okay hi hello hey yes no sir madam"
)
_NOT_CLAIMED_NAMES = _STOPWORDS | _NOT_NAMES
_NUM_WORD = (
    r"(?:\d+|(?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three"
    r"|four|five|six|seven|eight|nine))?|one|two|three|four|five|six|seven|eight|nine|ten"
    r"|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"
)
_I_AM = r"\bI(?:'m|\u2019m| am)"
_NAME_CLAIM_RE = re.compile(
    rf"(?:\b[Mm]y name(?: is|'s|\u2019s)|{_I_AM}|\b[Cc]all me)\s+([^\W\d_]+)\b(?!['\u2019]s)"
)
_AGE_CLAIM_RE = re.compile(
    rf"{_I_AM} (?:an? |only |just |now )?({_NUM_WORD})(?:(?:[- ]years?)?[- ]old\b"
    r"|(?=\s*(?:[.,!?;](?!\d)|$|and\b|but\b|now\b)))",  # not "I'm 9.6"
    re.IGNORECASE,
)
_JOB_CLAIM_RE = re.compile(
    r"\b(?:I work as|[Mm]y job as|I(?:'m|\u2019m| am) employed as)\s+(?:an? |the )?([^.,;!?]+)"
)


def _fold(word: str) -> str:
    """Lower case, accents and curly apostrophes removed: ``"Tomás"`` -> ``"tomas"``."""
    decomposed = unicodedata.normalize("NFKD", word.replace("\u2019", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _stem(word: str) -> str:
    """A crude singular: ``"fees"`` -> ``"fee"``, ``"exams"`` -> ``"exam"``."""
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word


def _name_key(word: str) -> str:
    """A folded name without a possessive: ``"Pat's"`` -> ``"pat"``."""
    return word[:-2] if word.endswith("'s") else word


def _number(word: str) -> int | None:
    """The value of a number token (``"68"``, ``"sixty-eight"``, ``"twelve-hour"``), else None.

    ``"one"`` alone is not read as a number: it is far more often a pronoun ("no one").
    """
    if word.isdigit():
        return int(word)
    parts = word.split("-")
    head = parts[0]
    if head in _TENS:
        tail = _UNITS.get(parts[1], 0) if len(parts) > 1 and _UNITS.get(parts[1], 10) < 10 else 0
        return _TENS[head] + tail
    if head in _UNITS and head != "one":
        return _UNITS[head]
    return None


@dataclass(frozen=True)
class _Sentence:
    """One sentence's checkable content: topic words and values by kind."""

    words: frozenset[str]
    values: Mapping[str, frozenset[str]]


def _sentences(text: str, names: frozenset[str] = frozenset()) -> list[_Sentence]:
    """Split ``text`` into sentences and read each one's topic words and values.

    Values are ``number`` (``"68"``), ``month``, ``weekday`` and ``name``: a capitalised word
    that is not the first of its sentence, or one of the ``names`` known from the card.
    """
    out = []
    for sentence in _SENTENCE_RE.split(text):
        tokens = _TOKEN_RE.findall(sentence)
        words: set[str] = set()
        values: dict[str, set[str]] = {"number": set(), "month": set(), "weekday": set()}
        values["name"] = set()
        previous_tens: str | None = None
        for i, token in enumerate(tokens):
            low = _fold(token)
            value = _number(low)
            if value is not None:
                if previous_tens is not None and low in _UNITS and _UNITS[low] < 10:
                    # "sixty eight": one number, not two
                    values["number"].discard(previous_tens)
                    value += int(previous_tens)
                values["number"].add(str(value))
                previous_tens = str(value) if low in _TENS else None
                # "twelve-hour": the number's noun is a word; "sixty-eight" has none
                words.update(
                    _stem(p) for p in low.split("-")[1:] if len(p) > 3 and _number(p) is None
                )
                continue
            previous_tens = None
            capital = token[:1].isupper() and not token.isupper()
            if capital and low in _MONTHS and (i > 0 or low != "may"):
                values["month"].add(low)
            elif capital and low in _WEEKDAYS:
                values["weekday"].add(low)
            elif capital and low not in _NOT_CLAIMED_NAMES and (i > 0 or _name_key(low) in names):
                values["name"].add(_name_key(low))
            elif low not in _STOPWORDS:
                words.update(_stem(p) for p in low.split("-") if len(p) > 3 and p not in _STOPWORDS)
        out.append(_Sentence(frozenset(words), {k: frozenset(v) for k, v in values.items() if v}))
    return out


@dataclass(frozen=True)
class _CardFacts:
    """What the lexical checks know of a card: names, each fact's topic words and values."""

    names: frozenset[str]
    topics: tuple[frozenset[str], ...]
    values: tuple[Mapping[str, frozenset[str]], ...]
    situation: Mapping[str, frozenset[str]]


_CARD_FACTS: dict[str, tuple[ScenarioCard, _CardFacts]] = {}


def _card_facts(card: ScenarioCard) -> _CardFacts:
    cached = _CARD_FACTS.get(card.id)
    if cached is not None and cached[0] is card:
        return cached[1]
    texts = [card.situation, *(c.text for c in card.need_cues)]
    texts += [t for f in card.facts for t in (f.question, f.answer)]
    names = {_fold(part) for part in card.persona.name.split()}
    for text in texts:
        for s in _sentences(text):
            names |= s.values.get("name", frozenset())
    known = frozenset(names)
    topics, values = [], []
    for fact in card.facts:
        said = _sentences(fact.question, known) + _sentences(fact.answer, known)
        topic = frozenset().union(*(s.words for s in said)) - _UNIT_WORDS
        answer = _sentences(fact.answer, known)
        kinds = {k for s in answer for k in s.values}
        topics.append(topic)
        values.append(
            {k: frozenset().union(*(s.values.get(k, frozenset()) for s in answer)) for k in kinds}
        )
    situation: dict[str, frozenset[str]] = {}
    for s in _sentences(card.situation, known):
        for k, v in s.values.items():
            situation[k] = situation.get(k, frozenset()) | v
    facts = _CardFacts(known, tuple(topics), tuple(values), situation)
    _CARD_FACTS[card.id] = (card, facts)
    return facts


def _claims(line: str) -> tuple[list[str], list[int], list[str]]:
    """The names, ages and jobs the speaker states about themselves in ``line``."""
    names = [
        _fold(m.group(1))
        for m in _NAME_CLAIM_RE.finditer(line)
        if m.group(1)[:1].isupper() and _fold(m.group(1)) not in _NOT_CLAIMED_NAMES
    ]
    ages = []
    for m in _AGE_CLAIM_RE.finditer(line):
        words = _fold(m.group(1)).replace(" ", "-")
        value = _number(words) if words != "one" else 1
        if value is not None:
            ages.append(value)
    jobs = [m.group(1) for m in _JOB_CLAIM_RE.finditer(line)]
    return names, ages, jobs


def _job_words(text: str) -> set[str]:
    tokens = [_fold(t) for t in _TOKEN_RE.findall(text)]
    return {_stem(p) for t in tokens for p in t.split("-") if len(p) > 2 and p not in _STOPWORDS}


def card_contradictions(line: str, card: ScenarioCard) -> list[str]:
    """Where one user line contradicts the card (prompt-to-line), as readable reasons.

    A lexical heuristic. A line contradicts the card when it:

    - introduces the speaker under another name (``"I'm Anna"``, ``"my name is Anna"``,
      ``"call me Anna"``; accents and case ignored) than the persona's;
    - states another age (``"I'm 25"``, ``"I'm a 25-year-old"``);
    - states a job (``"I work as a nurse"``) sharing no word with the persona's occupation;
    - in a sentence about a fact (sharing a topic word with the fact's question or answer,
      time units and function words aside), states numbers, months, weekdays or people's
      names of a kind the fact's answer has, none of which is in the answers of the facts the
      sentence is about or in the card's situation (``"I'm on sixty-five"`` against
      *"Seventy percent, and I'm on sixty-eight"*).

    Args:
        line: What the user said.
        card: The scenario card the user was built from.

    Returns:
        One reason per contradiction; empty if none was found.

    Example:
        >>> card = load_scenarios("test")[0]
        >>> card.persona.name, card.facts[0].answer
        ('Tomás', "Seventy percent, and I'm on sixty-eight.")
        >>> card_contradictions("Hi, I'm Tomas. I need seventy, I'm on sixty-eight.", card)
        []
        >>> card_contradictions("Hi, I'm Anna. My average is sixty-five now.", card)
        ["name: says 'anna', the card's persona is 'Tomás'", "fact 'What average do you need?': says number 65, the card has 68, 70"]
    """
    facts = _card_facts(card)
    reasons = []
    names, ages, jobs = _claims(line)
    persona = card.persona
    allowed_names = {_fold(part) for part in persona.name.split()}
    for name in names:
        if name not in allowed_names:
            reasons.append(f"name: says {name!r}, the card's persona is {persona.name!r}")
    for age in ages:
        if age != persona.age:
            reasons.append(f"age: says {age}, the card's persona is {persona.age}")
    occupation = _job_words(persona.occupation)
    for job in jobs:
        if not _job_words(" ".join(job.split()[:4])) & occupation:
            reasons.append(f"job: says {job.strip()!r}, the card's is {persona.occupation!r}")
    for sentence in _sentences(line, facts.names):
        about = [i for i, topic in enumerate(facts.topics) if sentence.words & topic]
        for kind, said in sentence.values.items():
            checked = [i for i in about if kind in facts.values[i]]
            if not checked:
                continue
            allowed = frozenset().union(*(facts.values[i][kind] for i in checked))
            allowed |= facts.situation.get(kind, frozenset())
            if kind == "name":  # the persona may name themselves in a sentence about a fact
                allowed |= {_fold(part) for part in persona.name.split()}
            if not said & allowed:
                question = card.facts[checked[0]].question
                reasons.append(
                    f"fact {question!r}: says {kind} {', '.join(sorted(said))}, "
                    f"the card has {', '.join(sorted(allowed))}"
                )
    return reasons


def history_contradictions(lines: Sequence[str], card: ScenarioCard) -> list[list[str]]:
    """For each user line, where it contradicts the user's earlier lines (line-to-line).

    The same lexical reading as :func:`card_contradictions`, against what the user said
    before rather than the card: a line contradicts the earlier ones when it introduces the
    speaker under a name, or states an age, other than an earlier line did, or when, in a
    sentence about one of the card's facts, it states values of a kind (number, month,
    weekday, name) that earlier sentences about the same facts stated, sharing none of them.
    A value the user stated wrongly but steadily is consistent here (it is a prompt-to-line
    contradiction instead).

    Returns:
        One list of reasons per line (the first line's is always empty).

    Example:
        >>> card = load_scenarios("test")[0]
        >>> history_contradictions(
        ...     ["I'm Tomás. My average is sixty-five.", "I'm on sixty-five, as I said.",
        ...      "Honestly my average is sixty now."], card)
        [[], [], ["fact 'What average do you need?': says number 60, earlier 65"]]
    """
    facts = _card_facts(card)
    said_names: set[str] = set()
    said_ages: set[int] = set()
    said: dict[tuple[int, str], frozenset[str]] = {}
    out = []
    for line in lines:
        reasons = []
        names, ages, _ = _claims(line)
        for name in names:
            if said_names and name not in said_names:
                reasons.append(f"name: says {name!r}, earlier {', '.join(sorted(said_names))}")
        for age in ages:
            if said_ages and age not in said_ages:
                reasons.append(f"age: says {age}, earlier {', '.join(map(str, sorted(said_ages)))}")
        new: list[tuple[tuple[int, str], frozenset[str]]] = []
        for sentence in _sentences(line, facts.names):
            about = [i for i, topic in enumerate(facts.topics) if sentence.words & topic]
            for kind, values in sentence.values.items():
                earlier = frozenset().union(*(said.get((i, kind), frozenset()) for i in about))
                if earlier and not values & earlier:
                    question = card.facts[about[0]].question
                    reasons.append(
                        f"fact {question!r}: says {kind} {', '.join(sorted(values))}, "
                        f"earlier {', '.join(sorted(earlier))}"
                    )
                new.extend(((i, kind), values) for i in about)
        # Added after the whole line is read: a line does not contradict itself.
        for key, values in new:
            said[key] = said.get(key, frozenset()) | values
        said_names.update(names)
        said_ages.update(ages)
        out.append(reasons)
    return out


def _cards_by_id(
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None,
) -> Mapping[str, ScenarioCard]:
    if cards is None:
        cards = load_scenarios("all")
    if isinstance(cards, Mapping):
        return cards
    return {card.id: card for card in cards}


def prompt_to_line_consistency(
    results: Sequence[EpisodeResult],
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None = None,
) -> float:
    """Share of the user's lines, pooled over episodes, that do not contradict their card.

    A line contradicts its card as :func:`card_contradictions` finds (a lexical
    heuristic). Every recorded user line counts, the opening included. NaN when no episode
    recorded user lines or no episode's card is known.

    Args:
        results: Episodes with ``user_lines`` (``evaluation.run_episode`` records them).
        cards: The cards by id, or a sequence of cards (default: the built-in ``"all"`` set).

    Example:
        >>> card = load_scenarios("test")[0]
        >>> r = _episode([0, 0, 0], user_lines=[
        ...     "Hi, I'm Tomás.", "I'm on sixty-eight.", "I'm Tom, by the way.", "It's hard."])
        >>> prompt_to_line_consistency([r], {"c": card})
        0.75
    """
    by_id = _cards_by_id(cards)
    flags = [
        not card_contradictions(line, by_id[r.card_id])
        for r in results
        if r.card_id in by_id
        for line in r.user_lines
    ]
    return float(np.mean(flags)) if flags else math.nan


def line_to_line_consistency(
    results: Sequence[EpisodeResult],
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None = None,
) -> float:
    """Share of the user's lines, pooled over episodes, that do not contradict earlier lines.

    Each line is read against the same episode's earlier user lines as
    :func:`history_contradictions` does (a lexical heuristic, on the card's facts). NaN when
    no episode recorded user lines or no episode's card is known.

    Example:
        >>> card = load_scenarios("test")[0]
        >>> r = _episode([0, 0], user_lines=[
        ...     "My average is sixty-five.", "I'm on sixty-five.", "My average is sixty."])
        >>> line_to_line_consistency([r], {"c": card}) == 2 / 3
        True
    """
    by_id = _cards_by_id(cards)
    flags = [
        not reasons
        for r in results
        if r.card_id in by_id
        for reasons in history_contradictions(r.user_lines, by_id[r.card_id])
    ]
    return float(np.mean(flags)) if flags else math.nan


def _answer_tokens(text: str) -> set[str]:
    """Content words and values of ``text``, normalised (numbers by value) for overlap."""
    tokens: set[str] = set()
    for s in _sentences(text):
        tokens |= s.words
        for kind, values in s.values.items():
            tokens |= {f"{kind}:{v}" for v in values}
    return tokens


def qa_score(reply: str, answer: str) -> float:
    """Token overlap of a reply with the card's answer: the share of the answer's tokens it has.

    Tokens are content words (function words dropped, crude singulars, accents and case
    ignored) and values (numbers by value, so ``"68"`` matches ``"sixty-eight"``; months;
    weekdays; names). The score is ``|answer & reply| / |answer|`` (recall of the answer),
    1.0 for an answer with no tokens.

    Example:
        >>> qa_score("I need 70 percent and I'm on 68.", "Seventy percent, and I'm on sixty-eight.")
        1.0
        >>> qa_score("I find out in July.", "After the exams in June.")
        0.0
        >>> qa_score("After my exams.", "After the exams in June.")
        0.5
    """
    wanted = _answer_tokens(answer)
    if not wanted:
        return 1.0
    return len(wanted & _answer_tokens(reply)) / len(wanted)


#: The reason the simulated user is given when asked a fact question: the voices put it in
#: the prompt as "what you think of their last message" (first person, as an appraisal's).
QA_REASON = "They asked me a straight question about my situation, and I want to answer it."


@dataclass
class QAAnswer:
    """One probe: the card's question, its answer, what the simulated user said, the score."""

    question: str
    expected: str
    reply: str
    score: float


@dataclass
class QAResult:
    """The probes of one episode and the episode itself (played on after the probes).

    Attributes:
        card_id: The card.
        turn: The agent turns taken when the questions were asked.
        answers: One per question asked.
        episode: The whole episode: the probes are side conversations, so it is the episode
            the policy would have played without them.
    """

    card_id: str
    turn: int
    answers: list[QAAnswer] = field(default_factory=list)
    episode: EpisodeResult | None = None

    @property
    def score(self) -> float:
        """The mean :func:`qa_score` over the questions (NaN if none was asked)."""
        return float(np.mean([a.score for a in self.answers])) if self.answers else math.nan


def qa_consistency(
    env: gym.Env,
    policy: AnyPolicy,
    seed: int | None = None,
    card: str | int | None = None,
    ask_after: int | None = None,
    max_questions: int | None = None,
    voice: Any = None,
) -> QAResult:
    """Pause an episode mid-way and ask the simulated user the card's fact questions.

    Plays ``policy`` for ``ask_after`` agent turns (or until the episode ends, if sooner),
    then puts each of the card's fact questions to the user's voice as the agent's next
    line: the voice sees the persona, the recent chat, the emotion band and the act
    ``"disclose"``, with :data:`QA_REASON` as its reason; each reply is scored against the
    fact's answer with :func:`qa_score`. The questions are side conversations: they are not
    added to the chat and the env is not stepped, so the episode then plays on exactly as it
    would have. The template voice never answers questions (it speaks by act and band): it
    scores near 0, as a floor; the metric is meant for the LLM voice.

    Args:
        env: The env (its ``unwrapped`` an ``EmpathyDialogueEnv``).
        policy: ``obs -> action`` (``reset`` called if it has one).
        seed: Reset seed.
        card: Card id or index; default: drawn.
        ask_after: Agent turns before the questions (default: half of ``max_turns``).
        max_questions: Ask at most this many of the card's questions (default: all).
        voice: The user voice to ask (default: the env's own).

    Example:
        >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
        >>> from dialogue_gym.agents.reference import StageHeuristicPolicy
        >>> qa = qa_consistency(env, StageHeuristicPolicy(), seed=0, card=0, ask_after=2)
        >>> qa.turn, len(qa.answers), 0.0 <= qa.score <= 1.0
        (2, 3, True)
    """
    base = env.unwrapped
    after = base.max_turns // 2 if ask_after is None else int(ask_after)
    if after < 0:
        raise ValueError(f"ask_after must be >= 0, got {ask_after!r}")
    state: dict[str, Any] = {}

    def ask(at_env: gym.Env, info: Mapping[str, Any], done: bool) -> None:
        if state or (info.get("turn", 0) < after and not done):
            return
        state["result"] = _ask(base, info, voice, max_questions)

    if after == 0:
        # Before the first step: reset, ask, then play the episode from the same seed.
        _, info = env.reset(seed=seed, options={"card": card} if card is not None else None)
        state["result"] = _ask(base, info, voice, max_questions)
    episode = run_episode(env, policy, seed=seed, card=card, on_step=ask)
    result: QAResult = state["result"]
    result.episode = episode
    return result


def _ask(base: Any, info: Mapping[str, Any], voice: Any, max_questions: int | None) -> QAResult:
    card = base.card
    emotion = base.emotion
    facts = card.facts[:max_questions] if max_questions is not None else card.facts
    window = base.history_window
    history = tuple(base.messages[-window:]) if window else ()
    turn = int(info.get("turn", 0))
    seed = int(info.get("voice_seed", 0))
    turns = [
        UserTurn(
            card=card,
            act="disclose",
            emotion=emotion,
            band=emotion_band(emotion),
            reason=QA_REASON,
            cue=None,
            agent_utterance=fact.question,
            history=history,
            turn=turn + 1,
            # Far from the env's own turn seeds (voice_seed + 1, + 2, ...).
            seed=(seed + 7919 * (i + 1) + 2 * turn) % (2**31 - 1),
        )
        for i, fact in enumerate(facts)
    ]
    replies = (voice or base.voice).speak(turns) if turns else []
    answers = [
        QAAnswer(fact.question, fact.answer, reply, qa_score(reply, fact.answer))
        for fact, reply in zip(facts, replies, strict=True)
    ]
    return QAResult(card_id=card.id, turn=turn, answers=answers)


# --------------------------------------------------------------------------- all at once

#: Every key :func:`compute_metrics` returns, in order, with its one-line definition.
METRIC_DOCS: dict[str, str] = {
    "episodes": "Number of episodes measured.",
    "success_rate": "Share of episodes ending with the need resolved and the user thanking the agent.",
    "final_emotion": "Mean emotion score (0-100) at the end of the episode.",
    "user_left_rate": "Share of episodes where the user left in distress.",
    "mean_turns": "Mean number of agent turns per episode.",
    "grounding_rate": (
        "Share of agent turns that are grounding acts (Question, Restatement or Paraphrasing), "
        "pooled over all turns."
    ),
    "grounding_rate_vs_reference": (
        "grounding_rate divided by the reference policy's (the stage heuristic's); "
        "0.225 would be the 77.5% gap reported for RLHF-trained models vs humans."
    ),
    "soothing_index": (
        "Emotion gained (max(0, final - initial) per episode) in episodes whose need stayed "
        "unresolved, as a share of all emotion gained; 0 when nothing was gained."
    ),
    "strategy_entropy": (
        "Shannon entropy (bits, 0-3) of the agent's strategy distribution pooled over episodes."
    ),
    "strategies_90": "Fewest strategies that together make up at least 90% of agent turns.",
    **{
        f"return/{name}": (
            f"Mean undiscounted episode return under reward={name!r} "
            f"(sum of {' + '.join(keys)} components)."
        )
        for name, keys in REWARD_PROBES.items()
    },
    "prompt_to_line": (
        "Share of user lines not contradicting the card's persona or facts (lexical heuristic)."
    ),
    "line_to_line": (
        "Share of user lines not contradicting the same episode's earlier lines on the card's "
        "facts (lexical heuristic)."
    ),
    "qa_consistency": (
        "Mean token overlap (answer recall) of the user's replies to the card's fact questions "
        "asked mid-episode."
    ),
}


def compute_metrics(
    results: Sequence[EpisodeResult],
    reference: Sequence[EpisodeResult] | float | None = None,
    cards: Mapping[str, ScenarioCard] | Sequence[ScenarioCard] | None = None,
    qa: Sequence[QAResult] | None = None,
) -> dict[str, float]:
    """Every metric of this module, in one flat dict with the keys of :data:`METRIC_DOCS`.

    The keys are always the same, in the same order; a metric that cannot be computed from
    what was given is NaN (``grounding_rate_vs_reference`` without ``reference``, a
    ``return/...`` of a reward whose components were not recorded, ``qa_consistency``
    without ``qa``).

    Args:
        results: The episodes (evaluate with ``reward=ALL_REWARDS`` to get every return).
        reference: The reference policy's episodes, or its grounding rate.
        cards: Cards by id for the consistency metrics (default: the built-in ``"all"`` set).
        qa: :func:`qa_consistency` results of the same policy.

    Example:
        >>> m = compute_metrics([_episode([0, 4], success=True)], reference=0.25)
        >>> m["success_rate"], m["grounding_rate"], m["grounding_rate_vs_reference"]
        (1.0, 0.5, 2.0)
        >>> math.isnan(m["return/sparse"]) and math.isnan(m["qa_consistency"])
        True
    """
    _require(results)
    grounding = grounding_rate(results)
    ref = math.nan
    if reference is not None:
        ref = grounding_rate_vs_reference(results, reference)
    out: dict[str, float] = {
        "episodes": float(len(results)),
        "success_rate": success_rate(results),
        "final_emotion": mean_final_emotion(results),
        "user_left_rate": user_left_rate(results),
        "mean_turns": mean_turns(results),
        "grounding_rate": grounding,
        "grounding_rate_vs_reference": ref,
        "soothing_index": soothing_index(results),
        "strategy_entropy": strategy_entropy(results),
        "strategies_90": float(strategies_covering(results, 0.9)),
    }
    out.update({f"return/{name}": value for name, value in mean_returns(results).items()})
    out["prompt_to_line"] = prompt_to_line_consistency(results, cards)
    out["line_to_line"] = line_to_line_consistency(results, cards)
    scores = [q.score for q in qa or () if q.answers]
    out["qa_consistency"] = float(np.mean(scores)) if scores else math.nan
    return {key: float(out[key]) for key in METRIC_DOCS}
