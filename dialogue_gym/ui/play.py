"""The Play tab's logic: one conversation of a person with the simulated user, no browser needed.

A :class:`PlaySession` makes the env with ``gym.make`` (so the dynamics and the seeds are the
library's own), resets it with the chosen seed and card, and takes the person's actions: typed
words (``EmpathyDialogueText-v0``) or a strategy index (``EmpathyDialogue-v0``). After every
turn it keeps what the page shows: the user's words and emotion, the strategy as the env read
it, the user's hidden trust and understanding (read from the look-ahead user model that
``env.unwrapped.fork_user()`` returns, part of the published simulator view), the need cues of
the observation, and the reward with its components. At the end it reveals the hidden need
and the outcome. Input the env cannot take is refused with a :class:`PlayInputError` whose
message the page shows; nothing is spent.

:func:`replay` plays recorded actions again in a fresh env: the same transcript, by
construction (the UI adds nothing to the dynamics).

Example:
    >>> session = PlaySession.start(PlayOptions(env_id=STRATEGY_ENV, card="0", seed=1))
    >>> turn = session.act(0)  # Question
    >>> turn.strategy, session.turns[-1] is turn, session.done
    ('Question', True, False)
    >>> session.act(99)
    Traceback (most recent call last):
    ...
    dialogue_gym.ui.play.PlayInputError: There is no strategy 100: pick one of the 8 buttons.
    >>> [m["content"] for m in replay(session.options, session.actions)] == [
    ...     m["content"] for m in session.messages]
    True
    >>> session.close()
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

import dialogue_gym
from dialogue_gym.core.scenario import ScenarioCard, load_scenarios
from dialogue_gym.core.vocabulary import NEEDS, STRATEGIES
from dialogue_gym.envs.text import HEARING_ENV_ID, TEXT_ENV_IDS
from dialogue_gym.rewards import REWARDS

__all__ = [
    "NO_REWARD",
    "OUTCOMES",
    "RANDOM_CARD",
    "SPLITS",
    "STRATEGY_ENV",
    "TEXT_ENV",
    "PlayInputError",
    "PlayOptions",
    "PlaySession",
    "Turn",
    "card_choices",
    "card_label",
    "parse_seed",
    "replay",
]

#: The env ids: strategy indices, or the agent's own words.
STRATEGY_ENV = "EmpathyDialogue-v0"
TEXT_ENV = HEARING_ENV_ID
#: Every env id the page plays typed words in (v0 hears the strategy alone).
TEXT_ENVS = TEXT_ENV_IDS
#: The card splits a person may draw from (``gym.make``'s ``scenarios``).
SPLITS = ("test", "train", "all")
#: The card choice that lets the seed draw the card, as ``gym.make`` does.
RANDOM_CARD = "random"
#: The reward choice for the bare env (its own sparse bonus, no components).
NO_REWARD = "none"
#: How an episode ends, in the words of :func:`dialogue_gym.core.render.episode_outcome`.
OUTCOMES = ("resolved", "user left", "ran out of turns")
#: The largest seed the page accepts (``np.random.SeedSequence`` takes any, people type few).
MAX_SEED = 2**31 - 1


class PlayInputError(ValueError):
    """Input the page cannot use; the message says why, in words for the person playing."""


def card_label(index: int, card: ScenarioCard) -> str:
    """How a card is listed: its index, persona and situation, never its id (which names the
    hidden need the person is to find out).

    Example:
        >>> card = load_scenarios("test")[0]
        >>> label = card_label(0, card)
        >>> label.startswith("0 · "), card.hidden_need in label
        (True, False)
    """
    p = card.persona
    return f"{index} · {p.name}, {p.age}, {p.occupation}: {card.situation_id.replace('-', ' ')}"


def card_choices(scenarios: str) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for a card picker: "random" first, then every card by index.

    Args:
        scenarios: A split (``SPLITS``), or a folder or YAML file of cards.

    Raises:
        PlayInputError: The split names no cards.
    """
    try:
        cards = load_scenarios(scenarios)
    except (ValueError, TypeError, OSError) as err:
        raise PlayInputError(f"Cannot load the {scenarios!r} cards: {err}") from None
    return [("random (drawn by the seed)", RANDOM_CARD)] + [
        (card_label(i, card), str(i)) for i, card in enumerate(cards)
    ]


