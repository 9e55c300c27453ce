"""The study's learners: a registry of SB3-style model builders, and the plugins that add to it.

``register_learner(name, build, hierarchical=False)`` adds one; ``--plugins`` imports modules
(in every worker process) that may register learners and rewards. Hyperparameters are sized
for short dialogue episodes; the hierarchical learner is PPO over
:class:`~dialogue_gym.agents.options.Options`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym

from dialogue_gym import plugins
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
    """Import the ``--plugins`` modules (each may register rewards and learners): a module name
    or the path of a ``.py`` file (:func:`dialogue_gym.plugins.load_plugins`).

    Raises:
        InvalidArgument: A module that cannot be imported (``study.plugins``, naming it and why).
    """
    plugins.load_plugins(modules, owner="study")


def study_learners() -> tuple[str, ...]:
    """The learners the full study trains by default: every registered one."""
    return LEARNERS.names()
