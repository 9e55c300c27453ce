"""The wire types of the OpenEnv server: actions, the observation and the session's state.

They are OpenEnv's pydantic models (``Action``, ``Observation``, ``State``) with the dialogue's
fields, each documented field by field (the server publishes them as JSON schemas at
``GET /schema``):

- :class:`StrategyAction` for ``EmpathyDialogue-v0``: ``strategy``, an index into
  :data:`~dialogue_gym.STRATEGIES`;
- :class:`UtteranceAction` for ``EmpathyDialogueText-v0``: ``utterance``, the agent's words;
- :class:`DialogueObservation`, both envs: the env's observation ``Dict`` as JSON (lists of
  floats, the one-element ``score`` and ``turn`` as numbers, the text env's ``utterance``),
  ``terminated``/``truncated`` beside OpenEnv's ``done``, the reward, and the env's whole
  ``info`` in JSON form (the transcript as ``info["messages"]``);
- :class:`DialogueState`, the session's episode: its id, steps, card, turn, seed.

Range checks are left to the env on purpose: a strategy of 9 or an utterance with a control
character reaches the env, whose ``ValueError`` (naming the valid range or the bad character)
is what the client gets back. Only a value of the wrong JSON type, a missing field or an
unknown one is refused by pydantic before the env sees it.

Example:
    >>> action = StrategyAction(strategy=2)
    >>> action.to_env(), UtteranceAction(utterance="How are you?").to_env()
    (2, 'How are you?')
    >>> action_class("EmpathyDialogueText-v0").__name__
    'UtteranceAction'
    >>> obs = DialogueObservation(emotion=[0.5] * 8, score=0.32, turn=0.0)
    >>> obs.to_gym()["score"]
    array([0.32], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from dialogue_gym.core.transcript import Transcript

__all__ = [
    "ACTION_CLASSES",
    "DialogueAction",
    "DialogueObservation",
    "DialogueState",
    "StrategyAction",
    "UtteranceAction",
    "action_class",
    "jsonable",
]

#: The keys of the env's observation ``Dict`` that are float vectors, in the env's order.
VECTOR_KEYS = ("emotion", "user_act", "need_cues", "history", "last_act")
#: The keys that are one-element Boxes in the env and plain numbers on the wire.
SCALAR_KEYS = ("score", "turn")


class StrategyAction(Action):
    """An action of ``EmpathyDialogue-v0``: the support strategy to use this turn.

    Example:
        >>> StrategyAction(strategy=0).model_dump(exclude={"metadata"})
        {'strategy': 0}
    """

    strategy: int = Field(
        description="Index of the ESConv support strategy, 0..7 in dialogue_gym.STRATEGIES order "
        "(0 Question, 1 Restatement or Paraphrasing, 2 Reflection of feelings, 3 Self-disclosure, "
        "4 Affirmation and Reassurance, 5 Providing Suggestions, 6 Information, 7 Others). "
        "Out of range: the env's ValueError comes back as an error response."
    )

    def to_env(self) -> int:
        """The action as the env's ``step`` takes it."""
        return self.strategy


class UtteranceAction(Action):
    """An action of ``EmpathyDialogueText-v0``: what the agent says this turn, in its own words.

    Example:
        >>> UtteranceAction(utterance="That sounds hard.").to_env()
        'That sounds hard.'
    """

    utterance: str = Field(
        description="The agent's utterance: at most max_length characters (1000 by default) "
        "of dialogue_gym.envs.text.CHARSET; empty means silence. Too long, or a character "
        "outside the charset: the env's ValueError (naming the character and its position) "
        "comes back as an error response."
    )

    def to_env(self) -> str:
        """The action as the env's ``step`` takes it."""
        return self.utterance


#: Either env's action.
DialogueAction = StrategyAction | UtteranceAction

#: The action class of each env id.
ACTION_CLASSES: dict[str, type[Action]] = {
    "EmpathyDialogue-v0": StrategyAction,
    "EmpathyDialogueText-v0": UtteranceAction,
    "EmpathyDialogueText-v1": UtteranceAction,
}


def action_class(env_id: str) -> type[Action]:
    """The action class the server of ``env_id`` takes.

    Raises:
        ValueError: An env id this server does not know.
    """
    try:
        return ACTION_CLASSES[env_id]
    except KeyError:
        raise ValueError(
            f"no OpenEnv action type for env id {env_id!r}; served ids: {', '.join(ACTION_CLASSES)}"
        ) from None


