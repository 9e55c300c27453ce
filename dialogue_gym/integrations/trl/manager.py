"""The hierarchical realiser's manager: a strategy policy that picks the act each turn.

With a manager, :class:`~dialogue_gym.integrations.trl.DialogueRollout` is the LLM level of
hierarchical dialogue RL: before each policy turn the manager reads the text env's
observation (its strategy-env keys, :data:`~dialogue_gym.agents.planner_realiser.
STRATEGY_OBS_KEYS`) and picks one of the eight ESConv strategies; :func:`directive` puts that
choice at the end of the user's message the policy reads (template tokens, ``env_mask`` 0,
never trained on), and GRPO trains the language model to *realise* it: the realiser's job is
delivery, and on the hearing user (``EmpathyDialogueText-v1``) delivery decides how much each
act helps. The recogniser's reading of the words beside the plan is the *delivery agreement*
(:func:`delivery_agreement`).

A manager is given as (:class:`StrategyManager` takes each):

- a reference policy's name (``REFERENCE_POLICIES``: ``"stage-heuristic"``...), built afresh
  for each conversation with that conversation's env;
- a path to a Stable-Baselines3 model trained on ``EmpathyDialogue-v0`` (``*.zip``; PPO,
  DQN, or sb3-contrib's RecurrentPPO / MaskablePPO, told apart by the saved policy class),
  played deterministically;
- a model with SB3's ``predict`` (one model shared; a recurrent one's memory per
  conversation);
- a policy object (``reset(seed=)`` + ``obs -> action``), copied for each conversation so the
  conversations of a call, which advance together, do not share its state;
- a plain callable ``obs -> strategy index`` (called as it is).

Example:
    >>> manager = StrategyManager("stage-heuristic")
    >>> manager.label
    'stage-heuristic'
    >>> directive(2)  # doctest: +NORMALIZE_WHITESPACE
    '\\n\\n(Your next move: Reflection of feelings — Name the feeling they seem to have and show
    that you understand it. Say it in one or two sentences.)'
"""

from __future__ import annotations

import copy
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dialogue_gym.agents.planner_realiser import STRATEGY_OBS_KEYS
from dialogue_gym.agents.reference import REFERENCE_POLICIES, make_policy
from dialogue_gym.core.vocabulary import STRATEGIES
from dialogue_gym.evaluation.episodes import ModelPolicy
from dialogue_gym.user.voices.fragments import load_fragments

__all__ = [
    "DIRECTIVE_TOKENS",
    "NO_MANAGER",
    "StrategyManager",
    "check_manager",
    "delivery_agreement",
    "directive",
    "load_sb3_model",
    "manager_choices",
]

#: The ``--manager`` value for the flat policy (no manager).
NO_MANAGER = "none"
#: Room for one :func:`directive` in a conversation's tokens (the longest is 38 of SmolLM2's
#: tokens; a manager's rollout budgets it per turn, beside the template's).
DIRECTIVE_TOKENS = 48


def directive(strategy: int) -> str:
    """What the realiser is told of the manager's choice, appended to the user's message.

    The strategy's name and its one-line ESConv definition, as the LLM realiser's prompt
    words it (``fragments.yaml``'s ``llm.strategies``), and the length a turn should have:
    a short turn is all delivery asks for.

    Args:
        strategy: An index into ``STRATEGIES``.

    Example:
        >>> directive(0).strip()
        '(Your next move: Question — Ask one open question that helps them say more about their problem or feelings. Say it in one or two sentences.)'
    """  # noqa: E501
    line = load_fragments().strategy_lines[int(strategy)]
    return (
        f"\n\n(Your next move: {STRATEGIES[int(strategy)]} — {line} "
        "Say it in one or two sentences.)"
    )


def manager_choices() -> tuple[str, ...]:
    """The named managers: :data:`NO_MANAGER` and the reference policies.

    Example:
        >>> manager_choices()[:3]
        ('none', 'random', 'always-question')
    """
    return (NO_MANAGER, *REFERENCE_POLICIES)


def check_manager(spec: str) -> None:
    """Refuse a manager name that is neither a choice nor an existing ``*.zip`` model.

    Args:
        spec: ``"none"``, a reference policy's name, or a path to an SB3 model (``*.zip``).

    Raises:
        ValueError: Naming the value and the choices.

    Example:
        >>> check_manager("stage-heuristic")
        >>> check_manager("stage")
        Traceback (most recent call last):
        ...
        ValueError: 'stage' is not a manager; choices: none, random, always-question, always-reassure, always-suggest, stage-heuristic, oracle, or a path to an SB3 model (*.zip) trained on EmpathyDialogue-v0
    """  # noqa: E501
    if spec in manager_choices():
        return
    choices = (
        f"choices: {', '.join(manager_choices())}, or a path to an SB3 model (*.zip) trained "
        "on EmpathyDialogue-v0"
    )
    if spec.lower().endswith(".zip"):
        if not Path(spec).is_file():
            raise ValueError(f"{spec!r}: no SB3 model file there; {choices}")
        return
    raise ValueError(f"{spec!r} is not a manager; {choices}")


