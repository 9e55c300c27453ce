"""Code above the env uses only the published simulator view, never ``.core`` or private names.

The view is ``info`` plus the names of ``env.unwrapped`` in ``SIMULATOR_VIEW`` (and, on the
look-ahead user model ``env.unwrapped.fork_user()`` returns, ``USER_MODEL_VIEW``): see
``dialogue_gym/envs/empathy.py``. Two checks:

- statically, over the source of every layer above the env: no attribute named ``core`` is
  read, and no private attribute (leading underscore) of another object is touched;
- at run time, every attribute those layers touch on the env and on user models, while
  every registered reward, the reference policies, the planner and the metrics' probes play
  an episode, is in the view; nothing there writes to a user's state.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.core.affect import USER_MODEL_VIEW, AffectiveCore, UserState
from dialogue_gym.envs.empathy import SIMULATOR_VIEW, EmpathyDialogueEnv
from dialogue_gym.envs.text import TEXT_SIMULATOR_VIEW
from dialogue_gym.envs.vector import VECTOR_VIEW, EmpathyDialogueVectorEnv

ROOT = Path(__file__).resolve().parents[1]

#: The layers above the env, as packages (run-time check) and as source files (static check).
ABOVE_THE_ENV = ("rewards", "agents", "evaluation", "study", "integrations", "cli", "ui")
CALLERS = tuple(f"dialogue_gym.{name}" for name in ABOVE_THE_ENV)

#: Private names of another object that the static check lets through, each with its reason.
ALLOWED_PRIVATE = {
    # Gymnasium's RecordConstructorArgs protocol: how a wrapper's arguments reach env.spec
    # (rewards/base.py's wrapper_spec reads it off the wrapper it builds the spec for).
    "_saved_kwargs",
}
#: Comparison dunders, whose second argument is another instance of the same class.
_PEER_METHODS = {"__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"}


def source_files() -> list[Path]:
    files: list[Path] = []
    for name in ABOVE_THE_ENV:
        folder = ROOT / "dialogue_gym" / name
        if folder.is_dir():
            files += sorted(folder.rglob("*.py"))
    files += [ROOT / "dialogue_gym" / "registration.py"]
    files += sorted((ROOT / "benchmarks").glob("*.py"))
    return files


def _module_names(tree: ast.Module) -> set[str]:
    """Names the module itself defines at top level (its classes, functions, globals)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def violations(source: str, filename: str = "<string>") -> list[str]:
    """Where ``source`` reads ``.core`` or touches a private attribute of another object.

    ``self``, ``cls``, a comparison dunder's other operand and the module's own top-level
    names may have their private attributes used; ``getattr``/``hasattr``/``setattr`` with
    a literal name count as attribute accesses.

    Example:
        >>> violations("x = env.unwrapped.core.state")
        ['<string>:1: env.unwrapped.core']
        >>> violations("def f(self):\\n    return self._a, other._b")
        ['<string>:2: other._b']
    """
    tree = ast.parse(source, filename)
    own = _module_names(tree) | {"self", "cls"}
    found: list[str] = []

    def bad(name: str) -> bool:
        private = name.startswith("_") and not (name.startswith("__") and name.endswith("__"))
        return name == "core" or (private and name not in ALLOWED_PRIVATE)

    def visit(node: ast.AST, allowed: set[str]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args
            if node.name in _PEER_METHODS and len(args) >= 2:
                allowed = allowed | {args[1].arg}
        if isinstance(node, ast.Attribute) and bad(node.attr):
            base = node.value
            if node.attr == "core" or not (isinstance(base, ast.Name) and base.id in allowed):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and bad(node.args[1].value)
        ):
            target = node.args[0]
            if node.args[1].value == "core" or not (
                isinstance(target, ast.Name) and target.id in allowed
            ):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
        for child in ast.iter_child_nodes(node):
            visit(child, allowed)

    visit(tree, own)
    return found


def test_the_static_check_catches_what_it_must():
    assert violations("fork.core.noise = past") == ["<string>:1: fork.core"]
    assert violations("n = getattr(base, 'core', None)") == [
        "<string>:1: getattr(base, 'core', None)"
    ]
    assert violations("seeds = venv._seeds") == ["<string>:1: venv._seeds"]
    assert violations("class A:\n    def __eq__(self, other):\n        return other._x") == []
    assert violations("_T = 1\ny = _T._cache") == []
    assert violations("spec = wrapper._saved_kwargs") == []


def test_no_layer_above_the_env_reads_core_or_private_attributes():
    files = source_files()
    assert any(f.parent.name == "rewards" for f in files) and any(
        f.parent.name == "benchmarks" for f in files
    )
    found = [v for f in files for v in violations(f.read_text(), str(f.relative_to(ROOT)))]
    assert not found, "use the published simulator view (envs/empathy.py):\n" + "\n".join(found)


