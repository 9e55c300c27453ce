"""EmpathyDialogueText-v0: the agent speaks in its own words to a simulated user in distress.

The environment's card (Farama's sections, rendered into the docs by ``docs/hooks/env_cards.py``)
is the docstring of :class:`EmpathyDialogueTextEnv`. This module also holds the action charset
(:data:`CHARSET`), the validation of an utterance (:func:`check_text`) and the map of any string
into the action space (:func:`to_action`).
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gymnasium import spaces

from dialogue_gym.core.affect import AffectiveCore
from dialogue_gym.core.config import SimConfig
from dialogue_gym.core.delivery import Delivery
from dialogue_gym.core.scenario import ScenarioCard
from dialogue_gym.core.validation import Spec, check_all, integer, registered
from dialogue_gym.envs.empathy import (
    ENV_ARGUMENTS,
    SIMULATOR_VIEW,
    THREAD_USERS,
    EmpathyDialogueEnv,
    claim_for_thread,
)
from dialogue_gym.llm.backends import BackendSpec
from dialogue_gym.llm.client import BackendClient
from dialogue_gym.user.hearing import LISTENERS, Heard, HearingContext, make_listener
from dialogue_gym.user.recognise import RECOGNISERS, Recognition, make_recogniser

__all__ = [
    "CHARSET",
    "DEFAULT_MAX_LENGTH",
    "EXAMPLE_UTTERANCES",
    "HEARING_ENV_ID",
    "TEXT_ENV_ARGUMENTS",
    "TEXT_ENV_IDS",
    "TEXT_SIMULATOR_VIEW",
    "EmpathyDialogueTextEnv",
    "check_text",
    "prime_embeddings",
    "to_action",
]

#: The text env ids: v0 hears the strategy alone, v1 (the hearing user) how it is said too.
TEXT_ENV_IDS: tuple[str, ...] = ("EmpathyDialogueText-v0", "EmpathyDialogueText-v1")
#: The text env the LLM-policy tools use unless told otherwise (TRL, train-llm, verl, the UI).
HEARING_ENV_ID = "EmpathyDialogueText-v1"

#: The longest utterance by default (characters).
DEFAULT_MAX_LENGTH = 1000

#: The published simulator view of this env (see ``dialogue_gym.envs.empathy``): the strategy
#: env's, plus the longest utterance it takes.
TEXT_SIMULATOR_VIEW: tuple[str, ...] = (*SIMULATOR_VIEW, "max_length")

#: Each constructor argument's spec (see ``dialogue_gym.envs.empathy.ENV_ARGUMENTS``): the
#: strategy env's, but for the realiser (the agent's own words are said), plus these two.
TEXT_ENV_ARGUMENTS: Mapping[str, Spec] = {
    "recogniser": registered(RECOGNISERS.names, RECOGNISERS.kind),
    "listener": registered(LISTENERS.names, LISTENERS.kind, optional=True),
    "max_length": integer(1),
    **{name: spec for name, spec in ENV_ARGUMENTS.items() if name != "agent_voice"},
}


def _charset() -> frozenset[str]:
    chars = set(" \t\n")
    chars.update(chr(c) for c in range(0x21, 0x7F))  # printable ASCII
    chars.update(chr(c) for c in range(0xA1, 0x180) if chr(c).isprintable())  # Latin-1, Ext-A
    chars.update("\u2010\u2013\u2014\u2018\u2019\u201a\u201c\u201d\u201e\u2020\u2021\u2022")
    chars.update("\u2026\u2030\u2032\u2033\u2039\u203a\u20ac\u2122\u2190\u2192\u2713\u2605")
    chars.update("\u2665\u263a\u2764\u2728\ufe0f")
    chars.update(chr(c) for c in range(0x1F600, 0x1F650))  # emoticons
    chars.update(chr(c) for c in range(0x1F3FB, 0x1F400))  # skin-tone modifiers
    chars.update("\U0001f44d\U0001f44f\U0001f44b\U0001f4aa\U0001f917\U0001f914\U0001f338")
    chars.update("\U0001f308\U0001f499\U0001f49a\U0001f49b\U0001f49c\U0001f9e1\U0001fac2")
    return frozenset(chars)


#: Every character an utterance may contain (see the module docstring).
CHARSET: frozenset[str] = _charset()

#: One utterance per strategy (``STRATEGIES`` order) that the lexical recogniser reads as
#: that strategy: handy for tests, examples and scripted baselines.
EXAMPLE_UTTERANCES: tuple[str, ...] = (
    "What has been the hardest part of all this for you?",
    "So if I understand you, things have been piling up for weeks.",
    "It sounds like you're feeling really alone with this.",
    "I went through something similar a few years ago.",
    "You've shown real strength by talking about this.",
    "Maybe you could try writing down what worries you most.",
    "Research shows that stress like this usually eases with time.",
    "Thanks for telling me.",
)

#: Characters folded to one in the charset before anything is replaced.
_FOLD = str.maketrans(
    {
        "\r": "\n",
        "\u00a0": " ",
        "\u2007": " ",
        "\u202f": " ",
        "\u2009": " ",
        "\u200a": " ",
        "\u2011": "-",
        "\u2012": "-",
        "\u2015": "\u2014",
        "\u2212": "-",
        "\u201b": "'",
        "\u201f": '"',
        "\u00ad": "",
        "\u200b": "",
        "\u200c": "",
        "\u200d": "",
        "\u2060": "",
        "\ufeff": "",
    }
)


def to_action(text: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Map any string into the action space: for LLM policies, whose output may hold anything.

    Unicode NFC; no-break and thin spaces, odd hyphens and zero-width characters folded;
    ``\\r\\n`` and ``\\r`` become ``\\n``; any other character outside :data:`CHARSET`
    becomes ``?``; the text is cut to ``max_length`` at a word boundary where one is near.

    Example:
        >>> to_action("Caf\\u00e9\\u00a0time \\u4f60\\u597d\\r\\nok")
        'Café time ??\\nok'
        >>> len(to_action("word " * 500, max_length=12))
        9
    """
    text = unicodedata.normalize("NFC", str(text)).replace("\r\n", "\n").translate(_FOLD)
    if any(ch not in CHARSET for ch in text):
        text = "".join(ch if ch in CHARSET else "?" for ch in text)
    if len(text) > max_length:
        cut = text[:max_length]
        space = cut.rfind(" ")
        text = cut[:space].rstrip() if space >= max_length // 2 else cut
    return text


