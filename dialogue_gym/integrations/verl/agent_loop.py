"""verl >= 0.8's agent-loop form: ``DialogueAgentLoop``, our simulated user inside verl's rollout.

verl 0.8 deleted ``verl/interactions`` (verl-project/verl#6074, "[BREAKING] deprecate
verl/interactions"; the agent loop is the sanctioned path). ``DialogueAgentLoop`` is an
``AgentLoopBase`` (``agent_name: dialogue_gym_user``, declared in
``rollout.agent.agent_loop_config_path``, ``examples/verl/agent_loop_config.yaml``) that runs
the conversation token in, token out with verl's own Continuous Token builder, masks the
user's tokens (``response_mask`` 0) and returns the episode's return as the trajectory's
``reward_score`` and the per-turn scores as ``turn_scores``. It drives a
:class:`~dialogue_gym.integrations.verl.interaction.DialogueInteraction` itself (one per config
and process: :func:`shared_interaction`), so both forms play the same users.

It is built on first use (``from dialogue_gym.integrations.verl import DialogueAgentLoop``),
which imports verl; the rest of this module does not.

Example:
    >>> shared_interaction({"reward": "sparse"}) is shared_interaction({"reward": "sparse"})
    True
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from dialogue_gym.integrations.verl.interaction import DialogueInteraction

__all__ = ["AGENT_NAME", "shared_interaction"]

#: The agent loop's name (verl >= 0.8): the rows' ``agent_name``.
AGENT_NAME = "dialogue_gym_user"

#: One interaction per config in a process: verl builds an agent loop per trajectory, and the
#: trajectories of a worker share its users' store and env pool.
_SHARED: dict[str, DialogueInteraction] = {}


def shared_interaction(config: Mapping[str, Any] | None = None) -> DialogueInteraction:
    """The process's :class:`DialogueInteraction` for ``config`` (built on first use)."""
    plain = _to_plain(config or {})
    key = json.dumps(plain, sort_keys=True, default=str)
    if key not in _SHARED:
        _SHARED[key] = DialogueInteraction(plain)
    return _SHARED[key]


