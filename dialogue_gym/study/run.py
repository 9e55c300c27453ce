"""The reward study: can emotion-grounded rewards replace the coarse bonus signal?

CleanRL style: one readable script, a dataclass of arguments. For each simulator setting x
reward x learner x seed it trains an SB3 agent on the ``train`` cards, evaluates it on the
``test`` cards (template voice, the same seeded episodes for every run) along the way
(learning curves) and at the end (every metric of :mod:`dialogue_gym.evaluation.metrics`, the return
under every reward), and writes everything under ``<out>/<name>/``:

- ``runs.jsonl``: one line per finished run, written whole and synced (an interrupted study
  keeps them), with the fingerprint of its settings (``--resume`` reuses only its own runs),
- ``runs.csv`` / ``curves.csv`` / ``baselines.csv``: the same, flat,
- ``episodes/<run>.jsonl``: the final evaluation's transcripts,
- ``summary.json``, ``report.md`` and the plots (``report.py`` makes them).

    dialogue-gym study --quick            # all rewards, PPO and hierarchical PPO, 3 seeds
    dialogue-gym study                    # >= 5 seeds, all learners, the simulator sweep
    dialogue-gym study --rewards sparse emotion_delta --learners ppo --seeds 2 --steps 5000
    dialogue-gym study --quick --executor ray    # the runs as Ray tasks (--ray-address: a cluster)
    dialogue-gym study --quick --envs EmpathyDialogue-v0 EmpathyDialogueHard-v0  # two users
    dialogue-gym study --quick --llm-results benchmarks/results/llm  # + the LLM level

The agents see the strategy action space of each ``--envs`` id (``EmpathyDialogue-v0`` by
default; any registered env with the same strategy actions, e.g. a harder user); the hierarchical
learner is PPO over :class:`~dialogue_gym.agents.options.Options` (the five built-in options),
given the same number of decisions as the flat learners (so it sees more turns).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

import gymnasium as gym
import numpy as np

from dialogue_gym.agents.options import HierarchicalPolicy, Options
from dialogue_gym.agents.reference import baselines, make_policy
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.evaluation.episodes import ModelPolicy
from dialogue_gym.registry import Registry
from dialogue_gym.rewards.registry import REWARDS, reward_probes
from dialogue_gym.study import executors

# The study's lists are read from the registries when used, so a plugin that registers a
# reward, a learner or a reference policy is in them: ``STUDY_REWARDS`` (every reward whose
# return the metrics' probes measure, the coarse bonus first: the one the others must match),
# ``STUDY_LEARNERS`` (every registered learner), ``BASELINES`` (the reference policies
# registered as baselines) and ``HIERARCHICAL`` (the learners acting through Options) are
# computed on access (see ``__getattr__`` at the end).


#: Study reward labels that stand for a registered reward with fixed arguments: label ->
#: ``(reward, reward_kwargs)``. ``multi_turn_value`` is CollabLLM's reward paid in its value
#: form (the look-ahead's value every turn, so a longer conversation earns more), run beside
#: ``multi_turn`` (the advantage form, the faithful one in a multi-step MDP): docs/rewards.md.
REWARD_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "multi_turn_value": ("multi_turn", {"mode": "value"}),
}


def register_reward_variant(label: str, reward: str, **reward_kwargs: Any) -> None:
    """Add a study reward label: ``reward`` (a registered name) with fixed ``reward_kwargs``.

    The study trains ``gym.make(..., reward=reward, reward_kwargs=reward_kwargs)`` under
    ``label`` and lists the label right after ``reward`` among its default rewards.

    Raises:
        InvalidArgument: ``label`` is taken (a reward or a variant), or ``reward`` is not a
            registered reward.

    Example:
        >>> register_reward_variant("next_turn_dpdp", "next_turn", values={"better": 0.1})
        >>> study_rewards()[study_rewards().index("next_turn") + 1]
        'next_turn_dpdp'
        >>> del REWARD_VARIANTS["next_turn_dpdp"]  # (the example cleans up after itself)
    """
    if label in REWARDS or label in REWARD_VARIANTS:
        raise InvalidArgument(
            "register_reward_variant", "label", label, "must be a name no reward or variant has"
        )
    if reward not in REWARDS:
        raise InvalidArgument(
            "register_reward_variant", "reward", reward, f"must be one of {', '.join(REWARDS)}"
        )
    REWARD_VARIANTS[label] = (reward, dict(reward_kwargs))


def reward_choices() -> tuple[str, ...]:
    """Every name ``--rewards`` accepts: the registered rewards and the study's variants."""
    return (*REWARDS, *(label for label in REWARD_VARIANTS if label not in REWARDS))


def resolve_reward(label: str) -> tuple[str, dict[str, Any]]:
    """A study reward label -> ``(registered reward, reward_kwargs)`` for ``gym.make``.

    Example:
        >>> resolve_reward("multi_turn_value"), resolve_reward("sparse")
        (('multi_turn', {'mode': 'value'}), ('sparse', {}))
    """
    if label in REWARD_VARIANTS:
        reward, kwargs = REWARD_VARIANTS[label]
        return reward, dict(kwargs)
    return label, {}


def study_rewards() -> tuple[str, ...]:
    """The rewards the study compares by default: every one the probes measure, each followed
    by its variants (``REWARD_VARIANTS``).

    Example:
        >>> study_rewards()[0]
        'sparse'
        >>> study_rewards()[study_rewards().index("multi_turn") + 1]
        'multi_turn_value'
    """
    out: list[str] = []
    for name in reward_probes():
        out.append(name)
        out.extend(label for label, (base, _) in REWARD_VARIANTS.items() if base == name)
    return tuple(out)


def study_learners() -> tuple[str, ...]:
    """The learners the full study trains by default: every registered one."""
    return LEARNERS.names()


REWARDS_HELP = (
    "rewards to train with: names of gym.make's reward=, or a study variant "
    "(multi_turn_value: the multi-turn reward paid in its value form)"
)

#: The packages of the ``study`` extra, as imported, and what needs them.
STUDY_EXTRA: dict[str, str] = {
    "rliable": "the report's intervals",
    "pandas": "rliable's bootstrap (through arch)",
    "matplotlib": "the plots",
}
#: The simulator sweep: each assumption moved below and above its default, one at a time.
SWEEP: dict[str, tuple[float, ...]] = {
    "soothing_ceiling": (40.0, 70.0, 85.0),
    "resolution_uplift": (15.0, 45.0),
    "premature_penalty": (0.0, 12.0),
}
#: Evaluation episodes use seeds from here on (the same episodes for every run).
EVAL_SEED = 10_000
#: The simulated user the study trains with unless ``--envs`` names others. Its runs keep the
#: run ids and fingerprints of the versions before ``--envs``, so their folders still resume.
DEFAULT_ENV = "EmpathyDialogue-v0"