class DialogueObservation(Observation):
    """What the agent sees after ``reset`` or ``step`` (both envs).

    The first seven fields are the env's observation ``Dict`` (see the env card): float lists
    for the vectors, numbers for ``score`` and ``turn`` (one-element Boxes in process). OpenEnv
    sends ``done`` and ``reward`` beside the observation; ``metadata`` does not travel (OpenEnv
    leaves it out of the wire format), which is why ``info`` is a field of its own.

    Example:
        >>> obs = DialogueObservation(emotion=[0.0] * 8, score=0.5, turn=0.1, done=True,
        ...                           terminated=True, info={"success": True})
        >>> obs.done and obs.terminated and not obs.truncated, obs.info["success"]
        (True, True)
    """

    emotion: list[float] = Field(
        default_factory=list,
        description="Expressed intensities over Plutchik's 8 emotions (dialogue_gym.PLUTCHIK), "
        "each in [0, 1].",
    )
    score: float = Field(default=0.0, description="The user's emotion score / 100, in [0, 1].")
    turn: float = Field(default=0.0, description="Agent turns taken / max_turns, in [0, 1].")
    user_act: list[float] = Field(
        default_factory=list,
        description="One-hot of the user's last act (7, dialogue_gym.USER_ACTS order).",
    )
    need_cues: list[float] = Field(
        default_factory=list,
        description="Evidence revealed so far for each of the 6 needs (dialogue_gym.NEEDS "
        "order), in [0, 1].",
    )
    history: list[float] = Field(
        default_factory=list,
        description="How often the agent used each of the 8 strategies / max_turns.",
    )
    last_act: list[float] = Field(
        default_factory=list,
        description="One-hot of the agent's previous strategy (8; zeros at the start).",
    )
    utterance: str | None = Field(
        default=None,
        description="EmpathyDialogueText-v0 only: the user's last utterance (mapped into the "
        "charset, cut at max_length). None for EmpathyDialogue-v0, whose user's words are in "
        "info['user_utterance'].",
    )
    terminated: bool = Field(
        default=False,
        description="The conversation ended on its own: success (need resolved, emotion >= 70) "
        "or the user left (emotion <= 0).",
    )
    truncated: bool = Field(
        default=False, description="The conversation was cut at max_turns agent turns."
    )
    info: dict[str, Any] = Field(
        default_factory=dict,
        description="The env's info dict in JSON form (tuples as lists, the transcript "
        "info['messages'] as a list of message dicts): the user's words and act, emotion "
        "before and after, the reason, the strategy, reward_components, and at the end "
        "success, user_left and need. The env card lists every key.",
    )

    def to_gym(self) -> dict[str, Any]:
        """The observation as the env returns it in process: ``float32`` arrays (and text).

        Example:
            >>> obs = DialogueObservation(emotion=[0.25] * 8, score=0.4, turn=0.2)
            >>> gym_obs = obs.to_gym()
            >>> gym_obs["emotion"].dtype, gym_obs["turn"].shape, "utterance" in gym_obs
            (dtype('float32'), (1,), False)
        """
        out: dict[str, Any] = {}
        for key in ("emotion", "score", "turn", "user_act", "need_cues", "history", "last_act"):
            value = getattr(self, key)
            out[key] = np.asarray([value] if key in SCALAR_KEYS else value, dtype=np.float32)
        if self.utterance is not None:
            out["utterance"] = self.utterance
        return out

    @classmethod
    def from_step(
        cls,
        obs: Mapping[str, Any],
        info: Mapping[str, Any],
        reward: float | None = None,
        terminated: bool = False,
        truncated: bool = False,
    ) -> DialogueObservation:
        """Build the wire observation from what the env's ``reset`` or ``step`` returned.

        Example:
            >>> import gymnasium as gym
            >>> import dialogue_gym
            >>> env = gym.make("EmpathyDialogue-v0", voice="template", scenarios="test")
            >>> obs, info = env.reset(seed=0)
            >>> wire = DialogueObservation.from_step(obs, info)
            >>> wire.score == float(obs["score"][0]), wire.info["turn"], wire.reward
            (True, 0, None)
        """
        fields: dict[str, Any] = {key: np.asarray(obs[key]).tolist() for key in VECTOR_KEYS}
        for key in SCALAR_KEYS:
            fields[key] = float(np.asarray(obs[key]).reshape(-1)[0])
        return cls(
            **fields,
            utterance=obs.get("utterance"),
            terminated=bool(terminated),
            truncated=bool(truncated),
            done=bool(terminated or truncated),
            reward=None if reward is None else float(reward),
            info=jsonable(info),
        )


class DialogueState(State):
    """The session's episode, what ``GET state`` (the client's ``state()``) returns.

    The hidden need is left out on purpose: it is what the agent has to find out (it is in the
    last step's ``info["need"]`` once the conversation is over).

    Example:
        >>> DialogueState(env_id="EmpathyDialogue-v0").model_dump()["card_id"] is None
        True
    """

    env_id: str = Field(default="", description="The env id this server plays.")
    card_id: str | None = Field(
        default=None, description="The scenario card of the current episode (None before reset)."
    )
    seed: int | None = Field(default=None, description="The seed the episode was reset with.")
    turn: int = Field(default=0, ge=0, description="Agent turns taken in the current episode.")
    max_turns: int = Field(default=0, ge=0, description="Agent turns before truncation.")
    emotion: float | None = Field(
        default=None, description="The user's emotion score, 0-100 (None before reset)."
    )
    done: bool = Field(
        default=False, description="The current episode has ended: reset() to start another."
    )
    episodes: int = Field(default=0, ge=0, description="Episodes started in this session.")


def jsonable(value: Any) -> Any:
    """``value`` with every container made JSON-safe: the form ``info`` travels in.

    Mappings become dicts with string keys, sequences (tuples, transcripts) lists, numpy
    scalars and arrays Python numbers and lists; strings, numbers, booleans and ``None`` stay.
    Anything else becomes its ``repr`` so that one odd value never breaks a step.

    Example:
        >>> jsonable({"acts": ("Question",), 1: np.float32(0.5), "a": np.arange(2)})
        {'acts': ['Question'], '1': 0.5, 'a': [0, 1]}
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple | Transcript):
        return [jsonable(item) for item in value]
    return repr(value)
