"""The TRL adapter (``dialogue_gym.integrations.trl``): datasets, the multi-turn
``rollout_func`` token by token, the ``environment_factory`` class, and real GRPO steps.

The models are a two-layer Llama with random weights and SmolLM2's tokenizer (read from the
embedded GGUF once per session); the GRPO tests, marked slow, train it for two steps on the CPU.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")

from dialogue_gym.envs.text import to_action  # noqa: E402
from dialogue_gym.integrations.trl import (  # noqa: E402
    ENV_ID,
    TOOL_SYSTEM_PROMPT,
    DialogueRollout,
    DialogueToolEnv,
    episode_dataset,
    smollm2_tokenizer,
    tiny_policy,
    tool_chat_template,
)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

REWARD = "emotion_delta"  # pays every turn: returns differ within a group, so advantages do


def grpo_config(tmp_path: Any, **kwargs: Any) -> Any:
    from trl import GRPOConfig

    base: dict[str, Any] = {
        "output_dir": str(tmp_path),
        "per_device_train_batch_size": 2,
        "num_generations": 2,
        "max_steps": 2,
        "max_completion_length": 256,
        "learning_rate": 1e-3,
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "no",
        "use_cpu": True,
        "seed": 0,
    }
    return GRPOConfig(**{**base, **kwargs})


@pytest.fixture(scope="module")
def test_rows() -> Any:
    return episode_dataset("test", n=4, seed=0)


# ------------------------------------------------------------------------ the dataset


def test_a_group_shares_one_simulated_user(test_rows: Any) -> None:
    assert test_rows.column_names == ["prompt", "card", "seed", "split"]
    prompts = [str(p) for p in test_rows["prompt"]]
    assert len(set(prompts)) == len(prompts), "a prompt must name one user"
    assert episode_dataset("test", n=4, seed=0)["seed"] == test_rows["seed"]  # reproducible
    row = test_rows[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    # The num_generations completions of a row reset with its card and seed: the same user,
    # who opens with the row's line and goes on the same way when told the same things.
    said = []
    for _ in range(2):
        env = gym.make(ENV_ID, voice="template", recogniser="lexical", scenarios="test")
        _, info = env.reset(seed=row["seed"], options={"card": row["card"]})
        assert env.unwrapped.card.id == row["card"] and info["card_id"] == env.unwrapped.card.key
        assert info["user_utterance"] == row["prompt"][-1]["content"]
        said.append(env.step("What has been the hardest part?")[-1]["user_utterance"])
    assert said[0] == said[1]
    # The rollout maps the prompt back to that user; an unknown prompt is an error.
    rollout = DialogueRollout(test_rows)
    assert rollout.user_of(row["prompt"]) == (row["card"], row["seed"], "test")
    with pytest.raises(KeyError, match="has not indexed"):
        rollout.user_of([{"role": "user", "content": "hello?"}])


def test_tool_env_protocol(test_rows: Any) -> None:
    from transformers.utils import get_json_schema

    schema = get_json_schema(DialogueToolEnv.reply)  # what TRL shows the model
    assert schema["function"]["name"] == "reply"
    assert "message" in schema["function"]["parameters"]["properties"]

    env = DialogueToolEnv.factory(reward=REWARD, max_turns=2)()
    row = test_rows[1]
    assert env.reset(**row) is None  # the opening line is already the prompt's
    assert (
        env.reset(card=row["card"], seed=row["seed"], split="test")
        == (row["prompt"][-1]["content"])
    )
    first = env.reply("It sounds like you're feeling really alone with this.")
    assert first == env.transcript[2]["content"] and not env.done
    last = env.reply("What has been the hardest part of all this for you?")
    assert env.done and last.endswith("(The conversation has ended.)")
    with pytest.raises(RuntimeError, match="ended"):
        env.reply("Hello?")
    # get_reward is the wrapper's return: replay the same user with the same words.
    replay = gym.make(
        ENV_ID, voice="template", recogniser="lexical", scenarios="test", max_turns=2, reward=REWARD
    )
    replay.reset(seed=row["seed"], options={"card": row["card"]})
    total = sum(replay.step(m["content"])[1] for m in env.transcript[1::2])
    assert env.get_reward() == pytest.approx(total)


# ------------------------------------------------------------ the rollout, token by token


class GenerateSpy:
    """Records what ``model.generate`` was given and what it returned."""

    def __init__(self, model: Any) -> None:
        self.calls: list[tuple[list[list[int]], list[list[int]]]] = []
        self.generate = model.generate
        model.generate = self

    def __call__(self, **kwargs: Any) -> Any:
        out = self.generate(**kwargs)
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        width = ids.shape[1]
        inputs = [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]
        self.calls.append((inputs, out.sequences[:, width:].tolist()))
        return out


def runs(mask: list[int]) -> list[tuple[int, int, int]]:
    """``(value, start, end)`` of each run of equal values."""
    found, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            found.append((mask[start], start, i))
            start = i
    return found


def test_rollout_ids_are_the_policy_tokens_and_the_user_turns(tmp_path: Any) -> None:
    from trl import GRPOTrainer

    model, tokenizer = tiny_policy(smollm2_tokenizer())
    eos = tokenizer.eos_token_id
    data = episode_dataset("test", n=2, seed=1)
    rollout = DialogueRollout(data, reward=REWARD, max_turns=3, turn_tokens=6)
    # A bias on the end-of-turn token makes the random policy end some turns itself and run
    # out of tokens on others: both ways of closing a turn are checked.
    config = grpo_config(tmp_path, generation_kwargs={"sequence_bias": {(eos,): 9.0}})
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rollout.reward_func,
        train_dataset=data,
        rollout_func=rollout,
        args=config,
    )
    spy = GenerateSpy(model)
    prompts = [data[0]["prompt"], data[0]["prompt"], data[1]["prompt"], data[1]["prompt"]]
    out = rollout(prompts, trainer)

    assert len(out["completion_ids"]) == len(prompts)
    assert len(spy.calls) == max(out["turns"])  # one generate call a turn for all episodes
    ended_both_ways = set()
    for i, prompt in enumerate(prompts):
        ids, mask, logps = out["completion_ids"][i], out["env_mask"][i], out["logprobs"][i]
        assert len(ids) == len(mask) == len(logps)
        assert out["prompt_ids"][i] == tokenizer.apply_chat_template(
            prompt, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        segments = runs(mask)
        policy = [(s, e) for v, s, e in segments if v == 1]
        template = [(s, e) for v, s, e in segments if v == 0]
        assert len(policy) == out["turns"][i] and len(template) == out["turns"][i] - 1
        assert segments[0][0] == 1 and segments[-1][0] == 1  # starts and ends with the policy
        # Turn k's policy tokens are exactly what generate sampled for this episode at call
        # k (up to its first end-of-turn token), and generate was given exactly the prompt
        # and the completion so far: token in, token out.
        card, seed, _ = rollout.user_of(prompt)
        env = gym.make(
            ENV_ID, voice="template", scenarios="test", max_turns=3, reward=REWARD,
        )  # fmt: skip
        env.reset(seed=seed, options={"card": card})
        total = 0.0
        for k, (start, end) in enumerate(policy):
            inputs, generated = spy.calls[k]
            row = [j for j in range(len(prompts)) if out["turns"][j] > k].index(i)
            assert inputs[row] == out["prompt_ids"][i] + ids[:start]
            sampled = generated[row]
            cut = sampled.index(eos) + 1 if eos in sampled else len(sampled)
            assert ids[start:end] == sampled[:cut]
            assert all(lp <= 0.0 for lp in logps[start:end])
            ended_both_ways.add(ids[end - 1] == eos)
            # The user's answer (an independent replay of the same user) follows as template
            # tokens: the end of the turn when the policy did not write it, the user's
            # message, the next assistant header.
            text = tokenizer.decode(ids[start:end], skip_special_tokens=True).strip()
            _, reward, term, trunc, info = env.step(to_action(text))
            total += reward
            if k < len(template):
                t_start, t_end = template[k]
                assert t_start == end
                closing = "" if ids[end - 1] == eos else "<|im_end|>"
                assert tokenizer.decode(ids[t_start:t_end]) == (
                    f"{closing}\n<|im_start|>user\n{info['user_utterance']}<|im_end|>\n"
                    "<|im_start|>assistant\n"
                )
                assert all(lp == 0.0 for lp in logps[t_start:t_end])
            else:
                assert term or trunc
        assert out["env_reward"][i] == pytest.approx(total)
        assert out["final_emotion"][i] == pytest.approx(info["emotion"])
        assert out["success"][i] == info["success"] and out["user_left"][i] == info["user_left"]
    assert ended_both_ways == {True, False}
    # A group (the same prompt twice) talks to the same user.
    assert rollout.episodes[0].messages[1] == rollout.episodes[1].messages[1]


# ------------------------------------------------------------------ real GRPO steps


def _parameters(model: Any) -> list[Any]:
    return [p.detach().clone() for p in model.parameters()]


def _changed(before: list[Any], model: Any) -> bool:
    return any(not a.equal(b.detach()) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.slow
def test_two_grpo_steps_through_rollout_func(tmp_path: Any) -> None:
    from trl import GRPOTrainer

    model, tokenizer = tiny_policy(smollm2_tokenizer())
    data = episode_dataset("train", n=8, seed=0)
    rollout = DialogueRollout(data, reward=REWARD, max_turns=3, turn_tokens=12)
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rollout.reward_func,
        train_dataset=data,
        rollout_func=rollout,
        args=grpo_config(tmp_path),
    )
    before = _parameters(model)
    trainer.train()
    assert _changed(before, model)
    logs = [h for h in trainer.state.log_history if "rewards/env_reward/std" in h]
    assert len(logs) == 2
    assert any(h["rewards/env_reward/std"] > 0 for h in logs), "env rewards were all equal"
    assert all("env/final_emotion" in h and "env/success" in h for h in logs)
    assert len(rollout.history) == 2 and rollout.history[0]["episodes"] == 2


def tool_call_bias(tokenizer: Any, said: tuple[str, ...]) -> dict[tuple[int, ...], float]:
    """A ``sequence_bias`` that makes the random policy answer every turn with a ``reply``
    call saying one of ``said`` (its own logits choose which): a stand-in for a model trained
    to call tools, which no random-weights model is. Each token of the call, given the three
    before it (the assistant header at first), gets +100."""
    header = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    bias: dict[tuple[int, ...], float] = {}
    for text in said:
        call = {"type": "function", "function": {"name": "reply", "arguments": {"message": text}}}
        turn = [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
        ]
        ids = tokenizer.apply_chat_template(turn, tokenize=True, return_dict=False)
        start = max(p for p in range(len(ids)) if ids[p : p + len(header)] == header)
        ids = ids[start : ids.index(tokenizer.eos_token_id, start) + 1]
        for i in range(len(header), len(ids)):
            bias[tuple(ids[i - 3 : i + 1])] = 100.0
    return bias


def tool_trainer(tmp_path: Any, factory: Any, **config: Any) -> Any:
    """A ``GRPOTrainer`` of a tiny policy against ``factory``'s tool envs, nudged to call the
    ``reply`` tool with a Question and an Others line; ``config`` over the tool tests' GRPO
    settings (4 completions a step, one group, two tool calls at most)."""
    from trl import GRPOTrainer

    tokenizer = smollm2_tokenizer()
    tokenizer.chat_template = tool_chat_template()  # SmolLM2's own template does no tools
    model, tokenizer = tiny_policy(tokenizer)
    data = episode_dataset("train", n=8, seed=0, system_prompt=TOOL_SYSTEM_PROMPT)
    said = ("What happened?", "Thanks for telling me.")  # a Question, and Others
    settings = {
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "max_completion_length": 160,
        "max_tool_calling_iterations": 2,
        "generation_kwargs": {"sequence_bias": tool_call_bias(tokenizer, said)},
    }
    return GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        train_dataset=data,
        environment_factory=factory,
        args=grpo_config(tmp_path, **{**settings, **config}),
    )


@pytest.mark.slow
def test_two_grpo_steps_through_environment_factory(tmp_path: Any) -> None:
    made: list[DialogueToolEnv] = []

    def factory() -> DialogueToolEnv:
        made.append(DialogueToolEnv.factory(reward=REWARD, max_turns=2)())
        return made[-1]

    trainer = tool_trainer(tmp_path, factory)
    model = trainer.model
    before = _parameters(model)
    trainer.train()
    assert _changed(before, model)
    logs = [h for h in trainer.state.log_history if "rewards/DialogueToolEnv/std" in h]
    assert len(logs) == 2
    assert any(h["tools/call_frequency"] > 0 for h in logs), "the policy never called reply"
    assert any(h["rewards/DialogueToolEnv/std"] > 0 for h in logs), "env rewards were all equal"
    assert any(len(env.transcript) > 1 for env in made)


# ------------------------------------------------- the hierarchical realiser (manager=)


@pytest.fixture(scope="module")
def tiny_trainer(tmp_path_factory: Any) -> Any:
    """A ``GRPOTrainer`` of a tiny policy whose end-of-turn bias closes turns both ways; the
    manager tests call their own rollouts with it (its ``rollout_func`` is not used)."""
    from trl import GRPOTrainer

    model, tokenizer = tiny_policy(smollm2_tokenizer())
    data = episode_dataset("test", n=2, seed=1)
    rollout = DialogueRollout(data, reward=REWARD, max_turns=3, turn_tokens=6)
    config = grpo_config(
        tmp_path_factory.mktemp("manager"),
        generation_kwargs={"sequence_bias": {(tokenizer.eos_token_id,): 9.0}},
    )
    return GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rollout.reward_func,
        train_dataset=data,
        rollout_func=rollout,
        args=config,
    )


def test_the_managers_move_is_in_the_user_turns_and_never_trained_on(tiny_trainer: Any) -> None:
    import numpy as np
    import torch

    from dialogue_gym.agents.planner_realiser import STRATEGY_OBS_KEYS
    from dialogue_gym.core.vocabulary import STRATEGIES
    from dialogue_gym.integrations.trl.manager import directive

    tokenizer = tiny_trainer.processing_class
    eos = tokenizer.eos_token_id
    data = episode_dataset("test", n=2, seed=1)
    seen: list[dict[str, Any]] = []

    def manager(obs: dict[str, Any]) -> int:
        seen.append(obs)
        return (3 * len(seen)) % len(STRATEGIES)  # every strategy in turn, not by episode

    rollout = DialogueRollout(data, reward=REWARD, max_turns=3, turn_tokens=6, manager=manager)
    prompts = [data[0]["prompt"], data[0]["prompt"], data[1]["prompt"]]
    torch.manual_seed(0)
    out = rollout(prompts, tiny_trainer)
    episodes = rollout.episodes

    # Called once a policy turn: at the reset, then after each step that did not end the
    # conversation; the episodes advance together, so the calls interleave turn by turn.
    assert len(seen) == sum(out["turns"]) == sum(len(ep.planned) for ep in episodes)
    order = [(i, k) for k in range(3) for i, ep in enumerate(episodes) if len(ep.planned) > k]
    replies = 0
    assert all(set(obs) == set(STRATEGY_OBS_KEYS) for obs in seen)
    for i, ep in enumerate(episodes):
        ids, mask = out["completion_ids"][i], out["env_mask"][i]
        planned = [STRATEGIES.index(s) for s in ep.planned]
        assert len(planned) == ep.turns == out["turns"][i]
        # The opening move is in the prompt's last user message, as the prompt's own ids.
        moved = [dict(m) for m in prompts[i]]
        moved[-1]["content"] += directive(planned[0])
        assert out["prompt_ids"][i] == tokenizer.apply_chat_template(
            moved, add_generation_prompt=True, tokenize=True, return_dict=False
        )
        assert ep.messages[1]["content"] == moved[-1]["content"]
        # A replay of the same user with the policy's words: the manager saw each turn's
        # observation, and each later move is in the template tokens after the user's reply.
        card, seed, _ = rollout.user_of(prompts[i])
        env = gym.make(ENV_ID, voice="template", scenarios="test", max_turns=3, reward=REWARD)
        obs, _ = env.reset(seed=seed, options={"card": card})
        segments = runs(mask)
        policy = [(s, e) for v, s, e in segments if v == 1]
        template = [(s, e) for v, s, e in segments if v == 0]
        for k, (start, end) in enumerate(policy):
            got = seen[order.index((i, k))]
            assert all(np.array_equal(got[key], obs[key]) for key in STRATEGY_OBS_KEYS)
            text = tokenizer.decode(ids[start:end], skip_special_tokens=True).strip()
            assert "Your next move" not in tokenizer.decode(ids[start:end])
            obs, _, _, _, info = env.step(to_action(text))
            if k < len(template):
                t_start, t_end = template[k]
                closing = "" if ids[end - 1] == eos else "<|im_end|>"
                assert tokenizer.decode(ids[t_start:t_end]) == (
                    f"{closing}\n<|im_start|>user\n{info['user_utterance']}"
                    f"{directive(planned[k + 1])}<|im_end|>\n<|im_start|>assistant\n"
                )
                assert ep.user_lines[k + 1] == info["user_utterance"]  # the reply alone
                replies += 1
        # Token in, token out still: the messages with their moves template to the prompt's
        # ids and the completion's template parts, each turn a prefix extension.
        before = tokenizer.apply_chat_template(
            ep.messages[:2], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        assert before == out["prompt_ids"][i]
        assert out["delivery"][i] == pytest.approx(ep.delivery_agreement)
        assert ep.delivery_agreement == np.mean(
            [p == r for p, r in zip(ep.planned, ep.strategies, strict=True)]
        )
    assert replies >= len(prompts)  # the later moves were checked, not only the opening
    assert rollout.completion_budget == 3 * (6 + 64 + 48)  # room for each turn's move
    assert all(len(ids) <= rollout.completion_budget for ids in out["completion_ids"])
    assert rollout.history[-1]["delivery"] == pytest.approx(np.mean(out["delivery"]))


def test_without_a_manager_the_rollout_is_the_flat_one(tiny_trainer: Any) -> None:
    import torch

    data = episode_dataset("test", n=2, seed=1)
    prompts = [data[0]["prompt"], data[1]["prompt"]]
    outs = []
    for kwargs in ({}, {"manager": None}):
        rollout = DialogueRollout(data, reward=REWARD, max_turns=3, turn_tokens=6, **kwargs)
        torch.manual_seed(0)
        outs.append(rollout(prompts, tiny_trainer))
        assert all(ep.planned == [] for ep in rollout.episodes)
        assert all(
            m["content"] == line
            for ep in rollout.episodes
            for m, line in zip(ep.messages[1::2], ep.user_lines, strict=False)
        )
    assert outs[0] == outs[1] and "delivery" not in outs[0]


def test_a_trained_sb3_manager_loads_from_its_zip(tiny_trainer: Any, tmp_path: Any) -> None:
    import numpy as np
    from stable_baselines3 import PPO

    from dialogue_gym.agents.planner_realiser import STRATEGY_OBS_KEYS
    from dialogue_gym.core.vocabulary import STRATEGIES
    from dialogue_gym.integrations.trl.manager import StrategyManager

    env = gym.make("EmpathyDialogue-v0", voice="template")
    ppo = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0)
    ppo.learn(256)
    path = tmp_path / "manager.zip"
    ppo.save(path)

    data = episode_dataset("test", n=2, seed=1)
    rollout = DialogueRollout(data, reward=REWARD, max_turns=2, turn_tokens=6, manager=str(path))
    assert rollout.manager is not None and rollout.manager.label == str(path)
    out = rollout([data[0]["prompt"], data[1]["prompt"]], tiny_trainer)
    assert [len(ep.planned) for ep in rollout.episodes] == out["turns"]
    assert all(s in STRATEGIES for ep in rollout.episodes for s in ep.planned)
    # The loaded manager decides as the saved model does, on the strategy env's keys.
    text_env = gym.make(ENV_ID, voice="template", scenarios="test")
    obs, _ = text_env.reset(seed=data[0]["seed"], options={"card": data[0]["card"]})
    choose = StrategyManager(str(path)).start(text_env, data[0]["seed"])
    action, _ = ppo.predict({k: obs[k] for k in STRATEGY_OBS_KEYS}, deterministic=True)
    assert (
        choose(obs) == int(np.asarray(action)) == STRATEGIES.index(rollout.episodes[0].planned[0])
    )


def test_a_named_manager_is_fresh_for_each_conversation() -> None:
    from dialogue_gym.agents.reference import StageHeuristicPolicy
    from dialogue_gym.integrations.trl.manager import StrategyManager

    env = gym.make(ENV_ID, voice="template", scenarios="test")
    obs, _ = env.reset(seed=0)
    for spec in ("stage-heuristic", StageHeuristicPolicy()):
        manager = StrategyManager(spec)
        first = manager.start(env, 0)
        opening = first(obs)
        second = manager.start(env, 0)
        assert second(obs) == opening  # its own state: not the first conversation's
        assert first(obs) != opening  # the heuristic alternates on its own last act
    with pytest.raises(ValueError, match="'stage' is not a manager; choices: none, random"):
        StrategyManager("stage")
    with pytest.raises(ValueError, match="no SB3 model file there"):
        StrategyManager("missing.zip")
    with pytest.raises(ValueError, match="pass manager=None"):
        StrategyManager("none")
