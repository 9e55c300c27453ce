"""Registration of the package's environments with Gymnasium: one :func:`register_env` line each.

Adding an environment id is one module (an env class, or a subclass with other defaults)
plus one line, here or in the plugin's own module::

    register_env("MyDialogue-v0", "my_package.my_env:MyDialogueEnv", max_turns=6)

after which ``gym.make("MyDialogue-v0", reward=..., **kwargs)`` and ``gym.make_vec`` build it.
:data:`ENVS` (a :class:`~dialogue_gym.registry.Registry`) lists the ids with their env class
and default kwargs; the CLI and the docs read it.

Example:
    >>> ENVS.names()[:2]
    ('EmpathyDialogue-v0', 'EmpathyDialogueText-v0')
    >>> ENVS.entry("EmpathyDialogueText-v0").meta["env_class"]
    'dialogue_gym.envs.text:EmpathyDialogueTextEnv'
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from dialogue_gym.envs.vector import EmpathyDialogueVectorEnv
from dialogue_gym.registry import Registry

__all__ = [
    "ENVS",
    "ENV_IDS",  # noqa: F822 (module __getattr__)
    "RewardedEnvFactory",
    "register_env",
    "register_envs",
    "unregister_env",
]


class RewardedEnvFactory:
    """An entry point: builds ``env_class(**env_kwargs)`` and wraps it with a named reward.

    ``gym.make(env_id, reward=..., reward_kwargs={...}, **env_kwargs)`` calls it;
    ``env.unwrapped`` stays the env class. ``env_class`` (imported on first use) is what the
    docs' env cards and ``gym.make``'s render-mode check read.

    Args:
        env_class: ``"module:Class"`` of the env.
    """

    def __init__(self, env_class: str) -> None:
        self.env_class_path = env_class

    @property
    def env_class(self) -> type[gym.Env]:
        module, _, name = self.env_class_path.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def metadata(self) -> dict[str, Any]:
        return self.env_class.metadata

    def __call__(
        self,
        reward: str | None = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        **env_kwargs: Any,
    ) -> gym.Env:
        """The env, wrapped with ``reward`` (see ``dialogue_gym.rewards.REWARDS``; ``None``:
        the env's own coarse bonus, no wrapper)."""
        from dialogue_gym.rewards import apply_reward

        return apply_reward(self.env_class(**env_kwargs), reward, reward_kwargs)


#: Env id -> ``gym.make(env_id, **kwargs)``; each entry's ``meta`` holds ``env_class``
#: (``"module:Class"``), ``entry_point`` (Gymnasium's) and ``kwargs`` (the id's defaults).
ENVS: Registry[gym.Env] = Registry("env id")


def _factory_name(env_class: str) -> str:
    """``"pkg.mod:MyDialogueEnv"`` -> ``"make_my_dialogue"`` (unique in this module)."""
    stem = env_class.rpartition(":")[2].rpartition(".")[2].removesuffix("Env") or "env"
    base = "make_" + re.sub(r"(?<!^)(?=[A-Z])", "_", stem).lower()
    name, n = base, 1
    while True:
        existing = globals().get(name)
        if existing is None or (
            isinstance(existing, RewardedEnvFactory) and existing.env_class_path == env_class
        ):
            return name
        n += 1
        name = f"{base}_{n}"


def register_env(env_id: str, env_class: str | type[gym.Env], **kwargs: Any) -> None:
    """Register ``env_id`` with Gymnasium: ``env_class`` wrapped with a named reward.

    ``gym.make(env_id, reward=..., reward_kwargs=..., **env_kwargs)`` builds
    ``env_class(**{**kwargs, **env_kwargs})`` and wraps it with the reward (``"sparse"`` by
    default); ``gym.make_vec(env_id, num_envs=n)`` gives the batched vector env. The entry
    point is a module-level factory of this module (``make_<class name>``), so the spec's
    entry point stays a string and the class is imported on first use. Registering the
    same id again with the same class and kwargs does nothing (a module imported twice).

    Args:
        env_id: The Gymnasium id, e.g. ``"MyDialogue-v0"``.
        env_class: ``"module:Class"`` (imported on first use) or the class itself.
        **kwargs: The id's default keyword arguments of ``env_class``.

    Raises:
        ValueError: ``env_id`` is already registered with another class or other kwargs.
    """
    if isinstance(env_class, type):
        env_class = f"{env_class.__module__}:{env_class.__qualname__}"
    if not isinstance(env_class, str) or ":" not in env_class:
        raise ValueError(f"env_class must be 'module:Class' or a class, got {env_class!r}")
    if env_id in ENVS:
        meta = ENVS.entry(env_id).meta or {}
        if meta.get("env_class") == env_class and meta.get("kwargs") == kwargs:
            _register_with_gymnasium(env_id)
            return
        raise ValueError(
            f"env id {env_id!r} is already registered (with {meta.get('env_class')} and "
            f"kwargs {meta.get('kwargs')}): unregister_env it first, or pick another id"
        )
    name = _factory_name(env_class)
    if name not in globals():
        globals()[name] = RewardedEnvFactory(env_class)
    ENVS.register(
        env_id,
        functools.partial(gym.make, env_id),
        doc=f"{env_class} with a reward wrapper",
        env_class=env_class,
        entry_point=f"{__name__}:{name}",
        kwargs=dict(kwargs),
    )
    _register_with_gymnasium(env_id)


def _register_with_gymnasium(env_id: str) -> None:
    meta = ENVS.entry(env_id).meta or {}
    if env_id in gym.registry and gym.registry[env_id].entry_point == meta["entry_point"]:
        return  # already there: registering again would warn
    # No TimeLimit: the env truncates at its own max_turns, which gym.make may override.
    # gym.make_vec gets the batched vector env (one LLM call per round for all users).
    gym.register(
        id=env_id,
        entry_point=meta["entry_point"],
        vector_entry_point=functools.partial(EmpathyDialogueVectorEnv, env_id=env_id),
        kwargs=dict(meta["kwargs"]),
    )


def unregister_env(env_id: str) -> None:
    """Remove ``env_id`` from :data:`ENVS` and from Gymnasium's registry (plugins' tests).

    Raises:
        ValueError: Unknown id (the message lists the valid ones).
    """
    ENVS.unregister(env_id)
    gym.registry.pop(env_id, None)


def register_envs() -> None:
    """Make sure every id of :data:`ENVS` is in Gymnasium's registry (idempotent)."""
    for env_id in ENVS:
        _register_with_gymnasium(env_id)


def __getattr__(name: str) -> Any:
    if name == "ENV_IDS":  # read on access, so it lists the ids plugins register too
        return ENVS.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_env("EmpathyDialogue-v0", "dialogue_gym.envs.empathy:EmpathyDialogueEnv")
register_env("EmpathyDialogueText-v0", "dialogue_gym.envs.text:EmpathyDialogueTextEnv")
# The hearing user: how the words are said moves the user, not only the strategy they carry.
register_env(
    "EmpathyDialogueText-v1",
    "dialogue_gym.envs.text:EmpathyDialogueTextEnv",
    listener="embedding",
    recogniser="embedding",
)
# The default env with a harder user (HARD_USER_SIM under any sim the caller passes).
register_env("EmpathyDialogueHard-v0", "dialogue_gym.envs.hard:EmpathyDialogueHardEnv")
