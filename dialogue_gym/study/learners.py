"""The study's learners: a registry of SB3-style model builders, and the plugins that add to it.

``register_learner(name, build, hierarchical=False)`` adds one; ``--plugins`` imports modules
(in every worker process) that may register learners and rewards. Hyperparameters are sized
for short dialogue episodes; the hierarchical learner is PPO over
:class:`~dialogue_gym.agents.options.Options`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.registry import Registry


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


def study_learners() -> tuple[str, ...]:
    """The learners the full study trains by default: every registered one."""
    return LEARNERS.names()