@dataclass
class Args:
    """The study's settings (every field is a command-line flag)."""

    rewards: tuple[str, ...] = field(default_factory=study_rewards)
    """rewards to train with: names of gym.make's reward=, or a study variant (multi_turn_value:
    the multi-turn reward paid in its value form)"""
    envs: tuple[str, ...] = (DEFAULT_ENV,)
    """the simulated users: registered env ids with the strategy actions (e.g. EmpathyDialogue-v0
    EmpathyDialogueHard-v0); the grid runs for each, the report has a main table per env (the
    sweep, with --sweep, moves the first one's simulator)"""
    learners: tuple[str, ...] = field(default_factory=study_learners)
    """learners to train"""
    seeds: int = 5
    """training seeds per (setting, reward, learner)"""
    steps: int = 12_000
    """agent decisions per run (of every learner that --learner-steps and --budgets leave)"""
    learner_steps: tuple[str, ...] = ()
    """per-learner budgets, LEARNER=STEPS (e.g. ppo=40000 hppo=12000): each replaces --steps
    (and --budgets' value) for the learner it names"""
    budgets: Literal["steps", "plateau"] = "steps"
    """the learners' budgets: steps (--steps for every learner) or plateau (PLATEAU_STEPS: each
    learner's measured plateau on the coarse bonus, docs/study.md#budgets-to-the-plateau; a
    learner it lacks gets --steps)"""
    eval_points: int = 5
    """learning-curve evaluations per run (the last is the final evaluation)"""
    sweep: bool = False
    """also run the simulator sweep (SWEEP: 7 more settings, each with sweep_learner x every
    reward x sweep_seeds runs); off unless given (the full study of docs/results.md gives it)"""
    sweep_learner: str = "ppo"
    """the learner of the sweep"""
    sweep_seeds: int = 3
    """seeds per sweep cell"""
    sim: tuple[str, ...] = ()
    """simulator overrides for the main setting, e.g. soothing_ceiling=70"""
    max_turns: int = 10
    """turn limit of an episode"""
    workers: int = 2
    """runs trained in parallel (processes; with --executor ray, the CPUs of its own instance)"""
    executor: Literal["local", "ray"] = "local"
    """where the runs execute: worker processes of this machine, or Ray tasks (docs/study.md)"""
    ray_address: str = ""
    """the cluster of --executor ray (HOST:PORT of its head, auto, ray://...); empty: a local one"""
    bootstrap_reps: int = 2000
    """stratified-bootstrap resamples for the intervals (rliable)"""
    margin: float = 10.0
    """the non-inferiority margin δ in success points, declared before the study runs: a
    reward *matches* (replaces) the coarse bonus when the 95% interval of their IQM difference
    lies wholly above -δ (docs/study.md#aggregates-and-verdicts); recorded in args.json and in
    every run's fingerprint, so a folder is never re-judged under another margin"""
    out: str = "benchmarks/results"
    """results folder; the run's files go to <out>/<name>/"""
    name: str = ""
    """the run's folder under --out (default: quick with --quick, else full); a folder of that
    name is overwritten unless --resume"""
    plots: bool = True
    """write PNG plots"""
    quick: bool = False
    """the quick study: all rewards, ppo and hppo, 3 seeds, 8k decisions, default simulator"""
    progress: bool = True
    """show a progress bar"""
    plugins: tuple[str, ...] = ()
    """modules to import first (in every worker): they may register_reward / register_learner;
    a module name (found on sys.path or in the current folder) or the path of a .py file"""
    resume: bool = False
    """train only the runs missing from <out>/<name>/runs.jsonl (same settings as its args.json)"""
    report_only: bool = False
    """train nothing: rebuild the report from <out>/<name>/runs.jsonl (e.g. after a crash)"""
    tensorboard: bool = False
    """write TensorBoard logs of the SB3 runs to <out>/<name>/tensorboard/<run> (needs the
    tensorboard package); changes no result"""
    llm_results: str = ""
    """the LLM level: a `dialogue-gym train-llm` output (a run's folder, its eval.json, or a
    folder of runs such as benchmarks/results/llm) shown beside the strategy level in the
    report; empty: the report says how to make one"""


def quick_args(args: Args) -> Args:
    """The quick study: PPO and hierarchical PPO, 3 seeds, 8,000 decisions, no sweep.

    Flags given beside ``--quick`` that are not part of its definition are kept (``--steps``
    too, when it is not the default). ``quick`` stays true, so the report's settings say so.

    Example:
        >>> quick = quick_args(Args(quick=True))
        >>> quick.quick, quick.learners, quick.seeds, quick.steps, quick.sweep
        (True, ('ppo', 'hppo'), 3, 8000, False)
    """
    steps = 8_000 if args.steps == Args.steps else args.steps
    return dataclasses.replace(
        args, learners=("ppo", "hppo"), seeds=3, steps=steps, sweep=False, quick=True
    )


#: Each learner's budget at the plateau of its learning curve on the coarse bonus (``sparse``)
#: with the default user: the first evaluation at which the seed-mean curve moved less than
#: ``verdicts.FLAT_DELTA`` from the one before and stays within it afterwards (``verdicts.plateau``).
#: ``--budgets plateau`` trains each learner this long. Measured 2026-11-30 on 2 cores (AMD EPYC,
#: Python 3.11) with ``dialogue-gym study --rewards sparse --learners ppo a2c dqn recurrent_ppo
#: hppo --seeds 4 --steps 60000 --eval-points 10 --name sparse60k4`` (evaluations every 6k;
#: docs/study.md#budgets-to-the-plateau has the curves). Where the rule finds no plateau:
#: a2c swings 55-85% between evaluations up to 120k (no plateau; 60k, where the others were
#: measured); dqn never learns within 60k (it peaks at 50% at 12k and falls to 0% from 18k on:
#: 60k, so the study drops it). recurrent_ppo's plateau (29%) is one seed of four at 90-96%
#: and three near 0%. hppo's curve falls from its peak (91% at 6k) to 46-50% from 42k on, two
#: seeds of four unlearning the bonus: a budget at that "plateau" would judge every reward
#: against a collapsed bonus, so a learner whose seed-mean peak is more than FLAT_DELTA above
#: its plateau gets the budget of its peak instead (6k), and the docs report the collapse.
PLATEAU_STEPS: dict[str, dict[str, int]] = {
    DEFAULT_ENV: {
        "ppo": 36_000,
        "a2c": 60_000,
        "dqn": 60_000,
        "recurrent_ppo": 54_000,
        "hppo": 6_000,
    },
    # The hard user's, by the same rules (measurement below).
    "EmpathyDialogueHard-v0": {
        "ppo": 60_000,
        "a2c": 96_000,
        "dqn": 60_000,
        "recurrent_ppo": 54_000,
        "hppo": 6_000,
    },
}


def plateau_steps(env_id: str) -> dict[str, int]:
    """The plateau budgets measured on ``env_id``; a user nobody measured gets the default
    user's (and the study says so where it prints the plan).

    Example:
        >>> plateau_steps("NoSuchUser-v0") == plateau_steps(DEFAULT_ENV)
        True
    """
    return PLATEAU_STEPS.get(env_id, PLATEAU_STEPS[DEFAULT_ENV])


def parse_learner_steps(pairs: tuple[str, ...]) -> dict[str, int]:
    """``("ppo=40000", "hppo=12000")`` -> ``{"ppo": 40000, "hppo": 12000}``, checked.

    Raises:
        InvalidArgument: A pair that is not ``LEARNER=STEPS`` with a registered learner and a
            whole number of steps of at least 1, or a learner named twice.

    Example:
        >>> parse_learner_steps(("ppo=40000", "hppo=12_000"))
        {'ppo': 40000, 'hppo': 12000}
        >>> parse_learner_steps(("ppo=lots",))
        Traceback (most recent call last):
        ...
        dialogue_gym.core.validation.InvalidArgument: study.learner_steps = 'ppo=lots': must be LEARNER=STEPS with LEARNER one of ppo, a2c, dqn, recurrent_ppo, hppo and STEPS a whole number >= 1
    """
    allowed = (
        f"must be LEARNER=STEPS with LEARNER one of {', '.join(LEARNERS)} and STEPS a whole "
        "number >= 1"
    )
    budgets: dict[str, int] = {}
    for pair in pairs:
        name, sep, value = str(pair).partition("=")
        name = name.strip()
        try:
            steps = int(value.strip()) if sep else 0
        except ValueError:
            steps = 0
        if not sep or name not in LEARNERS or steps < 1:
            raise InvalidArgument("study", "learner_steps", pair, allowed)
        if name in budgets:
            raise InvalidArgument(
                "study", "learner_steps", pair, f"names {name} twice: give each learner once"
            )
        budgets[name] = steps
    return budgets