def load_sb3_model(path: str | Path) -> Any:
    """Load an SB3 model saved with ``model.save`` (on the CPU), its algorithm told by the
    saved policy class: sb3-contrib's RecurrentPPO or MaskablePPO, DQN, else PPO (whose
    policy A2C's shares).

    Raises:
        ValueError: No such file, or not an SB3 zip.
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no SB3 model at {str(path)!r}")
    try:
        with zipfile.ZipFile(file) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not an SB3 model zip ({err})") from None
    policy = data.get("policy_class", {})
    where = f"{policy.get('__module__', '')} {policy.get(':serialized:', '')}".lower()
    if "sb3_contrib" in where and "recurrent" in where:
        from sb3_contrib import RecurrentPPO as Algorithm
    elif "sb3_contrib" in where and "maskable" in where:
        from sb3_contrib import MaskablePPO as Algorithm
    elif "dqn" in where:
        from stable_baselines3 import DQN as Algorithm
    else:
        from stable_baselines3 import PPO as Algorithm
    return Algorithm.load(str(file), device="cpu")


class StrategyManager:
    """Picks the strategy of each turn of a conversation, from the text env's observation.

    Args:
        spec: A reference policy's name, a path to an SB3 model (``*.zip``), a model with
            ``predict``, a policy object (``reset`` + ``__call__``) or a callable
            ``obs -> strategy index``; see the module's docstring.

    Attributes:
        label: The manager in words (the name, the path, or the object's class).

    Raises:
        ValueError: An unknown name, or a path that is not an SB3 model.
    """

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.model: Any = None
        if isinstance(spec, str | Path):
            text = str(spec)
            if text == NO_MANAGER:
                raise ValueError(f"{text!r} means no manager: pass manager=None instead")
            check_manager(text)
            self.label = text
            if text.lower().endswith(".zip"):
                self.model = load_sb3_model(text)
        else:
            self.label = getattr(spec, "__name__", type(spec).__name__)
            if callable(getattr(spec, "predict", None)):
                self.model = spec
            elif not callable(spec):
                raise ValueError(
                    f"a manager must be a name, a *.zip path, a model with predict() or a "
                    f"callable obs -> strategy, got {spec!r}"
                )

    def start(self, env: Any, seed: int | None) -> Callable[[Mapping[str, Any]], int]:
        """The manager of one conversation (reset with its seed): ``obs -> strategy index``.

        Args:
            env: The conversation's env (a named policy is built for it: the oracle reads it).
            seed: The conversation's seed.
        """
        if self.model is not None:
            policy: Any = ModelPolicy(self.model, deterministic=True)
        elif isinstance(self.spec, str | Path):
            policy = make_policy(str(self.spec), env)
        elif callable(getattr(self.spec, "reset", None)):
            # The conversations of a call advance together: each needs its own state.
            policy = copy.deepcopy(self.spec)
        else:
            policy = self.spec
        if callable(getattr(policy, "reset", None)):
            policy.reset(seed=seed)

        def choose(obs: Mapping[str, Any]) -> int:
            # What a strategy policy was trained on: the strategy env's keys, not the words.
            strategy = int(np.asarray(policy({k: np.asarray(obs[k]) for k in STRATEGY_OBS_KEYS})))
            if not 0 <= strategy < len(STRATEGIES):
                raise ValueError(
                    f"manager {self.label} chose {strategy}, not a strategy index "
                    f"(0..{len(STRATEGIES) - 1})"
                )
            return strategy

        return choose


def delivery_agreement(planned: Sequence[Sequence[str]], read: Sequence[Sequence[str]]) -> float:
    """Share of turns whose words the recogniser read as the planned strategy (pooled over
    conversations; ``nan`` with no planned turn).

    Args:
        planned: Per conversation, the manager's strategy names turn by turn.
        read: Per conversation, the recogniser's readings turn by turn.

    Example:
        >>> delivery_agreement([["Question", "Information"]], [["Question", "Others"]])
        0.5
    """
    pairs = [
        (p, r) for ps, rs in zip(planned, read, strict=True) for p, r in zip(ps, rs, strict=False)
    ]
    return float(np.mean([p == r for p, r in pairs])) if pairs else float("nan")