# ---------------------------------------------------------------------------- at run time


@dataclasses.dataclass
class Touches:
    """Attributes touched from the layers above the env: ``(module, class, name, kind)``."""

    seen: set[tuple[str, str, str, str]] = dataclasses.field(default_factory=set)

    def names(self, cls: type, kind: str = "get") -> set[str]:
        """The names touched on ``cls``'s instances, Python's own protocol (dunders) aside."""
        return {
            n
            for _, c, n, k in self.seen
            if c == cls.__name__ and k == kind and not (n.startswith("__") and n.endswith("__"))
        }


@contextlib.contextmanager
def recording(*also: type) -> Iterator[Touches]:
    """Record every attribute read or written on the env, the user model and its state by a
    frame of a module above the env (the env's own code and Gymnasium's are not counted), and
    on the instances of the classes in ``also``."""
    touches = Touches()

    def caller() -> str | None:
        module = sys._getframe(2).f_globals.get("__name__", "")
        return module if module.startswith(CALLERS) else None

    def patch(cls: type, watch_reads: bool) -> list[tuple[type, str, Any]]:
        keys = ("__getattribute__", "__setattr__") if watch_reads else ("__setattr__",)
        saved = [(cls, key, cls.__dict__.get(key)) for key in keys]
        get, put = cls.__getattribute__, cls.__setattr__

        def getattribute(obj: Any, name: str) -> Any:
            module = caller()
            if module is not None:
                touches.seen.add((module, cls.__name__, name, "get"))
            return get(obj, name)

        def setattr_(obj: Any, name: str, value: Any) -> None:
            module = caller()
            if module is not None:
                touches.seen.add((module, cls.__name__, name, "set"))
            put(obj, name, value)

        if watch_reads:
            cls.__getattribute__ = getattribute  # type: ignore[method-assign]
        cls.__setattr__ = setattr_  # type: ignore[method-assign]
        return saved

    saved = patch(EmpathyDialogueEnv, True) + patch(AffectiveCore, True)
    saved += patch(UserState, False)  # its fields are for reading
    for cls in also:
        saved += patch(cls, True)
    try:
        yield touches
    finally:
        for cls, key, value in saved:
            if value is None:
                delattr(cls, key)
            else:
                setattr(cls, key, value)


def play(env: gym.Env, policy: Any, seed: int = 0) -> None:
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(seed=seed)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(policy(obs))
        done = terminated or truncated


def test_the_recorder_sees_what_a_layer_above_touches():
    from dialogue_gym.rewards import multi_turn

    env = gym.make("EmpathyDialogue-v0", voice="template", reward=None)
    env.reset(seed=0)
    with recording() as touches:
        # Code whose globals are a reward module's, as if it were written there.
        code = "x = env.unwrapped.core.state; env.unwrapped.core.noise = [0.0]"
        exec(code, {**vars(multi_turn), "env": env})
    assert {"core"} <= touches.names(EmpathyDialogueEnv)
    assert "noise" in touches.names(AffectiveCore, "set")
    assert EmpathyDialogueEnv.__getattribute__ is object.__getattribute__  # restored


