"""The ``environment_factory`` form: the model talks to the user through a ``reply`` tool.

TRL makes one :class:`DialogueToolEnv` per conversation of a generation batch (through the
no-argument callable :meth:`DialogueToolEnv.factory` returns, a :class:`ToolEnvFactory`), calls
its ``reset`` with the dataset row, offers its public methods to the model as tools, and scores
the conversation with ``get_reward``. The chat template must do tools: SmolLM2's does not, so
set :func:`~dialogue_gym.integrations.trl.tool_chat_template` on the tokenizer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from dialogue_gym.envs.text import to_action
from dialogue_gym.integrations.trl.env import (
    checked_client_kwargs,
    make_dialogue_env,
    remote_env,
    remote_settings,
)

if TYPE_CHECKING:  # pragma: no cover
    from dialogue_gym.integrations.openenv import RemoteDialogueEnv

__all__ = ["DialogueToolEnv", "ToolEnvFactory"]


class DialogueToolEnv:
    """An ``environment_factory`` environment: the model speaks to the user through ``reply``.

    TRL creates one per rollout (pooled, reset for each), calls :meth:`reset` with the dataset
    row's columns, exposes :meth:`reply` to the model as a tool, and scores the rollout with
    :meth:`get_reward`. The model must call the tool to talk: the chat template has to do
    tools (:func:`~dialogue_gym.integrations.trl.tool_chat_template`). A rollout that never
    calls ``reply`` has said nothing, and scores the return of no turns (0.0 for every
    built-in reward).

    A served user (``base_url=``, as TRL's OpenEnv examples give their environment class a
    server URL): the conversations are held with the ``dialogue-gym serve --env
    EmpathyDialogueText-v0`` server at ``base_url``, one WebSocket session per instance (TRL
    makes one instance per conversation of a generation batch and reuses them, so the server's
    ``--max-sessions`` must be at least the generation batch size). The session opens at the
    first :meth:`reset` and is kept for the next ones; the factory's :meth:`ToolEnvFactory.close`
    ends every instance's session. ``reward``, ``reward_kwargs`` and ``env_kwargs`` still
    describe the user and are checked against the server's settings when an instance is made.
    (The class has no public ``close``: TRL would offer any public method to the model as a
    tool.)

    Args:
        reward: A name in ``dialogue_gym.rewards.REWARDS``: :meth:`get_reward` is the episode's
            return under it.
        reward_kwargs: The wrapper's arguments.
        base_url: ``None``: an in-process env. Otherwise the URL of a ``dialogue-gym serve
            --env EmpathyDialogueText-v0`` server whose users to talk to.
        client_kwargs: With ``base_url``: the session's
            :class:`~dialogue_gym.integrations.openenv.DialogueEnvClient` options.
        **env_kwargs: Arguments of ``EmpathyDialogueText-v0`` (over
            :data:`~dialogue_gym.integrations.trl.DEFAULT_ENV_KWARGS`).

    Raises:
        InvalidArgument: With ``base_url``: no server answers there, it serves another env id,
            or one of its settings differs from this environment's.

    Example:
        >>> from dialogue_gym.integrations.trl import episode_dataset
        >>> env = DialogueToolEnv(reward="emotion_delta", max_turns=2)
        >>> row = episode_dataset("test", n=1)[0]
        >>> env.reset(**row) is None  # the row's prompt already holds the opening line
        True
        >>> answer = env.reply("That sounds really hard. What happened?")
        >>> isinstance(answer, str), env.done, isinstance(env.get_reward(), float)
        (True, False, True)
    """

    def __init__(
        self,
        reward: str = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.reward = reward
        self.reward_kwargs = dict(reward_kwargs or {})
        self.env_kwargs = env_kwargs
        self.base_url = base_url
        self.client_kwargs = checked_client_kwargs("DialogueToolEnv", client_kwargs)
        self.server: dict[str, Any] | None = None
        if base_url is not None:
            self.server = remote_settings(
                "DialogueToolEnv", base_url, reward, self.reward_kwargs, env_kwargs
            )
        self._envs: dict[str, gym.Env | RemoteDialogueEnv] = {}
        self._env: gym.Env | RemoteDialogueEnv | None = None
        self.transcript: list[dict[str, Any]] = []
        self.episode_return = 0.0
        self.done = False
        self.last_info: dict[str, Any] = {}

    @classmethod
    def factory(
        cls,
        reward: str = "sparse",
        reward_kwargs: Mapping[str, Any] | None = None,
        base_url: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        **env_kwargs: Any,
    ) -> ToolEnvFactory:
        """A no-argument callable for ``GRPOTrainer(environment_factory=...)``.

        Its arguments are the class's. With ``base_url``, the server is checked now (a bad
        URL or a mismatched setting fails here, before the trainer is built), and the
        factory's ``close()`` ends the sessions of every instance it made.
        """
        if base_url is not None:
            checked_client_kwargs(cls.__name__, client_kwargs)
            remote_settings(cls.__name__, base_url, reward, dict(reward_kwargs or {}), env_kwargs)
        return ToolEnvFactory(
            functools.partial(
                cls,
                reward,
                reward_kwargs,
                base_url=base_url,
                client_kwargs=client_kwargs,
                **env_kwargs,
            )
        )

    def _close(self) -> None:
        # Private: TRL offers every public method of the class to the model as a tool.
        envs, self._envs, self._env = self._envs, {}, None
        for env in envs.values():
            env.close()

    def __enter__(self) -> DialogueToolEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def reset(self, **row: Any) -> str | None:
        """Meet the row's user: ``reset(seed=row["seed"], options={"card": row["card"]})``.

        Args:
            **row: The dataset row (``card``, ``seed``, optionally ``split`` and ``prompt``).

        Returns:
            ``None`` when the row's prompt already ends with the user's opening line (as
            :func:`episode_dataset` builds it); otherwise the opening line, which TRL appends
            to the prompt's last message.
        """
        # In process: an env per split. Served: one session whatever the split (the server has
        # one set of cards), opened now and kept for the next episodes.
        split = "" if self.base_url is not None else str(row.get("split", "train"))
        if split not in self._envs:
            if self.base_url is not None:
                self._envs[split] = remote_env(self.base_url, self.client_kwargs)
            else:
                self._envs[split] = make_dialogue_env(
                    split, self.reward, self.reward_kwargs, **self.env_kwargs
                )
        self._env = self._envs[split]
        _, info = self._env.reset(seed=int(row["seed"]), options={"card": str(row["card"])})
        opening = info["user_utterance"]
        self.transcript = [{"role": "user", "content": opening}]
        self.episode_return = 0.0
        self.done = False
        self.last_info = info
        prompt = row.get("prompt")
        if prompt and str(prompt[-1].get("content", "")).endswith(opening):
            return None
        return opening

    def reply(self, message: str) -> str:
        """Say something to the person you are supporting and hear their answer.

        Args:
            message: What you say to them, in your own words.

        Returns:
            What they say back.
        """
        if self._env is None:
            raise RuntimeError("reset() the environment first")
        if self.done:
            raise RuntimeError("The conversation has ended; there is no one to reply to.")
        _, reward, terminated, truncated, info = self._env.step(to_action(str(message)))
        self.episode_return += float(reward)
        self.last_info = info
        self.transcript.append({"role": "assistant", "content": info["agent_utterance"]})
        self.transcript.append({"role": "user", "content": info["user_utterance"]})
        if terminated or truncated:
            self.done = True
            return f"{info['user_utterance']}\n(The conversation has ended.)"
        return info["user_utterance"]

    def get_reward(self) -> float:
        """The episode's return so far under the reward wrapper."""
        return float(self.episode_return)


class ToolEnvFactory:
    """What :meth:`DialogueToolEnv.factory` returns: makes :class:`DialogueToolEnv` instances
    for ``GRPOTrainer(environment_factory=...)`` and remembers them, so that :meth:`close`
    ends their sessions (TRL never closes the environments it makes).

    Args:
        make: A no-argument callable returning a :class:`DialogueToolEnv`.

    Attributes:
        made: Every instance made so far.
    """

    def __init__(self, make: Callable[[], DialogueToolEnv]) -> None:
        self.make = make
        self.made: list[DialogueToolEnv] = []

    def __call__(self) -> DialogueToolEnv:
        env = self.make()
        self.made.append(env)
        return env

    def close(self) -> None:
        """Close every instance's env (served: end its session on the server). The instances
        stay usable, and remembered: TRL keeps them in its pool, and a later ``reset`` opens a
        new session that a later ``close`` ends in turn."""
        for env in self.made:
            # Its context-manager exit: the one way to end its sessions that TRL does not
            # offer the model as a tool.
            env.__exit__(None, None, None)

    def __enter__(self) -> ToolEnvFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
