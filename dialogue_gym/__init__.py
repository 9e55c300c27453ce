"""dialogue_gym: Gymnasium environments for multi-turn dialogue RL with a simulated user.

Importing the package registers its environments:

    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogue-v0", voice="template")
    >>> obs, info = env.reset(seed=0)
    >>> sorted(obs)
    ['emotion', 'history', 'last_act', 'need_cues', 'score', 'turn', 'user_act']
"""

from __future__ import annotations

from dialogue_gym import _compat, registration
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.core.vocabulary import NEEDS, PLUTCHIK, STRATEGIES, USER_ACTS
from dialogue_gym.registration import register_env, register_envs

__version__ = "0.1.0"

__all__ = [
    "ENV_IDS",  # noqa: F822 (module __getattr__: read on access, so plugins' ids are listed)
    "InvalidArgument",
    "NEEDS",
    "PLUTCHIK",
    "STRATEGIES",
    "USER_ACTS",
    "SimConfig",
    "__version__",
    "register_env",
]


def __getattr__(name: str) -> object:
    if name == "ENV_IDS":
        return registration.ENV_IDS
    raise AttributeError(f"module 'dialogue_gym' has no attribute {name!r}")


_compat.install()  # old module paths (dialogue_gym.env, ...) keep working for one release
register_envs()