def test_rewards_agents_and_metrics_touch_only_the_published_view():
    from dialogue_gym.agents.goals import GoalConditioned
    from dialogue_gym.agents.planner_realiser import PlannerRealiserAgent
    from dialogue_gym.agents.planning import MCTSPlanner
    from dialogue_gym.agents.reference import RandomPolicy, StageHeuristicPolicy, make_policy
    from dialogue_gym.evaluation import ALL_REWARDS, evaluate
    from dialogue_gym.evaluation.metrics import compute_metrics
    from dialogue_gym.evaluation.metrics.qa import qa_consistency
    from dialogue_gym.rewards import REWARDS

    kwargs = {"voice": "template", "scenarios": "test", "max_turns": 6}
    special = {
        "composite": {"weights": {"sparse": 1.0, "emotion_delta": 0.02, "multi_turn": 0.5}},
    }
    with recording() as touches:
        for name in REWARDS:
            env = gym.make(
                "EmpathyDialogue-v0", reward=name, reward_kwargs=special.get(name), **kwargs
            )
            play(env, StageHeuristicPolicy())
            play(env, make_policy("oracle", env), seed=1)
        for reward_kwargs in (
            {"mode": "advantage", "rollout_policy": RandomPolicy(0)},
            {"lookahead_voice": True},
            {"rollout_policy": StageHeuristicPolicy()},
        ):
            env = gym.make(
                "EmpathyDialogue-v0", reward="multi_turn", reward_kwargs=reward_kwargs, **kwargs
            )
            play(env, StageHeuristicPolicy())
        # The metrics' probes: every reward's components, then the metrics themselves.
        results = evaluate("oracle", env_kwargs=kwargs, reward=ALL_REWARDS)
        compute_metrics(results, reference=0.25)
        env = gym.make("EmpathyDialogue-v0", **kwargs)
        qa_consistency(env, StageHeuristicPolicy(), seed=0, card=0, ask_after=1)
        # The planner, on the real env, a few decisions.
        planner = MCTSPlanner(simulations=6, rollout_depth=6, seed=0)
        env.reset(seed=2)
        for _ in range(2):
            env.step(planner.plan(env))
        play(GoalConditioned(gym.make("EmpathyDialogue-v0", **kwargs), kind="emotion"), lambda o: 0)
        text = gym.make("EmpathyDialogueText-v0", **kwargs)
        agent = PlannerRealiserAgent(StageHeuristicPolicy(), realiser="template")
        obs, _ = text.reset(seed=0)
        agent.reset(seed=0)
        obs, *_, info = text.step(agent.act(text, obs))
        agent.observe(info)

    env_names = touches.names(EmpathyDialogueEnv)
    user_names = touches.names(AffectiveCore)
    assert {"fork_user", "episode_key", "observe", "max_turns"} <= env_names  # it saw them
    assert {"state", "step"} <= user_names
    assert env_names <= set(TEXT_SIMULATOR_VIEW), sorted(env_names - set(TEXT_SIMULATOR_VIEW))
    assert env_names - {"max_length"} <= set(SIMULATOR_VIEW)
    assert user_names <= set(USER_MODEL_VIEW), sorted(user_names - set(USER_MODEL_VIEW))
    writes = {(m, c, n) for m, c, n, k in touches.seen if k == "set"}
    assert not writes, f"layers above the env wrote to the simulator: {sorted(writes)}"


def test_code_above_the_vector_env_touches_only_its_published_view():
    from fake_backends import ScriptedBackend

    from dialogue_gym.evaluation.throughput import vec_row
    from dialogue_gym.integrations.sb3 import SB3VecEnv

    with recording(EmpathyDialogueVectorEnv) as touches:
        # The throughput benchmark's batched row (it counts backend calls) ...
        vec_row(ScriptedBackend(lambda chat: "Fine, thanks."), users=2, rounds=1, max_tokens=4)
        # ... and SB3's adapter, which steps the single users.
        venv = SB3VecEnv(gym.make_vec("EmpathyDialogue-v0", num_envs=2, voice="template"))
        venv.seed(0)
        venv.reset()
        venv.step(np.array([0, 1]))
        venv.get_attr("max_turns")
        venv.close()
    names = touches.names(EmpathyDialogueVectorEnv)
    assert {"envs", "backend_calls"} <= names  # it saw them
    assert names <= set(VECTOR_VIEW), sorted(names - set(VECTOR_VIEW))
    assert not touches.names(EmpathyDialogueVectorEnv, "set")


def test_user_model_copies_are_complete_and_independent():
    # The look-ahead's fast copies (field by field) must carry every field of the state.
    env = gym.make("EmpathyDialogue-v0", voice="template", reward=None)
    env.reset(seed=0)
    for act in (0, 1, 2):
        env.step(act)
    base = env.unwrapped
    user = base.fork_user()
    live = base.fork_user()
    assert vars(user.state) == vars(live.state) and list(vars(user.state)) == [
        f.name for f in dataclasses.fields(UserState)
    ]
    assert set(vars(user)) == set(vars(AffectiveCore(base.card, base.sim_config, ())))
    before = base.observe()
    for _ in range(3):
        user.step(5)
    assert all(np.array_equal(before[k], base.observe()[k]) for k in before)
    assert user.state.act_counts != base.fork_user().state.act_counts
    noisy = base.fork_user(noise=[3.0] * base.max_turns)
    assert noisy.step(0).change != base.fork_user().step(0).change or base.emotion in (0, 100)


def test_episode_key_names_the_card_and_the_noise():
    env = gym.make("EmpathyDialogue-v0", voice="template", reward=None)
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.episode_key()
    env.reset(seed=0)
    key = env.unwrapped.episode_key()
    assert key.endswith(env.unwrapped.card.id.encode())
    assert len(key) == 8 * env.unwrapped.max_turns + len(env.unwrapped.card.id.encode())
    env.reset(seed=0)
    assert env.unwrapped.episode_key() == key
    env.reset()
    assert env.unwrapped.episode_key() != key