def _to_plain(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config as a plain dict: hydra hands an agent loop OmegaConf containers."""
    try:
        from omegaconf import OmegaConf
    except ImportError:  # no verl, so no OmegaConf: a plain mapping already
        return copy.deepcopy(dict(config))
    if OmegaConf.is_config(config):
        return OmegaConf.to_container(config, resolve=True)
    return copy.deepcopy(dict(config))


def _build_agent_loop() -> type:
    """``DialogueAgentLoop``, on verl's ``AgentLoopBase`` (imports verl >= 0.8)."""
    try:
        from verl.experimental.agent_loop.agent_loop import (
            AgentLoopBase,
            AgentLoopOutput,
        )
        from verl.utils.profiler import simple_timer
    except ImportError as err:
        raise ImportError(
            f"DialogueAgentLoop needs verl >= 0.8 ({err}); pip install 'dialogue_gym[verl]'"
        ) from None

    class DialogueAgentLoop(AgentLoopBase):
        """verl's agent loop with our simulated user as the other side (verl >= 0.8).

        Per trajectory: start a conversation from the row's ``interaction_kwargs``; then
        generate the policy's turn (token in, token out), hand its text to the user, append
        the user's reply through verl's Continuous Token builder with ``response_mask`` 0, and
        repeat until the episode ends or verl's limits (``response_length``,
        ``multi_turn.max_assistant_turns``, ``max_user_turns``) stop it. The trajectory's
        ``reward_score`` is the episode's return under the configured reward (on the last
        token, as RLVER pays it); ``extra_fields["turn_scores"]`` holds the per-turn scores.
        The conversation is finalized whatever happens.

        Args:
            *args: verl's ``AgentLoopBase`` arguments.
            interaction_config: A :class:`DialogueInteraction` config (the agent-loop config
                entry's key; default: :data:`DEFAULT_CONFIG`).
            score_trajectory: Set ``reward_score`` (else verl's reward loop scores it).
            name: The entry's name (hydra passes it): unused.
            tools: verl's tools (hydra passes them): unused.
            **kwargs: verl's ``AgentLoopBase`` keyword arguments.
        """

        def __init__(
            self,
            *args: Any,
            interaction_config: Mapping[str, Any] | None = None,
            score_trajectory: bool = True,
            name: str | None = None,
            tools: Any = None,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            rollout = self.rollout_config
            self.response_length = int(rollout.response_length)
            self.max_assistant_turns = rollout.multi_turn.get("max_assistant_turns")
            self.max_user_turns = rollout.multi_turn.get("max_user_turns")
            self.interaction = shared_interaction(interaction_config)
            self.score_trajectory = bool(score_trajectory)

        async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
            messages = [dict(m) for m in kwargs["raw_prompt"]]
            extra_info = kwargs.get("extra_info") or {}
            user_kwargs = dict(
                kwargs.get("interaction_kwargs") or extra_info.get("interaction_kwargs") or {}
            )
            instance_id = uuid.uuid4().hex
            await self.interaction.start_interaction(instance_id, **user_kwargs)
            try:
                return await self._converse(instance_id, messages, sampling_params)
            finally:
                await self.interaction.finalize_interaction(instance_id)

        async def _converse(
            self, instance_id: str, messages: list[dict[str, Any]], sampling_params: dict[str, Any]
        ) -> AgentLoopOutput:
            metrics: dict[str, Any] = {}
            token_ids = await self.ct_build_initial_tokens(messages)
            mask: list[int] = []
            logprobs: list[float] = []  # when the server gives them; 0.0 on the user's tokens
            assistant_turns = user_turns = 0
            started = time.perf_counter()
            while True:
                with simple_timer("generate_sequences", metrics):
                    output = await self.server_manager.generate(
                        request_id=instance_id,
                        prompt_ids=token_ids,
                        sampling_params=sampling_params,
                    )
                if metrics.get("num_preempted") is None:
                    metrics["num_preempted"] = (
                        -1 if output.num_preempted is None else output.num_preempted
                    )
                merged, mask, aligned = await self.ct_merge_assistant_token(
                    token_ids,
                    output.token_ids,
                    mask,
                    logprobs if (logprobs or output.log_probs) else None,
                    assistant_logprobs=output.log_probs or None,
                )
                token_ids = merged.token_ids
                logprobs = aligned if aligned is not None else logprobs
                assistant_turns += 1
                if len(mask) >= self.response_length:
                    break
                text = self.tokenizer.decode(output.token_ids, skip_special_tokens=True)
                messages.append({"role": "assistant", "content": text})
                before = list(messages)
                done, reply, _, _ = await self.interaction.generate_response(instance_id, messages)
                user_turns += 1
                if done:
                    break
                if self.max_assistant_turns and assistant_turns >= self.max_assistant_turns:
                    break
                if self.max_user_turns and user_turns >= self.max_user_turns:
                    break
                messages.append({"role": "user", "content": reply})
                merged, new_mask, aligned = await self.ct_merge_context_msg(
                    before, messages, token_ids, mask, logprobs or None
                )
                if len(new_mask) >= self.response_length:
                    break
                token_ids, mask = merged.token_ids, new_mask
                if logprobs:
                    logprobs = aligned or []
            # verl's slot for time spent outside generation: here, the simulated user's turns.
            metrics["tool_calls"] = time.perf_counter() - started - metrics["generate_sequences"]
            # The response is what the mask covers; the prompt, everything before it.
            response = token_ids[len(token_ids) - len(mask) :]
            prompt = token_ids[: len(token_ids) - len(mask)]
            scores = self.interaction.turn_scores(instance_id)
            outcome = self.interaction.outcome(instance_id)
            return AgentLoopOutput(
                prompt_ids=prompt,
                response_ids=response[: self.response_length],
                response_mask=mask[: self.response_length],
                response_logprobs=logprobs[: self.response_length] if logprobs else None,
                reward_score=(
                    await self.interaction.calculate_score(instance_id)
                    if self.score_trajectory
                    else None
                ),
                num_turns=assistant_turns + user_turns + 1,
                metrics=metrics,
                extra_fields={
                    "turn_scores": scores,
                    "tool_rewards": [],
                    "dialogue": {"ended": bool(outcome), **outcome},
                },
            )

    # The package's path, where configs name it (hydra's ``_target_``) and where pickling by
    # reference (Ray) finds it again: the package hands this module's class out on access.
    DialogueAgentLoop.__module__ = __name__.rpartition(".")[0]
    DialogueAgentLoop.__qualname__ = "DialogueAgentLoop"
    # Not ``register``ed here: verl looks the name up before it imports this module, so the
    # agent-loop config file must name it (with its ``interaction_config``), and registering on
    # import would replace that entry with a bare one.
    return DialogueAgentLoop


def __getattr__(name: str) -> Any:
    # ``DialogueAgentLoop`` is built on first use (hydra's ``_target_`` lookup included):
    # importing verl's agent loop pulls in Ray, hydra and more, which the interaction form
    # and the rest of this module do not need.
    if name == "DialogueAgentLoop":
        cls = _build_agent_loop()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