def steps_of(args: Args, learner: str, env_id: str | None = None) -> int:
    """The agent decisions ``learner`` trains for with the user ``env_id`` (default: the
    first of ``--envs``): ``--learner-steps``, else ``--budgets``' table (that user's
    ``PLATEAU_STEPS`` for ``plateau``), else ``--steps``.

    Example:
        >>> args = Args(steps=8000, learner_steps=("hppo=20000",))
        >>> steps_of(args, "ppo"), steps_of(args, "hppo")
        (8000, 20000)
    """
    explicit = parse_learner_steps(args.learner_steps)
    if learner in explicit:
        return explicit[learner]
    table = plateau_steps(env_id or args.envs[0])
    if args.budgets == "plateau" and learner in table:
        return table[learner]
    return args.steps


def learner_budgets(args: Args, env_id: str | None = None) -> dict[str, int]:
    """Learner -> agent decisions per run with the user ``env_id`` (default: the first of
    ``--envs``, the one the sweep also trains with), for each learner the study trains."""
    learners = (*args.learners, *((args.sweep_learner,) if args.sweep else ()))
    return {learner: steps_of(args, learner, env_id) for learner in dict.fromkeys(learners)}


def user_budgets(args: Args) -> dict[str, dict[str, int]]:
    """User -> :func:`learner_budgets` with that user, for each of ``--envs``."""
    return {env_id: learner_budgets(args, env_id) for env_id in args.envs}


def budgets_text(budgets: dict[str, int]) -> str:
    """``"12000 decisions each"``, or each learner's where they differ.

    Example:
        >>> budgets_text({"ppo": 8000, "hppo": 8000})
        '8000 decisions each'
        >>> budgets_text({"ppo": 40000, "hppo": 12000})
        'ppo 40000, hppo 12000 decisions'
    """
    if len(set(budgets.values())) <= 1:
        return f"{next(iter(budgets.values()), 0)} decisions each"
    return ", ".join(f"{learner} {steps}" for learner, steps in budgets.items()) + " decisions"


@dataclass(frozen=True)
class RunSpec:
    """One training run."""

    setting: str
    sim: dict[str, float] = field(hash=False)
    reward: str
    learner: str
    seed: int
    env: str = DEFAULT_ENV
    """the registered env id (the simulated user)"""
    steps: int = 0
    """the run's agent decisions (its learner's budget); 0: the study's ``--steps``"""

    @property
    def run_id(self) -> str:
        run = f"{self.setting}__{self.reward}__{self.learner}__s{self.seed}"
        # The default user's runs keep the ids they had before --envs existed.
        return run if self.env == DEFAULT_ENV else f"{self.env}__{run}"


# --- a run's identity ---------------------------------------------------------------------

#: The ``Args`` fields that change a run's numbers, besides its ``RunSpec``: with the spec, what
#: :func:`run_fingerprint` hashes. (``plugins`` because a plugin may define what a name means.)
RUN_FIELDS = ("steps", "eval_points", "max_turns", "plugins")
#: The ``Args`` fields that change no result (where and how the study runs, what it shows):
#: ``--resume`` lets them differ from the folder's ``args.json``. Every other field, one added
#: later included, must match: new fields are compared unless listed here.
NEUTRAL_FIELDS = (
    "workers",
    "executor",
    "ray_address",
    "progress",
    "resume",
    "report_only",
    "out",
    "name",
    "plots",
    "quick",
    "tensorboard",
    "llm_results",
)


def _canonical_sim(sim: dict[str, Any]) -> dict[str, Any]:
    """Overrides in one spelling: sorted, numbers as floats (``40`` and ``40.0`` are one run)."""
    return {
        key: float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else value
        for key, value in sorted(sim.items())
    }


def run_fingerprint(spec: RunSpec, args: Args) -> str:
    """A hash of everything that changes a run's result: its spec and the ``RUN_FIELDS``.

    Each record carries it, and a resumed study reuses a record only when the fingerprint is
    the one it would write itself, so a run trained under other settings is never taken for
    one of this study, whatever ``args.json`` says. (The run id stays readable and stable;
    the fingerprint is the identity.) The code's version is not in it.

    Example:
        >>> args = Args(rewards=("sparse",), learners=("ppo",), sweep=False)
        >>> spec = plan(args)[0]
        >>> run_fingerprint(spec, args) == run_fingerprint(spec, dataclasses.replace(args, workers=8))
        True
        >>> longer = dataclasses.replace(args, steps=99)
        >>> run_fingerprint(spec, args) == run_fingerprint(plan(longer)[0], longer)
        False
        >>> other_user = dataclasses.replace(spec, env="EmpathyDialogueHard-v0")
        >>> run_fingerprint(spec, args) == run_fingerprint(other_user, args)
        False
        >>> same = dataclasses.replace(args, steps=99, learner_steps=("ppo=12000",))
        >>> run_fingerprint(spec, args) == run_fingerprint(plan(same)[0], same)
        True
    """
    identity: dict[str, Any] = {
        "setting": spec.setting,
        "sim": _canonical_sim(spec.sim),
        "reward": spec.reward,
        "learner": spec.learner,
        "seed": spec.seed,
    }
    if spec.env != DEFAULT_ENV:
        # Absent for the default user, so records written before --envs keep their identity.
        identity["env"] = spec.env
    for name in RUN_FIELDS:
        value = getattr(args, name)
        identity[name] = list(value) if isinstance(value, tuple) else value
    # The run's own budget in the place of --steps: a run whose learner trains --steps (no
    # per-learner budget) keeps the fingerprint it had before per-learner budgets existed.
    identity["steps"] = spec.steps or args.steps
    if float(args.margin) != Args.margin:
        # The margin is declared before the runs: records judged under one margin are not
        # taken for those of another (absent at the default, so older records keep theirs).
        identity["margin"] = float(args.margin)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _comparable(name: str, value: Any) -> Any:
    """A setting as compared: tuples for lists (JSON's), the overrides parsed and sorted."""
    if isinstance(value, list):
        value = tuple(value)
    if name == "sim":
        try:
            return _canonical_sim(parse_overrides(tuple(value)))
        except (TypeError, ValueError):
            return tuple(map(str, value))  # not valid overrides (now): compared as written
    return value


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        value = tuple(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items()
        )
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "(none)"
    return str(value)


#: The fields that only say which runs the grid has: ``--resume`` may grow them (more users,
#: learners, rewards or seeds; the sweep turned on), because each record's fingerprint already
#: says the settings it was trained under. Shrinking one is still a difference: a resumed
#: study never hides runs of its folder from its report.
GRID_FIELDS = ("envs", "learners", "rewards", "seeds", "sweep", "sweep_seeds")


def _grows(then: Any, now: Any) -> bool:
    """Whether a grid field's value ``now`` holds everything ``then`` did (and maybe more)."""
    if isinstance(then, bool) or isinstance(now, bool):
        return now or not then
    if isinstance(then, int) and isinstance(now, int):
        return now >= then
    if isinstance(then, tuple) and isinstance(now, tuple):
        return set(then) <= set(now)
    return False


