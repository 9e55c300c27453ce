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
