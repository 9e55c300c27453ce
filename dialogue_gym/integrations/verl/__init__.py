"""verl adapter: the simulated user of ``EmpathyDialogueText-v0`` as the user of a verl rollout.

verl (RLVER's engine) trains a language model on multi-turn conversations; the other side of
the conversation is a *user simulator* that verl asks for the next user turn and a score. This
package is that simulator, backed by the env: each conversation (``instance_id``) is its own
simulated user (its own env, seeded by the dataset row), the policy's words are the env's
action, the user's reply is the env's ``info["user_utterance"]``, and the per-turn score is
the reward of one of our reward wrappers (by name; RLVER's layout by default:
``final_emotion``, ``max(e_T / 100, 0)`` once at the end).

verl's own interface for this moved between releases, so there are two forms over one store of
users (:class:`DialogueInteraction`), and the dataset both read:

- :mod:`~dialogue_gym.integrations.verl.interaction`: :class:`DialogueInteraction`, the store
  of users and verl's ``BaseInteraction`` (verl 0.4.1 to 0.7.1, loaded from
  ``examples/verl/interaction_config.yaml``), and :func:`compute_score` (verl's reward
  function for this form);
- :mod:`~dialogue_gym.integrations.verl.agent_loop`: ``DialogueAgentLoop``, verl >= 0.8's
  ``AgentLoopBase`` (``examples/verl/agent_loop_config.yaml``), which drives a
  :class:`DialogueInteraction` (:func:`shared_interaction`) itself, so both forms play the
  same users; built on first use (``from dialogue_gym.integrations.verl import
  DialogueAgentLoop``), which imports verl;
- :mod:`~dialogue_gym.integrations.verl.data`: :func:`verl_rows`, verl's RLHF-dataset rows,
  which name each conversation's card and seed, so the opening line verl shows the policy is
  the one the simulated user said (checked on the first turn).

verl's configs name the classes by this package's path, which re-exports them:
``dialogue_gym.integrations.verl.DialogueInteraction`` (``class_name``) and
``dialogue_gym.integrations.verl.DialogueAgentLoop`` (``_target_``).

``pip install 'dialogue_gym[verl]'`` installs verl; training needs GPUs (see ``docs/verl.md``).
This package imports verl only for ``BaseInteraction`` (verl < 0.8) and ``DialogueAgentLoop``.

Example:
    >>> import asyncio
    >>> user = DialogueInteraction({"name": "dialogue_gym", "env_kwargs": {"scenarios": "test"}})
    >>> async def talk():
    ...     await user.start_interaction("conv-1", seed=0, card=0)
    ...     chat = [{"role": "user", "content": user.opening("conv-1")},
    ...             {"role": "assistant", "content": "What has been the hardest part?"}]
    ...     done, reply, score, meta = await user.generate_response("conv-1", chat)
    ...     await user.finalize_interaction("conv-1")
    ...     return done, score, meta["strategy"], len(user)
    >>> asyncio.run(talk())
    (False, 0.0, 'Question', 0)
"""

from __future__ import annotations

from typing import Any

from dialogue_gym.integrations.verl.agent_loop import AGENT_NAME, shared_interaction
from dialogue_gym.integrations.verl.data import verl_rows
from dialogue_gym.integrations.verl.interaction import (
    DEFAULT_CONFIG,
    INTERACTION_NAME,
    DialogueInteraction,
    UnknownInstanceError,
    compute_score,
)

# ``DialogueAgentLoop`` is not listed: it is built on first access, which imports verl >= 0.8,
# and a star import must not need verl.
__all__ = [
    "AGENT_NAME",
    "DEFAULT_CONFIG",
    "INTERACTION_NAME",
    "DialogueInteraction",
    "UnknownInstanceError",
    "compute_score",
    "shared_interaction",
    "verl_rows",
]


def __getattr__(name: str) -> Any:
    # ``DialogueAgentLoop`` (hydra's ``_target_`` lookup included) is the agent-loop module's,
    # built there on first access: importing verl's agent loop pulls in Ray, hydra and more.
    if name == "DialogueAgentLoop":
        from dialogue_gym.integrations.verl import agent_loop

        cls = agent_loop.DialogueAgentLoop
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