def settings_differences(saved: dict[str, Any], args: Args) -> list[str]:
    """Each result-changing field where ``args`` differs from a folder's ``args.json``.

    Every field but the ``NEUTRAL_FIELDS`` is compared; the sweep's learner and seeds only
    when either study sweeps. A field the saved file lacks (an older version's) counts as
    its default. The ``GRID_FIELDS`` may grow (``--learners`` gains one, ``--seeds`` rises,
    ``--sweep`` is turned on), and the budgets are compared for the learners both name: a
    study extended this way trains only its new runs.

    Args:
        saved: The folder's ``args.json``, as read.
        args: The new arguments (after ``quick_args``, as ``args.json`` is written).

    Returns:
        ``"steps: 256 in the folder, 4096 now"`` and the like, in field order.

    Example:
        >>> saved = dataclasses.asdict(Args(steps=256, workers=1))
        >>> settings_differences(saved, Args(steps=4096, workers=4))
        ['steps: 256 in the folder, 4096 now']
        >>> settings_differences(saved, Args(steps=256, seeds=8))  # grown: more seeds
        []
    """
    sweeping = bool(saved.get("sweep", Args.sweep)) or args.sweep
    differences = []
    for f in dataclasses.fields(Args):
        if f.name in NEUTRAL_FIELDS:
            continue
        if f.name in ("sweep_learner", "sweep_seeds") and not sweeping:
            continue
        if f.name in BUDGET_FIELDS:
            if f.name == "steps":  # the budgets, compared per learner, where --steps stood
                differences += _budget_differences(saved, args)
            continue
        then = _comparable(f.name, saved.get(f.name, _field_default(f)))
        now = _comparable(f.name, getattr(args, f.name))
        if then != now and not (f.name in GRID_FIELDS and _grows(then, now)):
            flag = f.name.replace("_", "-")
            differences.append(f"{flag}: {_shown(then)} in the folder, {_shown(now)} now")
    return differences


#: The fields that set the learners' budgets: ``settings_differences`` compares what they
#: make of each learner's steps, not the fields themselves (``--steps 40000`` with
#: ``--learner-steps ppo=12000`` trains PPO's runs as ``--steps 12000`` does).
BUDGET_FIELDS = ("steps", "learner_steps", "budgets")
#: The key of ``args.json`` that records each learner's budget as the study trained it.
BUDGETS_KEY = "steps_per_learner"
#: The key of ``args.json`` that records them per user (``--envs``), where plateaus differ.
USER_BUDGETS_KEY = "steps_per_user"


def _budget_differences(saved: dict[str, Any], args: Args) -> list[str]:
    """The budget differences between a folder's ``args.json`` and ``args``, one line per
    user whose budgets differ: ``steps: A in the folder, B now`` where both give every
    learner ``--steps``, else ``steps per learner: ...`` (``... of USER`` for a user after
    the first)."""
    values = {
        name: saved.get(name, _field_default(Args.__dataclass_fields__[name]))
        for name in BUDGET_FIELDS
    }
    try:
        then_args = dataclasses.replace(
            args,
            steps=int(values["steps"]),
            learner_steps=tuple(map(str, values["learner_steps"] or ())),
            budgets=str(values["budgets"]),
        )
    except (TypeError, ValueError):  # an args.json this version cannot read: differs
        then_args = None
    recorded = saved.get(BUDGETS_KEY)
    per_user = saved.get(USER_BUDGETS_KEY)
    lines = []
    trained_with = saved.get("envs") or [DEFAULT_ENV]
    for k, env_id in enumerate(args.envs):
        if env_id not in trained_with:
            continue  # a user added on resume: nothing of it was trained
        then = learner_budgets(then_args, env_id) if then_args is not None else {}
        # As trained (PLATEAU_STEPS may have changed since): the per-user record, else the
        # first user's, which a version before per-user budgets gave every user.
        as_trained = per_user.get(env_id) if isinstance(per_user, dict) else None
        if not isinstance(as_trained, dict):
            as_trained = recorded if isinstance(recorded, dict) else None
        if as_trained is not None:
            then = {key: v for key, v in as_trained.items() if key in then} or then
        now = learner_budgets(args, env_id)
        line = _budget_line(then, now, then_args.steps if then_args else None, args.steps)
        if line:
            lines.append(line if k == 0 else line.replace(":", f" of {env_id}:", 1))
    return lines


def _budget_line(then: dict[str, int], now: dict[str, int], then_steps: Any, steps: int) -> str:
    """One user's budget difference in words, or ``""`` when there is none."""
    if then and set(then) != set(now):  # a learner added (or dropped): compare the shared ones
        shared = then.keys() & now.keys()
        then = {k: v for k, v in then.items() if k in shared}
        now = {k: v for k, v in now.items() if k in shared}
    if then == now:
        return ""
    uniform = all(len(set(b.values())) <= 1 for b in (then, now)) and then
    if uniform and set(then.values()) == {then_steps} and set(now.values()) == {steps}:
        return f"steps: {then_steps} in the folder, {steps} now"

    def shown(budgets: dict[str, int]) -> str:
        return " ".join(f"{k}={v}" for k, v in budgets.items()) or "(unreadable)"

    return f"steps per learner: {shown(then)} in the folder, {shown(now)} now"


