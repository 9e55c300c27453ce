"""The study's settings: its arguments (``Args``), the reward labels, the per-user plateau
budgets, and the plan they make (one ``RunSpec`` per run, in a fixed order).

Everything here is data about what the study will run; nothing trains. ``plan(args)`` is the
grid: the main setting for each ``--envs`` user, then the simulator sweep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.registry import Registry
from dialogue_gym.rewards.registry import REWARDS, reward_probes
from dialogue_gym.study.learners import LEARNERS, study_learners

#: Study reward labels that stand for a registered reward with fixed arguments: a
#: :class:`~dialogue_gym.registry.Registry` whose entries build ``(reward, reward_kwargs)``
#: (:func:`resolve_reward` reads it; :func:`register_reward_variant` adds one).
#: ``multi_turn_value`` is CollabLLM's reward paid in its value form (the look-ahead's value
#: every turn, so a longer conversation earns more), run beside ``multi_turn`` (the advantage
#: form, the faithful one in a multi-step MDP): docs/rewards.md.
REWARD_VARIANTS: Registry[tuple[str, dict[str, Any]]] = Registry("study reward variant")


def register_reward_variant(label: str, reward: str, **reward_kwargs: Any) -> None:
    """Add a study reward label: ``reward`` (a registered name) with fixed ``reward_kwargs``.

    The study trains ``gym.make(..., reward=reward, reward_kwargs=reward_kwargs)`` under
    ``label`` and lists the label right after ``reward`` among its default rewards.

    Raises:
        InvalidArgument: ``label`` is taken (a reward or a variant), or ``reward`` is not a
            registered reward.

    Example:
        >>> with REWARD_VARIANTS.restoring():
        ...     register_reward_variant("next_turn_dpdp", "next_turn", values={"better": 0.1})
        ...     study_rewards()[study_rewards().index("next_turn") + 1]
        'next_turn_dpdp'
        >>> "next_turn_dpdp" in REWARD_VARIANTS
        False
    """
    if label in REWARDS or label in REWARD_VARIANTS:
        raise InvalidArgument(
            "register_reward_variant", "label", label, "must be a name no reward or variant has"
        )
    if reward not in REWARDS:
        raise InvalidArgument(
            "register_reward_variant", "reward", reward, f"must be one of {', '.join(REWARDS)}"
        )
    kwargs = dict(reward_kwargs)
    REWARD_VARIANTS.register(
        label, lambda: (reward, dict(kwargs)), doc=f"{reward} {kwargs}", reward=reward
    )


register_reward_variant("multi_turn_value", "multi_turn", mode="value")


def variant_base(label: str) -> str:
    """The registered reward a study variant stands for.

    Example:
        >>> variant_base("multi_turn_value")
        'multi_turn'
    """
    return REWARD_VARIANTS.build(label)[0]


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
        return REWARD_VARIANTS.build(label)
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
        out.extend(label for label in REWARD_VARIANTS if variant_base(label) == name)
    return tuple(out)


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
    """train nothing: rebuild the report from <out>/<name>/runs.jsonl (e.g. after a crash);
    the settings not given are read from the folder's args.json"""
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
    # The hard user's, by the same rules, measured on the hard user (2026-12-07, same machine
    # kind; budgets as asked, evaluations every 6k up to 96k, 4 seeds: ``dialogue-gym study
    # --envs EmpathyDialogueHard-v0 --rewards sparse --learners ppo a2c dqn recurrent_ppo hppo
    # --seeds 4 --steps 96000 --eval-points 16``). ppo: 60k (its mean flattens at 42-44%: two
    # seeds learn, 79-96%, two never leave 0%). a2c: no plateau within 96k (the mean still
    # climbs, 60-68% over the last four evaluations): 96k, the most measured. dqn: never learns
    # (peak 32% at 12k, 0% from 30k on): 60k, as on the default user. hppo: its peak, 12k (47%;
    # three seeds of four end at 0-1%, the mean falls to 22%). recurrent_ppo: two seeds
    # measured (its 96k runs took 53 min each on the shared cores), both at 0% at every
    # evaluation to 96k: it never learns the bonus here, and keeps the default user's 54k.
    "EmpathyDialogueHard-v0": {
        "ppo": 60_000,
        "a2c": 96_000,
        "dqn": 60_000,
        "recurrent_ppo": 54_000,
        "hppo": 12_000,
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