def parse_seed(text: str | int | None) -> int | None:
    """The seed a person typed: a whole number from 0 to ``MAX_SEED``, or ``None`` when empty.

    Example:
        >>> parse_seed(" 42 "), parse_seed("")
        (42, None)
        >>> parse_seed("4.5")
        Traceback (most recent call last):
        ...
        dialogue_gym.ui.play.PlayInputError: The seed must be a whole number from 0 to 2147483647 (or empty for a new one), not '4.5'.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    shown = text.strip() if isinstance(text, str) else text
    try:
        seed = int(shown)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise PlayInputError(
            f"The seed must be a whole number from 0 to {MAX_SEED} (or empty for a new one), "
            f"not {shown!r}."
        )
    return seed


@dataclass(frozen=True)
class PlayOptions:
    """What the person chose before the conversation: ``gym.make``'s and ``reset``'s arguments.

    Attributes:
        env_id: ``STRATEGY_ENV`` (strategy buttons) or ``TEXT_ENV`` (typed words).
        scenarios: The cards to draw from (``SPLITS``, or a path).
        card: A card id or index (as text or int), or ``None``/``"random"``: drawn by the seed.
        voice: The user's voice, ``"template"`` or ``"llm"``.
        reward: A reward wrapper's name (``dialogue_gym.rewards.REWARDS``), or ``"none"``.
        seed: The episode's seed; ``None`` draws a new one (shown, so the game can be replayed).
        max_turns: Agent turns before the episode is truncated.
        recogniser: What reads typed words as strategies (text env).
        agent_voice: What words a chosen strategy (strategy env).
    """

    env_id: str = TEXT_ENV
    scenarios: str = "test"
    card: str | int | None = None
    voice: str = "template"
    reward: str = "sparse"
    seed: int | None = None
    max_turns: int = 10
    recogniser: str = "lexical"
    agent_voice: str = "template"

    @property
    def is_text(self) -> bool:
        """Whether the person types words (else they pick strategies)."""
        return self.env_id in TEXT_ENVS

    def make_kwargs(self) -> dict[str, Any]:
        """``gym.make``'s keyword arguments for these options.

        Example:
            >>> PlayOptions(env_id=STRATEGY_ENV, reward="none").make_kwargs()["reward"] is None
            True
        """
        kwargs: dict[str, Any] = {
            "voice": self.voice,
            "scenarios": self.scenarios,
            "max_turns": self.max_turns,
            "reward": None if self.reward == NO_REWARD else self.reward,
        }
        if self.is_text:
            kwargs["recogniser"] = self.recogniser
        else:
            kwargs["agent_voice"] = self.agent_voice
        return kwargs

    def check(self) -> None:
        """Refuse options ``gym.make`` would refuse, with a message for the page.

        Raises:
            PlayInputError: An unknown env id, voice, reward or split; a bad seed or turn limit.
        """
        if self.env_id not in dialogue_gym.ENV_IDS:
            raise PlayInputError(
                f"No env {self.env_id!r}: choose one of {', '.join(dialogue_gym.ENV_IDS)}."
            )
        if self.env_id not in (STRATEGY_ENV, *TEXT_ENVS):
            raise PlayInputError(f"The page plays {STRATEGY_ENV} and {', '.join(TEXT_ENVS)} only.")
        if self.reward != NO_REWARD and self.reward not in REWARDS:
            raise PlayInputError(
                f"No reward {self.reward!r}: choose one of {', '.join(sorted(REWARDS))}."
            )
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise PlayInputError(f"The seed must be a whole number from 0 to {MAX_SEED}.")
        if not 1 <= self.max_turns <= 100:
            raise PlayInputError("The turn limit must be from 1 to 100.")


@dataclass(frozen=True)
class Turn:
    """One turn as the page shows it (turn 0 is the user's opening line).

    Attributes:
        turn: Agent turns taken (0 for the opening).
        action: What the person gave: a strategy index or the words typed (``None`` at 0).
        strategy: The strategy the user appraised (as the recogniser read typed words).
        acts: Every strategy the recogniser heard (the primary first); ``(strategy,)`` for
            the strategy env.
        agent: The agent's words (typed, or the realiser's).
        user: The user's answer.
        user_act: The user's act (``dialogue_gym.USER_ACTS``).
        emotion: The emotion score after the turn, 0–100.
        change: Its change this turn.
        reason: The simulator's reason for the change.
        trust: The user's hidden trust in the agent, 0–1.
        understanding: How much of the hidden need the agent has drawn out, 0–1.
        need_cues: The observation's evidence per need (``NEEDS`` order), 0–1.
        reward: The reward of the turn (the chosen wrapper's).
        components: The reward's components (``info["reward_components"]``).
    """

    turn: int
    action: int | str | None
    strategy: str | None
    acts: tuple[str, ...]
    agent: str | None
    user: str
    user_act: str
    emotion: float
    change: float
    reason: str
    trust: float
    understanding: float
    need_cues: tuple[float, ...]
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)


def _card_option(cards: Sequence[ScenarioCard], card: str | int | None, split: str) -> Any:
    """``reset``'s ``card`` option for the person's choice, or a message naming what is valid."""
    if card is None or (isinstance(card, str) and card.strip().lower() in ("", RANDOM_CARD)):
        return None
    if isinstance(card, int) or card.strip().isdigit():
        index = int(card)
        if index < len(cards):
            return index
        raise PlayInputError(
            f"There is no card {index}: the {split} cards are numbered 0 to {len(cards) - 1}."
        )
    text = card.strip()
    if any(c.id == text for c in cards):
        return text
    raise PlayInputError(
        f"No card {text!r} in the {split} cards: pick one from the list "
        f"({len(cards)} cards, 0 to {len(cards) - 1}), or 'random'."
    )


class PlaySession:
    """One conversation: the env, the turns so far, and what the page shows of them.

    Build it with :meth:`start`. The page gives each browser tab its own; a lock keeps two
    clicks of one tab, handled at once by the server's threads, in turn.

    Attributes:
        options: The options it was started with, the seed filled in.
        env: The env (``gym.make``'s, with the chosen reward wrapper).
        turns: The opening (turn 0) and every turn since.
        actions: The person's actions, in order (what :func:`replay` takes).
        done: Whether the episode has ended.
        outcome: ``"resolved"``, ``"user left"`` or ``"ran out of turns"`` once done.
    """

    def __init__(self, options: PlayOptions, env: gym.Env) -> None:
        self.options = options
        self.env = env
        self.turns: list[Turn] = []
        self.actions: list[int | str] = []
        self.done = False
        self.outcome: str | None = None
        self.messages: Sequence[dict[str, Any]] = ()
        self._lock = threading.Lock()

    @classmethod
    def start(cls, options: PlayOptions) -> PlaySession:
        """Make the env, reset it with the options' seed and card, and record the opening.

        Args:
            options: The person's choices; a ``None`` seed draws a new one.

        Raises:
            PlayInputError: Options the env cannot take (an unknown card, reward, split...).
        """
        options.check()
        if options.seed is None:
            # A person wants a new user each time; the seed is shown so the game can be replayed.
            options = replace(options, seed=int(np.random.SeedSequence().entropy % MAX_SEED))
        try:
            env = gym.make(options.env_id, **options.make_kwargs())
        except (ValueError, TypeError, OSError) as err:
            raise PlayInputError(f"Cannot make {options.env_id}: {err}") from None
        try:
            card = _card_option(env.unwrapped.cards, options.card, options.scenarios)
            _, info = env.reset(seed=options.seed, options=_reset_options(card))
        except BaseException:
            env.close()
            raise
        session = cls(options, env)
        session.messages = info["messages"]
        session.turns.append(_turn(env, None, info, 0.0))
        return session

    # -- what the person does ------------------------------------------------------------

    def act(self, action: int | str) -> Turn:
        """Take one turn: a strategy index (strategy env) or the words typed (text env).

        Raises:
            PlayInputError: The conversation has ended, or the action cannot be used (empty or
                too long words, a character outside the text env's charset, no such strategy).
        """
        with self._lock:
            return self._act(action)

    def _act(self, action: int | str) -> Turn:
        if self.done:
            raise PlayInputError(
                f"The conversation has ended ({self.outcome}): press Start for a new one."
            )
        action = self._checked(action)
        try:
            _, reward, terminated, truncated, info = self.env.step(action)
        except ValueError as err:  # the env's own check, should the page's miss a case
            raise PlayInputError(str(err)) from None
        self.actions.append(action)
        self.messages = info["messages"]
        turn = _turn(self.env, action, info, float(reward))
        self.turns.append(turn)
        if terminated or truncated:
            self.done = True
            self.outcome = (
                "resolved"
                if info.get("success")
                else "user left"
                if info.get("user_left")
                else "ran out of turns"
            )
        return turn

    def _checked(self, action: int | str) -> int | str:
        if not self.options.is_text:
            if isinstance(action, str) and action.strip().lstrip("-").isdigit():
                action = int(action)
            if isinstance(action, bool) or not isinstance(action, int | np.integer):
                raise PlayInputError(
                    f"Pick a strategy: press one of the {len(STRATEGIES)} buttons."
                )
            if not 0 <= int(action) < len(STRATEGIES):
                raise PlayInputError(
                    f"There is no strategy {int(action) + 1}: pick one of the "
                    f"{len(STRATEGIES)} buttons."
                )
            return int(action)
        from dialogue_gym.envs.text import CHARSET  # the text env's own, so the page says the same

        if not isinstance(action, str):
            raise PlayInputError("Type what you say to them.")
        text = action.strip()
        name = self.name
        if not text:
            raise PlayInputError(f"Say something to {name} first: the message is empty.")
        limit = self.max_length
        if len(text) > limit:
            raise PlayInputError(
                f"That is {len(text)} characters; the most is {limit}. Say it more briefly."
            )
        for ch in text:
            if ch not in CHARSET:
                raise PlayInputError(
                    f"The character {ch!r} cannot be used (Latin letters, punctuation and "
                    "common emoji only)."
                )
        return text

    def close(self) -> None:
        """Close the env (the page calls it when the tab closes or a new game starts)."""
        self.env.close()

    # -- what the page shows -------------------------------------------------------------

    @property
    def card(self) -> ScenarioCard:
        """The user's card (its id names the hidden need: show :attr:`intro` instead)."""
        return self.env.unwrapped.card

    @property
    def name(self) -> str:
        """The user's first name."""
        return self.card.persona.name

    @property
    def max_length(self) -> int:
        """The longest message the text env takes (0 for the strategy env)."""
        return int(getattr(self.env.unwrapped, "max_length", 0))

    @property
    def intro(self) -> str:
        """Who the user is, without the hidden need: persona, problem, feeling, seed."""
        c = self.card
        p = c.persona
        return (
            f"{p.name}, {p.age}, {p.occupation} ({c.problem_type}; {c.emotion_type}). "
            f"Seed {self.options.seed}."
        )

    @property
    def hidden_need(self) -> str | None:
        """The hidden need, in words, once the conversation has ended (``None`` before)."""
        return self.env.unwrapped.hidden_need.replace("_", " ") if self.done else None

    def status(self) -> str:
        """One line: the emotion now, its last change, the turn, and the outcome when done.

        Example:
            >>> s = PlaySession.start(PlayOptions(env_id=STRATEGY_ENV, card="0", seed=1))
            >>> s.status().startswith("Emotion: 45/100")
            True
            >>> s.close()
        """
        last = self.turns[-1]
        line = f"Emotion: {last.emotion:.0f}/100"
        if last.turn:
            line += f" ({_signed(last.change)})"
        line += f" · turn {last.turn} of {self.options.max_turns}"
        if self.done:
            line += f" · outcome: {self.outcome}"
        return line

    def summary(self) -> str:
        """The end of the game in words: outcome, final emotion, the hidden need revealed,
        and how to replay it (empty while the conversation goes on)."""
        if not self.done:
            return ""
        last = self.turns[-1]
        said = {
            "resolved": f"Resolved: {self.name} feels helped",
            "user left": f"{self.name} left the conversation",
            "ran out of turns": "Ran out of turns",
        }[self.outcome or "ran out of turns"]
        card = self.options.card if self.options.card not in (None, RANDOM_CARD) else None
        replay_card = f"card {card}" if card is not None else f"card {self.card.id}"
        return (
            f"{said} after {last.turn} turn(s); final emotion {last.emotion:.0f}/100. "
            f"{self.name}'s hidden need was: **{self.hidden_need}**. "
            f"Replay: seed {self.options.seed}, {replay_card} ({self.options.scenarios} cards)."
        )

    def chat(self) -> list[dict[str, str]]:
        """The conversation for a chat widget: the agent (the person) as ``"user"`` (right),
        the simulated user as ``"assistant"`` (left), each line with its emotion or strategy."""
        out: list[dict[str, str]] = []
        for t in self.turns:
            if t.turn:
                heard = ", ".join(t.acts) if t.acts else (t.strategy or "")
                out.append({"role": "user", "content": f"{t.agent}\n\n*[{heard}]*"})
            change = f", {_signed(t.change)}" if t.turn else ""
            out.append(
                {
                    "role": "assistant",
                    "content": f"**{self.name}** ({t.emotion:.0f}{change}): {t.user}",
                }
            )
        return out

    def emotion_rows(self) -> list[dict[str, Any]]:
        """Plot rows ``{turn, value, series}`` of the emotion score, one per turn."""
        return [{"turn": t.turn, "value": t.emotion, "series": "emotion"} for t in self.turns]

    def state_rows(self) -> list[dict[str, Any]]:
        """Plot rows of the hidden state: trust and understanding (0–1), per turn."""
        return [
            {"turn": t.turn, "value": value, "series": name}
            for t in self.turns
            for name, value in (("trust", t.trust), ("understanding", t.understanding))
        ]

    def cue_rows(self) -> list[dict[str, Any]]:
        """Plot rows of the observation's need cues (evidence per need, 0–1), per turn."""
        return [
            {"turn": t.turn, "value": value, "series": need.replace("_", " ")}
            for t in self.turns
            for need, value in zip(NEEDS, t.need_cues, strict=True)
        ]

    def reward_rows(self) -> list[dict[str, Any]]:
        """Plot rows of the reward and its components, per agent turn."""
        rows = []
        for t in self.turns[1:]:
            rows.append({"turn": t.turn, "value": t.reward, "series": "reward"})
            for name, value in t.components.items():
                if _finite(value):
                    rows.append({"turn": t.turn, "value": float(value), "series": name})
        return rows

    def turn_table(self) -> tuple[list[str], list[list[Any]]]:
        """Headers and rows of the per-turn table: strategy, user act, emotion, reward and
        each component."""
        names = list(dict.fromkeys(k for t in self.turns for k in t.components))
        headers = ["turn", "strategy", "user act", "emotion", "change", "reward", *names]
        rows = [
            [
                t.turn,
                t.strategy or "",
                t.user_act,
                round(t.emotion, 1),
                round(t.change, 1),
                round(t.reward, 3),
                *[_rounded(t.components.get(n)) for n in names],
            ]
            for t in self.turns[1:]
        ]
        return headers, rows


def _turn(env: gym.Env, action: int | str | None, info: dict[str, Any], reward: float) -> Turn:
    """What the page keeps of a turn: ``info``, the observation's cues, the hidden state."""
    sim = env.unwrapped
    # The look-ahead user model is a copy of the real one (the published view's way to
    # read the hidden state); forking it touches nothing of the episode.
    state = sim.fork_user().state
    cues = sim.observe()["need_cues"]
    strategy = info.get("strategy")
    acts = tuple(info.get("acts") or ((strategy,) if strategy else ()))
    return Turn(
        turn=int(info.get("turn", 0)),
        action=action,
        strategy=strategy,
        acts=acts,
        agent=info.get("agent_utterance"),
        user=str(info.get("user_utterance", "")),
        user_act=str(info.get("user_act", "")),
        emotion=float(info["emotion"]),
        change=float(info.get("change", 0.0)),
        reason=str(info.get("reason", "")),
        trust=float(state.trust),
        understanding=float(state.understanding),
        need_cues=tuple(float(v) for v in cues),
        reward=reward,
        components={k: float(v) for k, v in (info.get("reward_components") or {}).items()},
    )


def _reset_options(card: Any) -> dict[str, Any] | None:
    return {"card": card} if card is not None else None


def _signed(value: float) -> str:
    """A change as the page shows it: ``+2``, ``-3``, and ``+0`` (never ``-0``)."""
    return f"{round(value):+d}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _rounded(value: Any) -> Any:
    return round(float(value), 3) if _finite(value) else ""


def replay(options: PlayOptions, actions: Sequence[int | str]) -> Sequence[dict[str, Any]]:
    """The transcript of ``actions`` played in a fresh ``gym.make`` env with ``options``.

    What a UI session did, played again without the UI: a test holds the two equal.

    Args:
        options: The session's options (its seed filled in).
        actions: The session's actions.

    Returns:
        ``info["messages"]`` after the last action.
    """
    if options.seed is None:
        raise ValueError("replay needs the session's seed")
    env = gym.make(options.env_id, **options.make_kwargs())
    try:
        card = _card_option(env.unwrapped.cards, options.card, options.scenarios)
        _, info = env.reset(seed=options.seed, options=_reset_options(card))
        for action in actions:
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        return info["messages"]
    finally:
        env.close()