def _saved_args(out: Path) -> dict[str, Any] | None:
    """The folder's ``args.json``, or None when it is missing or unreadable."""
    try:
        saved = json.loads((out / "args.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def check_resumable(out: Path, args: Args) -> None:
    """Refuse to resume a study folder whose settings differ in anything that changes a result.

    Without ``args.json`` (lost, or unreadable) nothing is refused: the records' fingerprints
    still keep every run of other settings out.

    Raises:
        ValueError: One line naming each difference.
    """
    saved = _saved_args(out)
    if saved is None:
        if (out / "runs.jsonl").is_file():
            print(
                f"note: no readable args.json in {out}: reusing only the runs whose "
                "fingerprint matches these settings",
                file=sys.stderr,
            )
        return
    differences = settings_differences(saved, args)
    if differences:
        raise ValueError(
            f"--resume: {out} was run with other settings ({'; '.join(differences)}): "
            "resume with the folder's settings, or give another --name"
        )


# --- learners -----------------------------------------------------------------------------


def _ppo(env: gym.Env, common: dict[str, Any], steps: int) -> Any:
    import stable_baselines3 as sb3

    return sb3.PPO("MultiInputPolicy", env, n_steps=512, batch_size=64, ent_coef=0.01, **common)


def _a2c(env: gym.Env, common: dict[str, Any], steps: int) -> Any:
    import stable_baselines3 as sb3

    return sb3.A2C("MultiInputPolicy", env, ent_coef=0.01, **common)


def _dqn(env: gym.Env, common: dict[str, Any], steps: int) -> Any:
    import stable_baselines3 as sb3

    return sb3.DQN(
        "MultiInputPolicy",
        env,
        learning_starts=min(1000, steps // 10),
        exploration_fraction=0.3,
        target_update_interval=500,
        **common,
    )


def _recurrent_ppo(env: gym.Env, common: dict[str, Any], steps: int) -> Any:
    from sb3_contrib import RecurrentPPO

    return RecurrentPPO(
        "MultiInputLstmPolicy", env, n_steps=256, batch_size=64, ent_coef=0.01, **common
    )


#: Learner name -> ``(env, common_kwargs, steps) -> SB3 model``; ``hppo`` is PPO over Options
#: (learners registered with ``hierarchical=True`` get the env wrapped in ``Options``).
LEARNERS: Registry[Any] = Registry("learner")


def register_learner(
    name: str, build: Callable[[gym.Env, dict[str, Any], int], Any], hierarchical: bool = False
) -> None:
    """Add a learner to the study: ``build(env, common, steps)`` returns an SB3-style model.

    ``common`` holds ``seed``, ``verbose`` and ``device``; the model needs ``learn`` and
    ``predict``. A hierarchical learner acts in ``Options(env)`` (the built-in options) and is
    evaluated turn by turn through :class:`~dialogue_gym.agents.options.HierarchicalPolicy`.
    Register in a module named by ``--plugins`` so that every worker process sees it.

    Example:
        >>> register_learner("ppo_wide", _ppo)
        >>> "ppo_wide" in LEARNERS, "ppo_wide" in study_learners()
        (True, True)
        >>> LEARNERS.unregister("ppo_wide")  # (the example cleans up after itself)
    """
    LEARNERS.register(name, build, hierarchical=bool(hierarchical))


register_learner("ppo", _ppo)
register_learner("a2c", _a2c)
register_learner("dqn", _dqn)
register_learner("recurrent_ppo", _recurrent_ppo)
register_learner("hppo", _ppo, hierarchical=True)


def is_hierarchical(learner: str) -> bool:
    """Whether ``learner`` acts through ``Options`` (registered with ``hierarchical=True``)."""
    return bool((LEARNERS.entry(learner).meta or {}).get("hierarchical"))


def make_learner(name: str, env: gym.Env, seed: int, steps: int) -> Any:
    """An SB3 model with hyperparameters sized for short dialogue episodes."""
    return LEARNERS.build(name, env, {"seed": seed, "verbose": 0, "device": "cpu"}, steps)


def load_plugins(modules: tuple[str, ...]) -> None:
    """Import the ``--plugins`` modules (each may register rewards and learners).

    Each is a module name or the path of a ``.py`` file. A name is looked up on ``sys.path``
    and then in the current folder (as ``python -m`` would): ``--plugins my_plugin`` finds
    ``./my_plugin.py`` without ``PYTHONPATH``. A file is imported under its stem as module
    name. A module already imported is not imported again.

    Raises:
        InvalidArgument: A module that cannot be imported (naming it and why).
    """
    import importlib

    for module in modules:
        if module.endswith(".py") or "/" in module or os.sep in module:
            _load_plugin_file(module)
            continue
        try:
            if importlib.util.find_spec(module) is None and os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())  # after everything installed: shadows nothing
            importlib.import_module(module)
        except ImportError as err:
            raise InvalidArgument(
                "study",
                "plugins",
                module,
                f"cannot be imported ({err}): must be a module on sys.path, in the current "
                "folder, or the path of a .py file",
            ) from None


def _load_plugin_file(path_text: str) -> None:
    """Import a plugin given as the path of a ``.py`` file, once per process."""
    path = Path(path_text).expanduser().resolve()
    if not path.is_file() or path.suffix != ".py":
        raise InvalidArgument(
            "study", "plugins", path_text, "must be a module name or the path of a .py file"
        )
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
            return
        raise InvalidArgument(
            "study", "plugins", path_text, f"its name {name!r} is another module's already"
        )
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


def sim_kwargs(env_id: str, sim: dict[str, Any]) -> dict[str, Any]:
    """``gym.make``'s ``sim=`` for ``env_id`` with the study's overrides ``sim`` on top.

    No overrides: no ``sim=`` at all, so an id registered with simulator settings of its own
    (a harder user) keeps them. Overrides are laid over the id's registered ``sim`` mapping
    (``gym.spec(env_id).kwargs``), not in place of it: the sweep moves one assumption of that
    user, not of the default one.

    Example:
        >>> sim_kwargs("EmpathyDialogue-v0", {}), sim_kwargs("EmpathyDialogue-v0", {"drift": 0.2})
        ({}, {'sim': {'drift': 0.2}})
    """
    if not sim:
        return {}
    registered = gym.spec(env_id).kwargs.get("sim")
    if isinstance(registered, dict):
        return {"sim": {**registered, **sim}}
    if dataclasses.is_dataclass(registered):  # a SimConfig
        return {"sim": {**dataclasses.asdict(registered), **sim}}
    return {"sim": dict(sim)}


def train_env(spec: RunSpec, max_turns: int) -> gym.Env:
    reward, reward_kwargs = resolve_reward(spec.reward)
    env = gym.make(
        spec.env,
        voice="template",
        scenarios="train",
        reward=reward,
        reward_kwargs=reward_kwargs or None,
        max_turns=max_turns,
        **sim_kwargs(spec.env, spec.sim),
    )
    return Options(env) if is_hierarchical(spec.learner) else env


def as_policy(model: Any, learner: str) -> Any:
    """The trained model as a primitive-level policy for the bare env."""
    policy = ModelPolicy(model)
    return HierarchicalPolicy(policy) if is_hierarchical(learner) else policy


# --- evaluation ---------------------------------------------------------------------------


def eval_env(
    sim: dict[str, float], max_turns: int, probe_rewards: bool, env_id: str = DEFAULT_ENV
) -> gym.Env:
    """The test cards of ``env_id``; with ``probe_rewards`` every reward's component is in
    ``info``."""
    from dialogue_gym.evaluation.metrics import all_rewards_env

    kwargs = {"voice": "template", "scenarios": "test", "max_turns": max_turns}
    kwargs |= sim_kwargs(env_id, sim)
    if probe_rewards:
        return all_rewards_env(kwargs, env_id=env_id)
    return gym.make(env_id, **kwargs)


def play_test_cards(env: gym.Env, policy: Any) -> list[Any]:
    """One episode per test card, seeds ``EVAL_SEED + k``: identical episodes for every run."""
    from dialogue_gym.evaluation.episodes import run_episode

    n = len(env.unwrapped.cards)
    return [run_episode(env, policy, seed=EVAL_SEED + k, card=k) for k in range(n)]


def episode_arrays(results: list[Any], max_turns: int, cards: Any = None) -> dict[str, list[float]]:
    """Per-card outcomes (success, need, problem type, emotion at the start and end, need
    resolved) and the mean emotion trajectory (carried forward).

    ``cards``: the env's cards, in the order the results were played (for the problem type).
    """
    trajectories = np.array(
        [r.emotions + [r.emotions[-1]] * (max_turns + 1 - len(r.emotions)) for r in results]
    )
    arrays: dict[str, list[Any]] = {
        "card_success": [float(r.success) for r in results],
        "card_need": [r.need for r in results],
        "card_final_emotion": [float(r.final_emotion) for r in results],
        "card_initial_emotion": [float(r.initial_emotion) for r in results],
        "card_resolved": [float(r.need_resolved) for r in results],
    }
    if cards is not None:
        arrays["card_problem"] = [cards[k].problem_type for k in range(len(results))]
    arrays["emotion_trajectory"] = trajectories.mean(axis=0).round(3).tolist()
    return arrays


def run_one(spec: RunSpec, args: Args, episodes_dir: str) -> dict[str, Any]:
    """Train one learner with one reward and measure it; returns the run's record."""
    import torch

    from dialogue_gym.evaluation.episode_log import EpisodeLogger
    from dialogue_gym.evaluation.metrics import compute_metrics

    load_plugins(args.plugins)  # a spawned worker starts bare
    torch.set_num_threads(1)  # runs are parallel processes; threads would fight over cores
    torch.manual_seed(spec.seed)
    started = time.perf_counter()
    steps = spec.steps or args.steps  # the learner's budget
    model = make_learner(spec.learner, train_env(spec, args.max_turns), spec.seed, steps)
    log: dict[str, Any] = {}
    if args.tensorboard:
        # SB3 reads tensorboard_log when learn() sets up its logger: set after building, so a
        # plugin's build(env, common, steps) need not take it. Logging draws no random numbers.
        model.tensorboard_log = str(Path(args.out) / args.name / "tensorboard")
        log = {"tb_log_name": spec.run_id}
    curve_env = eval_env(spec.sim, args.max_turns, probe_rewards=False, env_id=spec.env)
    checkpoints = np.linspace(0, steps, args.eval_points + 1)[1:].astype(int)
    curve, asked, done = [], 0, 0
    for i, target in enumerate(checkpoints):
        model.learn(int(target - asked), reset_num_timesteps=False, **log)
        asked = int(target)
        # On-policy learners finish whole rollouts (PPO's 7,200-step chunk trains 7,680): the
        # record counts the decisions trained, not those asked for.
        done = int(getattr(model, "num_timesteps", asked))
        if i < len(checkpoints) - 1:
            results = play_test_cards(curve_env, as_policy(model, spec.learner))
            curve.append(
                {
                    "steps": done,
                    "success": float(np.mean([r.success for r in results])),
                    "final_emotion": float(np.mean([r.final_emotion for r in results])),
                }
            )
    train_seconds = time.perf_counter() - started

    extra = {
        "run": spec.run_id,
        "env": spec.env,
        "reward": spec.reward,
        "learner": spec.learner,
        "train_seed": spec.seed,
    }
    path = Path(episodes_dir) / f"{spec.run_id}.jsonl"
    env = EpisodeLogger(
        eval_env(spec.sim, args.max_turns, probe_rewards=True, env_id=spec.env),
        path,
        extra=extra,
        append=False,
    )
    results = play_test_cards(env, as_policy(model, spec.learner))
    cards = env.unwrapped.cards
    env.close()
    metrics = compute_metrics(results)
    curve.append(
        {
            "steps": done,
            "success": metrics["success_rate"],
            "final_emotion": metrics["final_emotion"],
        }
    )
    return {
        "run": spec.run_id,
        "env": spec.env,
        "setting": spec.setting,
        "sim": spec.sim,
        "reward": spec.reward,
        "learner": spec.learner,
        "seed": spec.seed,
        "steps": done,
        "budget": steps,
        "train_seconds": round(train_seconds, 2),
        "curve": curve,
        "metrics": metrics,
        **episode_arrays(results, args.max_turns, cards),
        "fingerprint": run_fingerprint(spec, args),
    }


def run_baselines(settings: dict[str, dict[str, float]], args: Args) -> list[dict[str, Any]]:
    """The reference policies under every setting of the study's plan, measured exactly as the
    learners are: every setting for the first env, the main one for each other env."""
    from dialogue_gym.evaluation.metrics import compute_metrics

    rows = []
    main = next(iter(settings))
    cells = [(args.envs[0], s) for s in settings]
    cells += [(env_id, main) for env_id in args.envs[1:]]
    for env_id, setting in cells:
        sim = settings[setting]
        env = eval_env(sim, args.max_turns, probe_rewards=True, env_id=env_id)
        for name in baselines():
            results = play_test_cards(env, make_policy(name, env))
            rows.append(
                {
                    "env": env_id,
                    "setting": setting,
                    "sim": sim,
                    "policy": name,
                    "metrics": compute_metrics(results),
                    **episode_arrays(results, args.max_turns, env.unwrapped.cards),
                }
            )
        env.close()
    return rows


# --- the plan -----------------------------------------------------------------------------


def parse_overrides(pairs: tuple[str, ...]) -> dict[str, float]:
    """``("soothing_ceiling=70",)`` -> ``{"soothing_ceiling": 70.0}``, checked by SimConfig.

    The values go through the one validator, ``SimConfig``'s (as ``gym.make(..., sim=...)``'s
    do), so an unknown name, a value that is no number, NaN or one out of range raises
    :class:`~dialogue_gym.core.validation.InvalidArgument` naming the parameter and its range:
    the CLI prints it on one line and exits with status 2.

    Example:
        >>> parse_overrides(("drift=0.2",))
        {'drift': 0.2}
        >>> parse_overrides(("others_effect=nan",))
        Traceback (most recent call last):
        ...
        dialogue_gym.core.validation.InvalidArgument: SimConfig.others_effect = nan: must be a finite number in [-100, 100]
    """
    from dialogue_gym.core.config import SimConfig

    sim: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"simulator override {pair!r} is not name=value")
        try:
            sim[key.strip()] = float(value)
        except ValueError:
            # Kept as text: the validator below refuses it, naming the parameter and its range.
            sim[key.strip()] = value.strip()  # type: ignore[assignment]
    SimConfig.coerce(sim)
    return sim


def settings_of(args: Args) -> dict[str, dict[str, float]]:
    """Setting name -> simulator overrides: the main setting, then the sweep's."""
    main = parse_overrides(args.sim)
    settings = {"default" if not main else "custom": main}
    if args.sweep:
        for key, values in SWEEP.items():
            for value in values:
                settings[f"{key}={value:g}"] = {**main, key: value}
    return settings


def plan(args: Args) -> list[RunSpec]:
    """Every run of the study, in a fixed order: the main setting's grid for each env of
    ``--envs``, then the sweep (the first env's simulator moved; only with ``--sweep``).

    Example:
        >>> args = Args(rewards=("sparse",), learners=("ppo",), seeds=1)
        >>> [s.run_id for s in plan(dataclasses.replace(args, envs=("EmpathyDialogue-v0", "X-v0")))]
        ['default__sparse__ppo__s0', 'X-v0__default__sparse__ppo__s0']
    """
    settings = list(settings_of(args).items())
    budgets = user_budgets(args)
    cells = [(env_id, *settings[0]) for env_id in args.envs]
    cells += [(args.envs[0], *setting) for setting in settings[1:]]
    specs = []
    for k, (env_id, setting, sim) in enumerate(cells):
        main = k < len(args.envs)
        learners = args.learners if main else (args.sweep_learner,)
        seeds = args.seeds if main else args.sweep_seeds
        for learner in learners:
            for reward in args.rewards:
                for seed in range(seeds):
                    specs.append(
                        RunSpec(
                            setting, sim, reward, learner, seed, env_id, budgets[env_id][learner]
                        )
                    )
    return specs


class MissingExtraError(ValueError):
    """An optional package the study needs is not installed (the CLI prints it on one line)."""


def check_dependencies(args: Args) -> None:
    """Fail at once, naming the extra to install, if a package of the ``study`` extra is missing.

    The report needs them only after every run has trained: checking first saves minutes.
    ``--executor ray`` needs Ray as well.

    Raises:
        MissingExtraError: One line naming the missing packages and ``pip install
            'dialogue_gym[study]'``.
    """
    needed = [name for name in STUDY_EXTRA if name != "matplotlib" or args.plots]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        uses = "; ".join(f"{name} for {STUDY_EXTRA[name]}" for name in missing)
        raise MissingExtraError(
            f"the study needs {', '.join(missing)} ({uses}), which are not installed: "
            "pip install 'dialogue_gym[study]'"
        )
    if args.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise MissingExtraError(
            "--tensorboard needs TensorBoard, which is not installed: pip install tensorboard"
        )
    if args.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise MissingExtraError(
            "--executor ray needs Ray, which is not installed: pip install 'ray>=2.41'"
        )


def _strategy_env(env_id: str) -> bool:
    """Whether ``env_id`` builds an env with the default user's strategy actions and cards.

    The check builds it (template voice: a millisecond), so an id registered with other
    defaults, a subclass or a plugin's env, is judged by what the learners will meet.
    """
    try:
        env = gym.make(env_id, voice="template")
    except Exception:  # noqa: BLE001 (any failure to build means: not an env the study can use)
        return False
    try:
        reference = gym.make(DEFAULT_ENV, voice="template")
        same = env.action_space == reference.action_space and hasattr(env.unwrapped, "cards")
        reference.close()
        return bool(same)
    finally:
        env.close()


def strategy_envs() -> tuple[str, ...]:
    """The registered dialogue env ids ``--envs`` accepts: those with the strategy actions.

    Example:
        >>> "EmpathyDialogue-v0" in strategy_envs(), "EmpathyDialogueText-v0" in strategy_envs()
        (True, False)
    """
    # Gymnasium's registry, not dialogue_gym.registration's (a layer above the study): the
    # ids whose entry point is this package's, in registration order.
    ours = [
        env_id
        for env_id, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and spec.entry_point.startswith("dialogue_gym.")
    ]
    return tuple(env_id for env_id in ours if _strategy_env(env_id))


def check_envs(envs: tuple[str, ...]) -> None:
    """Each ``--envs`` id is registered with Gymnasium and has the strategy actions.

    Raises:
        InvalidArgument: The first id that is not, with the ids that would do.
    """
    if not envs:
        raise InvalidArgument("study", "envs", envs, f"must name at least one env ({DEFAULT_ENV})")
    for env_id in envs:
        if envs.count(env_id) > 1:
            raise InvalidArgument("study", "envs", env_id, "is given twice: name each env once")
        if env_id not in gym.registry or not _strategy_env(env_id):
            why = "is not registered" if env_id not in gym.registry else "has other actions"
            raise InvalidArgument(
                "study",
                "envs",
                env_id,
                f"{why}: must be a registered env id with the strategy actions "
                f"({', '.join(strategy_envs())})",
            )


def check(args: Args) -> None:
    """Clear errors for bad settings, before anything runs."""
    from dialogue_gym.study import llm_level

    load_plugins(args.plugins)
    check_envs(args.envs)
    if args.llm_results:
        llm_level.load(args.llm_results)  # a bad path fails now, not after the runs
    for reward in args.rewards:
        if reward not in REWARDS and reward not in REWARD_VARIANTS:
            raise InvalidArgument(
                "study", "rewards", reward, f"must be one of {', '.join(reward_choices())}"
            )
    for learner in (*args.learners, args.sweep_learner):
        if learner not in LEARNERS:
            raise ValueError(f"unknown learner {learner!r}; valid: {sorted(LEARNERS)}")
    if not args.rewards or not args.learners:
        raise ValueError("the study needs at least one reward and one learner")
    for name in ("seeds", "steps", "eval_points", "workers", "sweep_seeds", "max_turns"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
    if args.steps < args.eval_points:
        raise ValueError("--steps must be at least --eval-points")
    if not (isinstance(args.margin, (int, float)) and 0 <= float(args.margin) < 100):
        raise InvalidArgument(
            "study", "margin", args.margin, "must be a number of success points in [0, 100)"
        )
    if args.budgets not in ("steps", "plateau"):
        raise InvalidArgument("study", "budgets", args.budgets, "must be one of steps, plateau")
    explicit = parse_learner_steps(args.learner_steps)
    for learner, steps in (
        (learner, steps)
        for table in user_budgets(args).values()
        for learner, steps in table.items()
    ):
        if steps < args.eval_points:
            given = f"{learner}={explicit[learner]}" if learner in explicit else args.budgets
            field_ = "learner_steps" if learner in explicit else "budgets"
            raise InvalidArgument(
                "study",
                field_,
                given,
                f"gives {learner} {steps} steps: must be at least --eval-points ({args.eval_points})",
            )
    if args.sweep and "sparse" not in args.rewards:
        raise ValueError("the sweep compares with the coarse bonus: include the sparse reward")
    if args.executor not in executors.EXECUTORS:
        valid = ", ".join(executors.EXECUTORS)
        raise ValueError(f"unknown executor {args.executor!r}; valid: {valid}")
    if args.ray_address and args.executor != "ray":
        raise ValueError("--ray-address names a Ray cluster: give --executor ray with it")
    parse_overrides(args.sim)


def execute(
    specs: list[RunSpec], args: Args, out: Path, on_done: Callable[[dict], None]
) -> list[dict[str, Any]]:
    """Run the specs with ``args.executor``, calling ``on_done`` here as each finishes.

    ``local``: in ``args.workers`` processes; ``ray``: as Ray tasks, on a local Ray instance or
    the cluster at ``args.ray_address`` (:mod:`dialogue_gym.study.executors`). Either way the
    records come back to this process, which alone writes ``runs.jsonl``.

    Returns:
        The records, in plan order (whatever finished first).
    """
    episodes = out / "episodes"
    episodes.mkdir(parents=True, exist_ok=True)
    if args.executor == "ray":
        done = executors.run_ray(run_one, specs, args, episodes, on_done, args.ray_address)
    else:
        done = executors.run_local(run_one, specs, args, episodes, on_done)
    records = {record["run"]: record for record in done}
    return [records[spec.run_id] for spec in specs]


def append_record(file: BinaryIO, record: dict[str, Any]) -> None:
    """Append one finished run to ``runs.jsonl``: one line, written whole, synced to disk.

    One write of the whole line (unbuffered file) leaves a crash at most this line cut off,
    which :func:`repair_runs_file` drops; the sync keeps it through a power cut as well.
    """
    view = memoryview((json.dumps(record) + "\n").encode("utf-8"))
    while view:
        view = view[file.write(view) :]
    os.fsync(file.fileno())


def repair_runs_file(path: Path) -> None:
    """Drop a record cut off mid-line at the end of ``runs.jsonl`` (the study was killed).

    A last line that is a whole record and lacks only its newline is kept and ended. So an
    append after a crash starts on a line of its own, and the cut-off run is trained again.
    """
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    start = data.rfind(b"\n") + 1
    try:
        whole = isinstance(json.loads(data[start:]), dict)
    except ValueError:
        whole = False
    with path.open("r+b") as f:
        if whole:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(start)
        f.flush()
        os.fsync(f.fileno())


def _write_atomic(path: Path, text: str) -> None:
    """Write a file whole or not at all: a study killed mid-write leaves the old one."""
    part = path.with_name(path.name + ".part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


def main(args: Args) -> dict[str, Any]:
    """Run the study and write its files; returns the summary."""
    from tqdm.auto import tqdm

    from dialogue_gym.study import report

    name = args.name or ("quick" if args.quick else "full")
    command = command_line(args)
    if args.quick:
        args = quick_args(args)
    args = dataclasses.replace(args, name=name)
    check(args)
    check_dependencies(args)
    out = Path(args.out) / name
    if args.resume:
        check_resumable(out, args)  # before anything in the folder changes
    if args.report_only:
        return rebuild_report(out, args, command)
    specs = plan(args)
    finished: dict[str, dict[str, Any]] = {}
    runs_path = out / "runs.jsonl"
    if args.resume:
        repair_runs_file(runs_path)
        finished = _finished_runs(runs_path, {s.run_id: run_fingerprint(s, args) for s in specs})
    print(describe_plan(args, specs, len(finished), out), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    # With the budgets each learner got: --budgets plateau's table may change between versions.
    saved_args = dataclasses.asdict(args) | {
        BUDGETS_KEY: learner_budgets(args),
        USER_BUDGETS_KEY: user_budgets(args),
    }
    _write_atomic(out / "args.json", json.dumps(saved_args, indent=2))
    load = [_load_average()]
    started = time.perf_counter()
    baselines = run_baselines(settings_of(args), args)
    _write_atomic(out / "baselines.json", json.dumps(baselines))
    todo = [spec for spec in specs if spec.run_id not in finished]
    # Unbuffered: append_record writes each record in one piece.
    runs_file = runs_path.open("ab" if args.resume else "wb", buffering=0)
    bar = tqdm(total=len(todo), desc="study", unit="run", disable=not args.progress)

    def on_done(record: dict[str, Any]) -> None:
        append_record(runs_file, record)  # an interrupted study keeps every finished run
        bar.set_postfix_str(record["run"], refresh=False)
        bar.update()

    try:
        new = {r["run"]: r for r in execute(todo, args, out, on_done)}
        records = [finished.get(spec.run_id) or new[spec.run_id] for spec in specs]
    finally:
        runs_file.close()
        bar.close()
    elapsed = time.perf_counter() - started
    load.append(_load_average())
    # Kept with the records (summary.json is rebuilt): --report-only quotes the wall time.
    _write_atomic(out / "timing.json", json.dumps({"elapsed_s": elapsed, "load": load}))
    summary = report.write(out, records, baselines, args, elapsed, command, load=load)
    print(report.terminal_summary(summary, out, len(records), elapsed))
    return summary


def _load_average() -> float:
    """The machine's 1-minute load average (0.0 where the system does not tell)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def describe_plan(args: Args, specs: list[RunSpec], reused: int, out: Path) -> str:
    """What the study is about to run, printed before it starts.

    Example:
        >>> args = Args(rewards=("sparse", "next_turn"), learners=("ppo",), seeds=3)
        >>> print(describe_plan(args, plan(args), 0, Path("out")))
        study: 6 runs (default setting: 2 rewards x 1 learners x 3 seeds; no simulator sweep: --sweep adds 7 settings) of 12000 decisions each, 2 at a time -> out/
        >>> two = dataclasses.replace(args, envs=("EmpathyDialogue-v0", "Hard-v0"))
        >>> describe_plan(two, plan(two), 0, Path("out")).split(";")[0]
        'study: 12 runs (default setting: 2 envs x 2 rewards x 1 learners x 3 seeds'
    """
    main = len(args.rewards) * len(args.learners) * args.seeds * len(args.envs)
    setting = next(iter(settings_of(args)))
    users = "" if args.envs == (DEFAULT_ENV,) else f"{len(args.envs)} envs x "
    parts = [
        f"{setting} setting: {users}{len(args.rewards)} rewards x {len(args.learners)} "
        f"learners x {args.seeds} seeds"
    ]
    if args.sweep:
        n_sweep = len(settings_of(args)) - 1
        parts.append(
            f"simulator sweep of {args.envs[0]}: {n_sweep} settings x {len(args.rewards)} "
            f"rewards x {args.sweep_learner} x {args.sweep_seeds} seeds = {len(specs) - main} runs"
        )
    else:
        n_sweep = sum(len(values) for values in SWEEP.values())
        parts.append(f"no simulator sweep: --sweep adds {n_sweep} settings")
    budgets = user_budgets(args)
    text = f"study: {len(specs)} runs ({'; '.join(parts)}) of {budgets_text(budgets[args.envs[0]])}"
    for env_id in args.envs[1:]:
        if budgets[env_id] != budgets[args.envs[0]]:
            text += f" ({env_id}: {budgets_text(budgets[env_id])})"
    if args.budgets == "plateau":
        unmeasured = [e for e in args.envs if e not in PLATEAU_STEPS]
        if unmeasured:
            text += f" (no plateau measured for {', '.join(unmeasured)}: the default user's)"
    if reused:
        text += f"; {reused} already in the folder (--resume), {len(specs) - reused} to train"
    where = "Ray tasks" if args.executor == "ray" else f"{args.workers} at a time"
    return f"{text}, {where} -> {out}/"


def _finished_runs(path: Path, fingerprints: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run id -> record, for the records of ``runs.jsonl`` that this study would write itself.

    Args:
        path: The ``runs.jsonl``.
        fingerprints: Run id -> :func:`run_fingerprint`, of the planned runs.

    Returns:
        The complete records whose fingerprint is the planned run's: a cut-off line, a run
        of other settings and a record of a version without fingerprints are left out (and
        trained again).
    """
    found: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line being written when the study was stopped
            run = record.get("run") if isinstance(record, dict) else None
            if run in fingerprints and record.get("fingerprint") == fingerprints[run]:
                found[run] = record
    return found


def rebuild_report(out: Path, args: Args, command: str) -> dict[str, Any]:
    """The report of the finished runs in ``out`` (those of ``args``'s plan, in plan order)."""
    from dialogue_gym.study import report

    runs = out / "runs.jsonl"
    if not runs.is_file():
        raise FileNotFoundError(f"no finished study in {out} (no runs.jsonl)")
    if not (out / "baselines.json").is_file():
        # The reference policies are seeded template episodes without training: measured
        # again they are the same numbers, so a folder of records alone can be rebuilt.
        print(f"note: no baselines.json in {out}: measuring the reference policies again")
        _write_atomic(out / "baselines.json", json.dumps(run_baselines(settings_of(args), args)))
    specs = plan(args)
    found = _finished_runs(runs, {s.run_id: run_fingerprint(s, args) for s in specs})
    records = [found[s.run_id] for s in specs if s.run_id in found]
    if not records:
        saved = _saved_args(out)
        differences = settings_differences(saved, args) if saved is not None else []
        why = f" (the folder was run with other settings: {'; '.join(differences)})"
        raise ValueError(f"none of the planned runs is in {runs}" + (why if differences else ""))
    baselines = json.loads((out / "baselines.json").read_text(encoding="utf-8"))
    elapsed, load = 0.0, None
    for name in ("timing.json", "summary.json"):  # summary.json: a folder of an older version
        try:
            timing = json.loads((out / name).read_text(encoding="utf-8"))
            elapsed, load = float(timing.get("elapsed_s", 0.0)), timing.get("load")
            break
        except (OSError, ValueError, AttributeError, TypeError):
            continue  # missing, or cut off when the study was killed
    summary = report.write(out, records, baselines, args, elapsed, command, load=load)
    print(report.terminal_summary(summary, out, len(records), elapsed))
    print(f"\nrebuilt {out}/report.md from {len(records)} of {len(plan(args))} planned runs")
    return summary


def command_line(args: Args) -> str:
    """The ``dialogue-gym study`` command that reproduces ``args`` (non-default flags only).

    Example:
        >>> command_line(Args(quick=True, seeds=4))
        'dialogue-gym study --seeds 4 --quick'
    """
    flags = []
    for f in dataclasses.fields(Args):
        value = getattr(args, f.name)
        if f.name in ("progress", "report_only", "resume") or value == getattr(Args(), f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{f.name.replace('_', '-')}")
        elif isinstance(value, tuple):
            flags.append(" ".join([flag, *map(str, value)]))
        else:
            flags.append(f"{flag} {value}")
    return " ".join(["dialogue-gym study", *flags])


def parse_args(argv: list[str] | None = None) -> Args:
    """The command line, from the dataclass (tyro, as CleanRL).

    The ``--plugins`` modules are imported first, so the rewards and learners they register
    are among the choices ``--help`` shows.
    """
    import tyro

    argv = list(sys.argv[1:] if argv is None else argv)
    load_plugins(_plugins_in(argv))
    parsed = tyro.cli(_command_line_args(), args=argv, description=__doc__.split("\n\n")[0])
    return Args(**{f.name: getattr(parsed, f.name) for f in dataclasses.fields(Args)})


def _plugins_in(argv: list[str]) -> tuple[str, ...]:
    """The module names given to ``--plugins`` in ``argv``."""
    found: list[str] = []
    taking = False
    for token in argv:
        if token.startswith("--plugins="):
            found.extend(token.partition("=")[2].split())
            taking = False
        elif token == "--plugins":
            taking = True
        elif token.startswith("-"):
            taking = False
        elif taking:
            found.append(token)
    return tuple(found)


def _choices(registry: Registry[Any]) -> str:
    return "{" + ",".join(registry) + "}"


def _command_line_args() -> type:
    """``Args`` whose ``--help`` lists the registered rewards and learners as the choices."""
    import tyro

    def listed(registry: Registry[Any], help_text: str, many: bool = True) -> Any:
        metavar = _choices(registry) + (" [...]" if many else "")
        kind = tuple[str, ...] if many else str
        return Annotated[kind, tyro.conf.arg(metavar=metavar, help=help_text)]

    overrides = [
        (
            "rewards",
            Annotated[
                tuple[str, ...],
                tyro.conf.arg(
                    metavar="{" + ",".join(reward_choices()) + "} [...]",
                    help=REWARDS_HELP,
                ),
            ],
            field(default_factory=study_rewards),
        ),
        ("learners", listed(LEARNERS, "learners to train"), field(default_factory=study_learners)),
        (
            "sweep_learner",
            listed(LEARNERS, "the learner of the sweep", many=False),
            field(default=Args.sweep_learner),
        ),
    ]
    cls = dataclasses.make_dataclass("Args", overrides, bases=(Args,))
    cls.__doc__ = Args.__doc__
    cls.__module__ = __name__
    return cls


def __getattr__(name: str) -> Any:
    # The study's lists, read from the registries on access (see the top of the module).
    if name == "STUDY_REWARDS":
        return study_rewards()
    if name == "STUDY_LEARNERS":
        return study_learners()
    if name == "BASELINES":
        return baselines()
    if name == "HIERARCHICAL":
        return {learner for learner in LEARNERS if is_hierarchical(learner)}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    main(parse_args())
