"""The episode record and token in, token out: how a conversation becomes TRL's token ids.

An :class:`Episode` is one conversation of a rollout. Its ``completion_ids`` grow **by
concatenation**, never by re-tokenising the conversation: the policy's sampled tokens, then the
chat template's tokens for the user's reply and the next assistant header, then the policy's
next turn... ``env_mask`` is 1 exactly on the policy's tokens (the user's words and the template
are not trained on), and ``logprobs`` is 0.0 on the template's. :meth:`Episode.add_turn` is
that step; :func:`template_ids` is the chat template as token ids.

An episode's outcome uses the field names of the package's one episode record,
:class:`~dialogue_gym.evaluation.episodes.EpisodeResult` (``card_id``, ``episode_return``,
``success``, ``final_emotion``, ``user_lines``...); :meth:`Episode.result` is that record, for
the metrics. The rollout hands TRL the return under its own name, ``env_reward``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.evaluation.episodes import EpisodeResult

__all__ = ["PROBE_CHAT", "Episode", "check_prefix_preserving", "template_ids"]


def template_ids(
    tokenizer: Any,
    messages: Sequence[Mapping[str, Any]],
    add_generation_prompt: bool,
    chat_template: str | None = None,
) -> list[int]:
    """The conversation through the tokenizer's chat template, as a list of token ids.

    Args:
        tokenizer: A Hugging Face tokenizer with a chat template.
        messages: ``{"role", "content"}`` messages.
        add_generation_prompt: End with the next assistant turn's header.
        chat_template: Another template than the tokenizer's (``None``: its own).
    """
    out = tokenizer.apply_chat_template(
        list(messages),
        add_generation_prompt=add_generation_prompt,
        tokenize=True,
        return_dict=False,
        chat_template=chat_template,
    )
    if isinstance(out, Mapping):  # some tokenizers return a BatchEncoding whatever return_dict says
        out = out["input_ids"]
    return list(out)


#: A two-turn conversation whose first assistant turn has a thinking block, which templates that
#: strip earlier turns' thinking (Qwen3's) render differently once the user answers.
PROBE_CHAT = (
    {"role": "system", "content": "You are a listener."},
    {"role": "user", "content": "I had a hard day."},
    {"role": "assistant", "content": "<think>\nThey sound tired.\n</think>\n\nWhat happened?"},
    {"role": "user", "content": "My boss shouted at me."},
)


def check_prefix_preserving(tokenizer: Any, chat_template: str | None = None) -> None:
    """Refuse a chat template under which a conversation's tokens are not a prefix of the
    next turn's.

    :class:`~dialogue_gym.integrations.trl.DialogueRollout` builds a conversation's token ids
    by appending each turn to the ids it already has, so the template must render the earlier
    turns the same once a user's reply follows. A template that re-renders them (Qwen3's
    strips earlier turns' thinking blocks) would train on tokens the model never sees again.
    Checked on :data:`PROBE_CHAT`: the one-turn rendering must be a prefix of the two-turn one.

    Args:
        tokenizer: A Hugging Face tokenizer with a chat template.
        chat_template: Another template than the tokenizer's (``None``: its own).

    Raises:
        ValueError: The template is not prefix-preserving (the message says what to use).
    """
    one = template_ids(tokenizer, PROBE_CHAT[:3], False, chat_template)
    two = template_ids(tokenizer, PROBE_CHAT, True, chat_template)
    if two[: len(one)] != one:
        at = next(i for i, (a, b) in enumerate(zip(one, two, strict=False)) if a != b)
        raise ValueError(
            "the tokenizer's chat template is not prefix-preserving: it renders an earlier "
            "assistant turn differently once the user replies (from token "
            f"{at}: {tokenizer.decode(one[at : at + 12])!r} becomes "
            f"{tokenizer.decode(two[at : at + 12])!r}; Qwen3-family templates strip earlier "
            "turns' thinking blocks), so token-in, token-out concatenation would train on "
            "tokens the model never sees again. Use a model whose template keeps earlier turns "
            "as they were (SmolLM2, Qwen2.5), or set a prefix-preserving template on the "
            "tokenizer (tokenizer.chat_template = tool_chat_template(), TRL's ChatML template "
            "for Qwen3-Instruct-2507)"
        )


@dataclass
class Episode:
    """One conversation of a rollout, as the policy played it (for logs and the audit).

    Attributes:
        card_id: The scenario card's id.
        seed: The episode's seed.
        messages: The conversation as the policy saw it (system, user, assistant...).
        episode_return: The return under the rollout's reward wrapper (what TRL reads as
            ``env_reward``).
        success: The user's need was met.
        user_left: The user left (emotion fell to 0).
        final_emotion: The emotion score at the end.
        turns: The policy's turns.
        strategies: The recogniser's reading of each policy turn (``info["strategy"]``).
        completion_ids: The completion's token ids (policy and template tokens).
        env_mask: 1 on the policy's tokens, 0 on the user's and the template's.
        logprobs: The sampled tokens' log-probabilities (0.0 on template tokens).
        done: The conversation has ended.
        need: The user's hidden need (known once the conversation ends).
        resolved: Whether the need was met by the end.
        initial_emotion: The emotion score at the opening.
        emotions: The emotion score after the opening and after each policy turn.
        user_lines: The user's opening line and each reply.
        planned: With a manager (the hierarchical realiser): the strategy it chose for each
            policy turn, which the policy read in the user's message
            (:func:`~dialogue_gym.integrations.trl.manager.directive`); empty without one.
    """

    card_id: str
    seed: int
    messages: list[dict[str, str]]
    episode_return: float = 0.0
    success: bool = False
    user_left: bool = False
    final_emotion: float = 0.0
    turns: int = 0
    strategies: list[str] = field(default_factory=list)
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    done: bool = False
    need: str = ""
    resolved: bool = False
    initial_emotion: float = 0.0
    emotions: list[float] = field(default_factory=list)
    user_lines: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)

    def add_turn(
        self,
        ids: list[int],
        logprobs: list[float],
        text: str,
        step: tuple[Any, Any, bool, bool, dict[str, Any]],
        tokenizer: Any,
        eos: set[int],
        directive: str = "",
    ) -> None:
        """Record one policy turn and what the env made of it; unless the conversation ended,
        append the user's reply as template tokens (masked), up to the next assistant header.

        The template part is the difference between templating the conversation with and
        without the user's new message (checked to be a prefix extension), cut at the
        end-of-turn token the policy generated (or, when a turn ran out of tokens, just before
        the one the template adds to close it).

        Args:
            ids: The policy's sampled tokens (up to its first end-of-turn token, included).
            logprobs: Their log-probabilities.
            text: The tokens decoded (what the env was told).
            step: What ``env.step`` returned for ``text``.
            tokenizer: The policy's tokenizer (its chat template).
            eos: The end-of-turn token ids.
            directive: Text appended to the user's reply in the message the policy reads
                (the manager's next move; part of the template tokens, so masked); ``""``
                without a manager. ``user_lines`` keeps the reply alone.

        Raises:
            ValueError: The chat template is not prefix-preserving, or closes an assistant
                turn with no end-of-turn token.
        """
        _, reward, terminated, truncated, info = step
        self.completion_ids += ids
        self.env_mask += [1] * len(ids)
        self.logprobs += logprobs
        self.episode_return += float(reward)
        self.turns += 1
        self.final_emotion = float(info["emotion"])
        self.strategies.append(str(info["strategy"]))
        self.emotions.append(float(info["emotion"]))
        self.user_lines.append(info["user_utterance"])
        self.resolved = bool(info["resolved"])
        self.messages.append({"role": "assistant", "content": text})
        if terminated or truncated:
            self.done = True
            self.need = str(info.get("need", ""))
            self.success = bool(info.get("success", False))
            self.user_left = bool(info.get("user_left", False))
            return
        before = template_ids(tokenizer, self.messages, add_generation_prompt=False)
        self.messages.append({"role": "user", "content": info["user_utterance"] + directive})
        after = template_ids(tokenizer, self.messages, add_generation_prompt=True)
        if after[: len(before)] != before:
            raise ValueError(
                "the chat template is not prefix-preserving: templating the conversation with "
                "the user's new message changes how the earlier messages are rendered"
            )
        ends = [t for t, tok in enumerate(before) if tok in eos]
        if not ends:
            raise ValueError("the chat template closes an assistant turn with no end-of-turn token")
        # The policy's own end-of-turn token is kept; a turn that ran out of tokens gets the
        # template's closing token (a template token, masked).
        cut = ends[-1] + 1 if ids and ids[-1] in eos else ends[-1]
        delta = after[cut:]
        self.completion_ids += delta
        self.env_mask += [0] * len(delta)
        self.logprobs += [0.0] * len(delta)

    @property
    def delivery_agreement(self) -> float:
        """Share of the planned turns whose words the recogniser read as the plan (``nan``
        without a manager).

        Example:
            >>> ep = Episode("c", 0, [], strategies=["Question", "Others"],
            ...              planned=["Question", "Information"])
            >>> ep.delivery_agreement
            0.5
        """
        pairs = list(zip(self.planned, self.strategies, strict=False))
        return sum(p == r for p, r in pairs) / len(pairs) if pairs else float("nan")

    @property
    def env_reward(self) -> float:
        """The return under the name TRL's reward function reads (``episode_return``)."""
        return self.episode_return

    @property
    def card(self) -> str:
        """The scenario card's id (``card_id``; the name before the records were aligned)."""
        return self.card_id

    def result(self) -> EpisodeResult:
        """This conversation as the package's episode record, for the metrics.

        The strategies are the recogniser's readings as indices into ``STRATEGIES``.
        """
        index = {name: i for i, name in enumerate(STRATEGIES)}
        return EpisodeResult(
            card_id=self.card_id,
            need=self.need,
            success=self.success,
            user_left=self.user_left,
            initial_emotion=self.initial_emotion,
            final_emotion=self.final_emotion,
            turns=self.turns,
            strategies=[index[s] for s in self.strategies],
            emotions=list(self.emotions),
            episode_return=self.episode_return,
            messages=list(self.messages),
            user_lines=list(self.user_lines),
            resolved=self.resolved,
            seed=self.seed,
        )