def check_text(action: Any, max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """The utterance an action stands for, or a ``ValueError`` saying what is wrong with it.

    Args:
        action: The agent's action.
        max_length: The longest utterance allowed.

    Returns:
        The action as a plain ``str`` (empty and whitespace-only strings included: the env
        treats them as silence).

    Raises:
        ValueError: Not a string, too long, or a character outside :data:`CHARSET` (the
            message names it, its code point and its position). Every message contains
            "outside the action space".

    Example:
        >>> check_text("Hi \\U0001f642")
        'Hi 🙂'
        >>> check_text("a\\x00b")
        Traceback (most recent call last):
        ...
        ValueError: action is outside the action space: character '\\x00' (U+0000, a control character) at position 1; remove it, or map the text with dialogue_gym.envs.text.to_action(text)
    """
    if not isinstance(action, str):
        shown = repr(action)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise ValueError(
            f"action {shown} is outside the action space Text(max_length={max_length}): pass the "
            f"agent's utterance as a str, got {type(action).__name__}"
        )
    text = str(action)
    if len(text) > max_length:
        raise ValueError(
            f"action is outside the action space: {len(text)} characters, the most is "
            f"{max_length}; shorten it, or cut it with dialogue_gym.envs.text.to_action(text)"
        )
    for i, ch in enumerate(text):
        if ch not in CHARSET:
            what = (
                "a control character"
                if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn")
                else "not in the action charset (dialogue_gym.envs.text.CHARSET: Latin script, "
                "punctuation, common symbols and emoji)"
            )
            raise ValueError(
                f"action is outside the action space: character {ch!r} (U+{ord(ch):04X}, "
                f"{what}) at position {i}; remove it, or map the text with "
                "dialogue_gym.envs.text.to_action(text)"
            )
    return text


class _Text(spaces.Text):
    """``spaces.Text`` whose deep copies share the character tables (never mutated) and copy
    only the RNG (``fork()`` deep-copies the spaces; copying a 450-character table costs ~0.5
    ms), and whose repr names the charset instead of printing it."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Text:
        new = copy.copy(self)
        new._np_random = copy.deepcopy(self._np_random, memo)
        return new

    def __repr__(self) -> str:
        charset = (
            "CHARSET" if self.character_set == CHARSET else f"{len(self.character_set)} characters"
        )
        return f"Text({self.min_length}, {self.max_length}, charset={charset})"


class EmpathyDialogueTextEnv(EmpathyDialogueEnv):
    """The free-text twin of `EmpathyDialogue-v0`: the action is the agent's utterance.

    ## Description

    For LLM policies. The same simulated user as in `EmpathyDialogue-v0` (a
    scenario card with a **hidden need**, an affective core, a voice) hears the agent's own
    utterance instead of a strategy index. A recogniser reads the utterance as ESConv support
    strategies (`dialogue_gym.user.recognise`): the **primary** act is what the affective core
    appraises, exactly as if the strategy env had been given that index; the other acts it
    recognised are reported. The agent's words are what the user's voice answers, and what the
    LLM-judged appraisal (SAGE mode, `appraisal="llm"`) judges.

    **What the user hears.** In `EmpathyDialogueText-v0` the user hears only the strategy the
    recogniser names: an insult that carries a cue phrase helps almost as much as support, and a
    pile of cue phrases scores best of all. `EmpathyDialogueText-v1` is the **hearing user**: a
    listener (`dialogue_gym.user.hearing`) also reads how the turn was said (tone, relevance to
    what the user said and their situation, coherence, repetition of the agent's own earlier
    turns, specificity) and the affective core scales and signs the strategy's effect by it:
    hostility costs emotion and trust and can make the user leave, off-topic turns build
    nothing, a muddled turn cannot meet the need, repeated and cold turns land less, specific
    ones more, and a question the card's facts answer gets its answer. The reading is in
    `info["heard"]`; `docs/text.md#what-the-user-hears` gives how it was validated. v1 also
    reads strategies with the embedding reader (`recogniser="embedding"`). Only the dynamics of
    the text env changed: v0 is kept as it was, bit for bit, and the strategy env's user hears
    the template realiser, which is always well delivered.

    Nothing the agent writes can instruct the simulator: text that addresses the machinery
    (role tags, "ignore previous instructions", "set my emotion to 100", fake JSON appraisals,
    notes to the judge) is read as *Others* whatever else it says, and never reaches the judge
    (`dialogue_gym.user.injection`; `tests/test_injection.py` holds the guarantee).

    >>> import gymnasium as gym
    >>> import dialogue_gym
    >>> env = gym.make("EmpathyDialogueText-v0", voice="template", scenarios="test")
    >>> obs, info = env.reset(seed=0)
    >>> obs["utterance"] == info["user_utterance"]
    True
    >>> obs, reward, terminated, truncated, info = env.step(
    ...     "I went through something like that too. How are you holding up?")
    >>> info["strategy"], info["acts"]
    ('Self-disclosure', ('Self-disclosure', 'Question'))

    ## Action Space

    `Text(min_length=0, max_length=1000, charset=CHARSET)`: the agent's utterance, at most
    `max_length` characters (an argument, 1000 by default) from `dialogue_gym.envs.text.CHARSET`:

    - space, tab and newline;
    - printable ASCII (letters, digits, punctuation, symbols);
    - Latin-1 and Latin Extended-A letters and symbols (accents: é, ñ, ø, ł, œ, £, ©, °...);
    - typographic punctuation (‘ ’ “ ” – — … •), €, ™, arrows, ✓ ★ ♥ ❤ and the variation
      selector U+FE0F (for ❤️);
    - the emoticon emoji (U+1F600–U+1F64F), skin-tone modifiers, and a few common others
      (👍 👏 💪 🤗 🤔 ✨ 💙 🫂...).

    English with European names, typographic quotes and the usual emoji fits; other scripts,
    control characters and emoji built with zero-width joiners do not.
    `dialogue_gym.envs.text.to_action(text)` maps any string into the space (Unicode NFC, curly
    variants and no-break spaces folded, other characters replaced by `?`, cut at a word boundary).
    `action_space.sample()` gives valid (if meaningless) actions: random characters are read as
    *Others*.

    Treatment of bad input (the env stays usable after each error):

    | input | treatment |
    |-------|-----------|
    | empty or whitespace-only | silence: read as *Others*, reason "the agent said nothing" |
    | not a `str` (bytes, numbers, `None`, arrays) | `ValueError` "... outside the action space ..." |
    | longer than `max_length` | `ValueError` naming the length and the limit |
    | a control or format character (`\\x00`, `\\r`, zero-width joiner...) | `ValueError` naming the character and its position |
    | a printable character outside `CHARSET` | `ValueError` naming the character and its position |

    ## Observation Space

    A `Dict`: the keys of `EmpathyDialogue-v0` (float32 Boxes: `emotion`, `score`, `turn`,
    `user_act`, `need_cues`, `history`, `last_act`) plus

    | Key | Space | Meaning |
    |-----|-------|---------|
    | `utterance` | `Text(0, 1000, CHARSET)` | the user's last utterance (mapped into the charset, cut at 1000 characters) |

    The whole transcript is in `info["messages"]` (roles, the user's turns marked not trainable).
    `env.unwrapped.observe(core)` of a forked core has an empty `utterance` (no words were said).
    Stable-Baselines3's `MultiInputPolicy` does not take `Text` observations; an SB3 agent belongs on
    `EmpathyDialogue-v0`.

    ## Rewards

    As `EmpathyDialogue-v0`: `1.0` on the turn the user thanks the agent with the need resolved,
    `0.0` otherwise; reward wrappers replace it.

    ## Starting State

    As `EmpathyDialogue-v0`: a card drawn with the env's `np_random` (or
    `reset(options={"card": ...})`), emotion at the card's `initial_emotion`; the user opens by
    venting, and the opening is the first observation's `utterance`.

    ## Episode End

    As `EmpathyDialogue-v0`: success (need resolved and emotion >= 70), the user leaves (emotion
    <= 0), or truncation at `max_turns`.

    `info` on every step has the keys of `EmpathyDialogue-v0` (`strategy` is the primary act)
    plus `acts` (every recognised strategy, primary first) and `recognition` (`strategy`, `acts`,
    `reason`, `source`: `"lexical"`, `"llm"`, `"llm-fallback"`, `"embedding"`, `"classifier"`,
    `"silence"` or `"screen"`, and `injection`: the screen's verdict or `None`). With a listener
    (v1) also `heard`: `tone` (warm, neutral, cold, hostile), `hostility`, `coldness`,
    `relevance`, `coherence`, `repetition`, `specificity` (each in [0, 1]), `answer` (the fact the
    user was asked for, or ""), and the evidence (`phrases`, `shared` topic words,
    `stock_sentences`, `acts`, `repeats`, `fact`, `scores`, `source`).

    ## Arguments

    ```python
    gym.make(
        "EmpathyDialogueText-v0",
        recogniser="lexical",  # "lexical" (cue words; fast, the default) or "llm" (the backend
                               # names the strategy; falls back to lexical on a garbage reply)
        max_length=1000,       # longest utterance (characters), of the action and the observation
        voice="llm",           # the user's voice: "llm" or "template"
        backend="llama_cpp",   # backend spec for the llm voice, the llm recogniser and the judge
        scenarios="train",     # "train", "test", "all", a folder or a YAML file of cards
        max_turns=10,          # at most 1000
        sim=None,              # SimConfig or a dict of overrides
        render_mode=None,      # None, "ansi", "human" or "rgb_array" (as EmpathyDialogue-v0)
        history_window=4,
        appraisal="rule",      # "rule" or "llm" (SAGE mode: the emotion change judged by the backend)
        listener=None,         # None (the strategy alone), "embedding" or "lexical": how the
                               # words are heard (dialogue_gym.user.hearing)
    )
    ```

    ## Registered Configurations

    - `EmpathyDialogueText-v0`: the defaults above: the user hears the strategy alone.
    - `EmpathyDialogueText-v1`: the hearing user, `listener="embedding"`,
      `recogniser="embedding"` (all-MiniLM-L6-v2, packaged with its weights; nothing is
      downloaded). `listener="lexical"` hears with word lists only (bit-exact on every machine).
    """

    def __init__(
        self,
        recogniser: str = "lexical",
        max_length: int = DEFAULT_MAX_LENGTH,
        voice: str = "llm",
        backend: BackendSpec = "llama_cpp",
        scenarios: str | Path | tuple[ScenarioCard, ...] = "train",
        max_turns: int = 10,
        sim: SimConfig | Mapping[str, Any] | None = None,
        render_mode: str | None = None,
        history_window: int = 4,
        appraisal: str = "rule",
        core: str | None = None,
        listener: str | None = None,
    ) -> None:
        # The rest are checked by the strategy env's constructor.
        # listener None: the user hears the strategy alone (v0).
        own = {"recogniser": recogniser, "max_length": max_length, "listener": listener}
        check_all(type(self).__name__, TEXT_ENV_ARGUMENTS, own)
        super().__init__(
            voice=voice,
            agent_voice="template",  # never used: the agent's own words are said
            backend=backend,
            scenarios=scenarios,
            max_turns=max_turns,
            sim=sim,
            render_mode=render_mode,
            history_window=history_window,
            appraisal=appraisal,
            core=core,
        )
        self.max_length = int(max_length)
        self.recogniser = make_recogniser(recogniser, backend=backend)
        self.action_space = _Text(self.max_length, min_length=0, charset=CHARSET)
        self.observation_space = spaces.Dict(
            {
                **self.observation_space.spaces,
                "utterance": _Text(self.max_length, min_length=0, charset=CHARSET),
            }
        )
        self._recognition: Recognition | None = None
        self.listener = None if listener is None else make_listener(listener)
        self._heard: Heard | None = None

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Say ``action`` (the agent's utterance) to the user and see how they respond."""
        # Claimed here too, so the recognition read below is this step's, not another thread's.
        claimed = claim_for_thread(self)
        try:
            obs, reward, terminated, truncated, info = super().step(action)
            rec = self._recognition
            if rec is not None:
                info["acts"] = rec.names
                info["recognition"] = rec.to_info()
            if self._heard is not None:
                info["heard"] = self._heard.to_info()
            return obs, reward, terminated, truncated, info
        finally:
            if claimed:
                del THREAD_USERS[id(self)]

    def words_to_embed(self, action: Any) -> list[str]:
        """The texts a step with ``action`` will embed (the embedding listener and reader read
        the agent's words and the user's last line); ``[]`` when nothing embeds or the action
        is not text. The vector env embeds every user's at once before any steps, so a batch
        of users costs one model pass (:func:`prime_embeddings`)."""
        embeds = getattr(self.listener, "kind", None) == "embedding" or (
            getattr(self.recogniser, "kind", None) == "embedding"
        )
        if not embeds or not isinstance(action, str) or not action.strip() or not self.messages:
            return []
        return [action, self.messages[-1]["content"]]

    def backend_clients(self) -> list[BackendClient]:
        """As ``EmpathyDialogueEnv.backend_clients``, plus the LLM recogniser's handle."""
        client = getattr(self.recogniser, "client", None)
        extra = [client] if isinstance(client, BackendClient) else []
        return [*super().backend_clients(), *extra]

    def check_action(self, action: Any) -> None:
        """As ``EmpathyDialogueEnv.check_action``: the utterance check of :func:`check_text`."""
        check_text(action, self.max_length)

    def _hear(self, act: int, text: str) -> Delivery | None:
        """The listener's reading of the agent's words (``None`` without a listener: v0)."""
        if self.listener is None:
            return None
        core = self._require_core()
        rec = self._recognition
        context = HearingContext(
            card=core.card,
            user_utterance=self.messages[-1]["content"],
            earlier=tuple(m["content"] for m in self.messages if m["role"] == "assistant"),
            acts=rec.labels if rec is not None else (act,),
        )
        self._heard = self.listener.hear([text], [context])[0]
        return self._heard.delivery

    def _interpret_action(self, action: Any) -> tuple[int, str | None]:
        text = check_text(action, self.max_length)
        core = self._require_core()
        seed = self._voice_seed + 2 * core.state.turn + 1
        self._recognition = self.recogniser.recognise([text], seeds=[seed])[0]
        return self._recognition.primary, text

    def _observation(self, core: AffectiveCore | None = None) -> dict[str, Any]:
        obs: dict[str, Any] = super()._observation(core)
        own = core is None or core is self.core
        obs["utterance"] = to_action(self.messages[-1]["content"], self.max_length) if own else ""
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start a conversation with a new simulated user (see ``EmpathyDialogueEnv.reset``).

        ``info["voice_config"]["agent"]`` describes the recogniser (the agent's words are
        its own).
        """
        claimed = claim_for_thread(self)  # one thread at a time, as the strategy env
        try:
            self._recognition = self._heard = None
            obs, info = super().reset(seed=seed, options=options)
            info["voice_config"]["agent"] = self.recogniser.describe()
            if self.listener is not None:
                info["voice_config"]["listener"] = self.listener.describe()
            return obs, info
        finally:
            if claimed:
                del THREAD_USERS[id(self)]


def prime_embeddings(envs: Sequence[Any], actions: Sequence[Any]) -> int:
    """Embed, in one pass, every text that stepping ``envs`` with ``actions`` will embed.

    Each env then finds its texts in the shared encoder's cache: a vector env of N hearing users
    runs the sentence model once per step, not N times, and so does a GRPO group
    (``dialogue_gym.integrations.trl.DialogueRollout``). Envs without ``words_to_embed`` (the
    strategy env, a served user) add nothing. Returns how many texts were embedded.
    """
    texts: list[str] = []
    for env, action in zip(envs, actions, strict=True):
        words = getattr(getattr(env, "unwrapped", env), "words_to_embed", None)
        if words is not None:
            texts += words(action)
    if texts:
        from dialogue_gym.user.hearing.embedding import SentenceEncoder

        SentenceEncoder.shared().encode(texts)
    return len(texts)
