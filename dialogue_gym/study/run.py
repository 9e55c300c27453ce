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
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

import gymnasium as gym
import numpy as np

from dialogue_gym.agents.options import HierarchicalPolicy, Options
from dialogue_gym.agents.reference import baselines, make_policy
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.evaluation.episodes import ModelPolicy
from dialogue_gym.registry import Registry
from dialogue_gym.rewards.registry import REWARDS
from dialogue_gym.study import executors
from dialogue_gym.study.learners import (
    LEARNERS,
    is_hierarchical,
    load_plugins,
    make_learner,
    study_learners,
)
from dialogue_gym.study.resume import (
    BUDGETS_KEY,
    USER_BUDGETS_KEY,
    append_record,
    check_resumable,
    finished_runs,
    repair_runs_file,
    run_fingerprint,
    saved_args,
    settings_differences,
    with_folder_settings,
    write_atomic,
)
from dialogue_gym.study.settings import (
    DEFAULT_ENV,
    EVAL_SEED,
    PLATEAU_STEPS,
    REWARD_VARIANTS,
    REWARDS_HELP,
    STUDY_EXTRA,
    SWEEP,
    Args,
    RunSpec,
    budgets_text,
    learner_budgets,
    parse_learner_steps,
    parse_overrides,
    plan,
    quick_args,
    resolve_reward,
    reward_choices,
    settings_of,
    study_rewards,
    user_budgets,
)

# The study's lists are read from the registries when used, so a plugin that registers a
# reward, a learner or a reference policy is in them: ``STUDY_REWARDS`` (every reward whose
# return the metrics' probes measure, the coarse bonus first: the one the others must match),
# ``STUDY_LEARNERS`` (every registered learner), ``BASELINES`` (the reference policies
# registered as baselines) and ``HIERARCHICAL`` (the learners acting through Options) are
# computed on access (see ``__getattr__`` at the end).


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


def main(args: Args) -> dict[str, Any]:
    """Run the study and write its files; returns the summary."""
    from tqdm.auto import tqdm

    from dialogue_gym.study import report

    name = args.name or ("quick" if args.quick else "full")
    command = command_line(args)
    if args.quick:
        args = quick_args(args)
    args = dataclasses.replace(args, name=name)
    if args.report_only:
        args = with_folder_settings(args, saved_args(Path(args.out) / name))
        command = command_line(args) + " --report-only"
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
        finished = finished_runs(runs_path, {s.run_id: run_fingerprint(s, args) for s in specs})
    print(describe_plan(args, specs, len(finished), out), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    # With the budgets each learner got: --budgets plateau's table may change between versions.
    recorded = dataclasses.asdict(args) | {
        BUDGETS_KEY: learner_budgets(args),
        USER_BUDGETS_KEY: user_budgets(args),
    }
    write_atomic(out / "args.json", json.dumps(recorded, indent=2))
    load = [_load_average()]
    started = time.perf_counter()
    baselines = run_baselines(settings_of(args), args)
    write_atomic(out / "baselines.json", json.dumps(baselines))
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
    write_atomic(out / "timing.json", json.dumps({"elapsed_s": elapsed, "load": load}))
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
        write_atomic(out / "baselines.json", json.dumps(run_baselines(settings_of(args), args)))
    specs = plan(args)
    found = finished_runs(runs, {s.run_id: run_fingerprint(s, args) for s in specs})
    records = [found[s.run_id] for s in specs if s.run_id in found]
    if not records:
        saved = saved_args(out)
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
