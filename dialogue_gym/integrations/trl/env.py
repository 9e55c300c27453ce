"""The simulated user both forms play: an in-process env, or a session of a served one.

:func:`make_dialogue_env` is ``gym.make`` with the adapter's defaults; with ``base_url=`` a
form plays a ``dialogue-gym serve --env EmpathyDialogueText-v0`` server instead, one
:class:`~dialogue_gym.integrations.openenv.RemoteDialogueEnv` session per conversation, after
:func:`remote_settings` has checked that the server's user is the one the form would make in
process (the same arguments give the same conversations, in process or over the wire).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym

import dialogue_gym  # noqa: F401  (registers the envs)
from dialogue_gym.core.validation import InvalidArgument
from dialogue_gym.envs.text import HEARING_ENV_ID

if TYPE_CHECKING:  # pragma: no cover
    from dialogue_gym.integrations.openenv import RemoteDialogueEnv

__all__ = [
    "DEFAULT_ENV_KWARGS",
    "ENV_ID",
    "checked_client_kwargs",
    "make_dialogue_env",
    "remote_env",
    "remote_settings",
]

#: The env every form plays.
ENV_ID = HEARING_ENV_ID
#: What the policy talks to unless told otherwise: the fast template voice, the lexical
#: recogniser, 4 turns (the CPU budget; RLVER uses 8).
DEFAULT_ENV_KWARGS: dict[str, Any] = {"voice": "template", "max_turns": 4}


def make_dialogue_env(
    split: str = "train",
    reward: str | None = "sparse",
    reward_kwargs: Mapping[str, Any] | None = None,
    **env_kwargs: Any,
) -> gym.Env:
    """``gym.make(ENV_ID, ...)`` with :data:`DEFAULT_ENV_KWARGS`, the split's cards and a reward.

    Args:
        split: The scenario cards (``"train"``, ``"test"``, ``"all"`` or a folder).
        reward: A name in ``dialogue_gym.rewards.REWARDS`` (``None``: the env's own bonus).
        reward_kwargs: The reward wrapper's arguments.
        **env_kwargs: Other arguments of the text env (they override the defaults), and
            ``env_id``: :data:`ENV_ID` (``EmpathyDialogueText-v1``, the hearing user) by
            default, ``"EmpathyDialogueText-v0"`` for the user who hears the strategy alone.
    """
    kwargs = {**DEFAULT_ENV_KWARGS, "scenarios": split, **env_kwargs}
    env_id = kwargs.pop("env_id", ENV_ID)
    return gym.make(env_id, reward=reward, reward_kwargs=dict(reward_kwargs or {}), **kwargs)


def remote_settings(
    owner: str,
    base_url: Any,
    reward: str | None,
    reward_kwargs: Mapping[str, Any] | None,
    env_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """Check the server at ``base_url`` plays :data:`ENV_ID` with the settings a form would
    give ``gym.make`` in process (:data:`DEFAULT_ENV_KWARGS` under ``env_kwargs``, the reward);
    return its ``GET /sessions`` answer. ``scenarios`` is left to the server: a row's card
    must be one of the server's (an unknown card is the env's error at ``reset``).

    Args:
        owner: The form checking (named in the errors).
        base_url: The server's URL.
        reward: The form's reward name.
        reward_kwargs: The reward wrapper's arguments.
        env_kwargs: The form's other env arguments (``env_id`` included, if any).

    Raises:
        ModuleNotFoundError: OpenEnv is not installed.
        InvalidArgument: No server answers, it serves another env id, or a setting differs.
    """
    if importlib.util.find_spec("openenv") is None:
        raise ModuleNotFoundError(
            f"{owner}(base_url=...) needs OpenEnv (openenv-core): pip install 'dialogue_gym[serve]'",
            name="openenv",
        )
    from dialogue_gym.integrations.openenv import check_server

    kwargs = {**DEFAULT_ENV_KWARGS, **env_kwargs}
    env_id = kwargs.pop("env_id", ENV_ID)
    expected = {
        "reward": reward,
        "reward_kwargs": dict(reward_kwargs or {}),
        **{k: v for k, v in kwargs.items() if k != "scenarios"},
    }
    return check_server(base_url, env_id, expected, owner=owner)


def checked_client_kwargs(owner: str, value: Any) -> dict[str, Any]:
    """``client_kwargs`` as a dict, or a clear error.

    Example:
        >>> checked_client_kwargs("DialogueRollout", None)
        {}
    """
    if value is not None and not isinstance(value, Mapping):
        raise InvalidArgument(
            owner,
            "client_kwargs",
            value,
            "must be a mapping of DialogueEnvClient options (message_timeout_s, "
            "connect_timeout_s, max_message_size_mb)",
        )
    return dict(value or {})


def remote_env(base_url: str, client_kwargs: Mapping[str, Any] | None) -> RemoteDialogueEnv:
    """A new session of the server at ``base_url``, in Gymnasium's blocking form."""
    from dialogue_gym.integrations.openenv import RemoteDialogueEnv

    return RemoteDialogueEnv(base_url, **dict(client_kwargs or {}))
