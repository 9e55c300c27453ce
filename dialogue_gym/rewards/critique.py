"""CritiqueFeedback: the user's reason for their change of feeling, as feedback to the agent."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec

from dialogue_gym.rewards.base import RecordsArguments, wrapper_spec

#: The appraisal's reasons are the user's, in the first person, about the agent ("they"):
#: feedback speaks to the agent ("you") about the user ("they").
_SWAP = {
    "they": "you",
    "them": "you",
    "their": "your",
    "they're": "you're",
    "they've": "you've",
    "i": "they",
    "me": "them",
    "my": "their",
    "i'm": "they're",
    "i've": "they've",
    "i'd": "they'd",
    "i'll": "they'll",
    "myself": "themselves",
}
_WORD = re.compile(
    r"\b(?:" + "|".join(sorted(map(re.escape, _SWAP), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def _swap(match: re.Match[str]) -> str:
    new = _SWAP[match.group(0).lower()]
    before = match.string[: match.start()].rstrip()
    starts_sentence = not before or before[-1] in ".!?"
    return new[:1].upper() + new[1:] if starts_sentence else new


def as_feedback(reason: str) -> str:
    """Rephrase a user's first-person reason as feedback addressed to the agent.

    Example:
        >>> as_feedback("They jumped to advice before they understood what I'm going through.")
        "You jumped to advice before you understood what they're going through."
        >>> as_feedback("They asked about it, so I could say more. I told them something.")
        'You asked about it, so they could say more. They told you something.'
    """
    text = _WORD.sub(_swap, reason)
    return text[:1].upper() + text[1:]


class CritiqueFeedback(gym.Wrapper, RecordsArguments):
    """Puts the appraisal's natural-language reason, as feedback to the agent, in ``info["critique"]``.

    Each step's ``info["critique"]`` says what the agent's strategy did to the user's emotion
    and why, in the second person: ``"Question: emotion 40.0 -> 43.2 (+3.2). You asked about it,
    so they could say more."`` For agents that learn from language (an LLM policy reading
    critiques, reflection-style). The reward, observation and dynamics are unchanged.

    Args:
        env: The env to wrap.

    Example:
        >>> import gymnasium as gym
        >>> import dialogue_gym
        >>> env = CritiqueFeedback(gym.make("EmpathyDialogue-v0", voice="template"))
        >>> _ = env.reset(seed=0)
        >>> info = env.step(0)[-1]
        >>> info["critique"].startswith("Question: emotion ")
        True
    """

    arguments = {}  # none but the env: declared, so a new argument must declare its spec

    def __init__(self, env: gym.Env) -> None:
        gym.Wrapper.__init__(self, env)

    @property
    def spec(self) -> EnvSpec | None:
        if self._cached_spec is None:
            self._cached_spec = wrapper_spec(self)
        return self._cached_spec

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        before, after = info["emotion_before"], info["emotion"]
        info["critique"] = (
            f"{info['strategy']}: emotion {before:.1f} -> {after:.1f} ({after - before:+.1f}). "
            f"{as_feedback(info['reason'])}"
        )
        return obs, reward, terminated, truncated, info
