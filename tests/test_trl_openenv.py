"""TRL pointed at a served simulated user: the TRL adapter's ``base_url=`` forms against
OpenEnv's server on loopback.

The servers are real (OpenEnv's ``HTTPEnvServer`` under uvicorn: in a thread of this process,
or ``dialogue-gym serve`` in a process of its own, as a user starts it; ``openenv_servers``
starts both); the policies are ``tests/test_trl.py``'s two-layer Llama with random weights and
SmolLM2's tokenizer (read from the embedded GGUF: nothing is downloaded). The tests that start
a server are marked ``server``, the GRPO runs also ``slow``: ``make test`` runs them, plain
``pytest`` leaves them out.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

pytest.importorskip("trl")
pytest.importorskip("datasets")
pytest.importorskip("openenv", reason="OpenEnv: pip install 'dialogue_gym[serve]'")

import torch  # noqa: E402
from openenv_servers import serve_process, served, server_pool  # noqa: E402
from test_trl import grpo_config, tool_trainer  # noqa: E402  (the GRPO tests' own helpers)

from dialogue_gym import InvalidArgument  # noqa: E402
from dialogue_gym.integrations.trl import (  # noqa: E402
    ENV_ID,
    TOOL_SYSTEM_PROMPT,
    DialogueRollout,
    DialogueToolEnv,
    episode_dataset,
    smollm2_tokenizer,
    tiny_policy,
)

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

REWARD = "emotion_delta"  # pays every turn: a transcript's rewards say more than one number
#: The user every test plays, in process and served: the template voice is the adapter's
#: default (DEFAULT_ENV_KWARGS) and the recogniser ENV_ID's own; the server is told them.
USER = {"reward": REWARD, "max_turns": 3, "scenarios": "test"}
LINES = (
    "What has been the hardest part of all this for you?",
    "It sounds like you're feeling really alone with this.",
    "You've shown real strength by talking about this.",
)


@pytest.fixture(scope="module")
def server():
    """``server(env_id=ENV_ID, max_sessions=40, idle_timeout=None, **env_kwargs)``: a served
    user's URL (uvicorn in a thread, started on first use)."""
    with server_pool(ENV_ID) as get:
        yield get


def _active(url: str) -> int:
    return served().server_sessions(url)["active_sessions"]


def _wait_for_sessions(url: str, count: int, within: float = 5.0) -> None:
    start = time.monotonic()
    while (active := _active(url)) != count:
        assert time.monotonic() - start < within, f"{active} sessions after {within} s, not {count}"
        time.sleep(0.05)


def _trainer(rollout: DialogueRollout, data: Any, tmp_path: Any, **config: Any) -> Any:
    from trl import GRPOTrainer

    model, tokenizer = tiny_policy(smollm2_tokenizer())
    return GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=rollout.reward_func,
        train_dataset=data,
        rollout_func=rollout,
        args=grpo_config(tmp_path, **config),
    )


# -------------------------------------------------------- the same user, over the wire


@pytest.mark.server
def test_a_seeded_rollout_over_the_wire_is_the_in_process_rollout(server, tmp_path):
    url = server(**USER)
    data = episode_dataset("test", n=2, seed=1)
    settings = {"reward": REWARD, "max_turns": 3, "turn_tokens": 8}
    local = DialogueRollout(data, **settings)
    remote = DialogueRollout(data, **settings, base_url=url)
    assert remote.server["env_id"] == ENV_ID and remote.server["env_kwargs"]["reward"] == REWARD
    trainer = _trainer(local, data, tmp_path)
    prompts = [data[0]["prompt"], data[0]["prompt"], data[1]["prompt"], data[1]["prompt"]]
    outs = {}
    for name, rollout in (("local", local), ("remote", remote)):
        torch.manual_seed(0)  # the policy samples the same tokens: only the user's side differs
        outs[name] = rollout(prompts, trainer)
    assert _active(url) == len(prompts)  # one session a conversation, kept for the next call
    assert outs["remote"] == outs["local"]  # ids, masks, logprobs, env_reward, outcomes
    for here, there in zip(local.episodes, remote.episodes, strict=True):
        assert there == here  # messages (the transcript), emotions, user lines, strategies
    assert any(ep.turns > 1 for ep in remote.episodes)
    assert len(set(outs["remote"]["env_reward"])) > 1

    # A second call reuses the sessions; close() frees them on the server.
    torch.manual_seed(1)
    remote(prompts[:2], trainer)
    assert _active(url) == len(prompts)
    with remote:
        pass
    _wait_for_sessions(url, 0)
    local.close()


@pytest.mark.server
def test_the_tool_env_over_the_wire_is_the_in_process_tool_env(server):
    url = server(**USER)
    row = episode_dataset("test", n=1, seed=2, system_prompt=TOOL_SYSTEM_PROMPT)[0]
    factory = DialogueToolEnv.factory(reward=REWARD, max_turns=3, base_url=url)
    envs = {"local": DialogueToolEnv(reward=REWARD, max_turns=3), "remote": factory()}
    said: dict[str, list[Any]] = {}
    for name, env in envs.items():
        said[name] = [env.reset(**row), env.reset(card=row["card"], seed=row["seed"], split="test")]
        for line in LINES:
            said[name].append((env.reply(line), env.get_reward(), env.done))
        with pytest.raises(RuntimeError, match="ended"):
            env.reply("Hello?")
    assert said["remote"] == said["local"]
    assert envs["remote"].transcript == envs["local"].transcript
    assert said["remote"][0] is None and envs["remote"].done
    assert len({step[1] for step in said["remote"][2:]}) > 1  # the return moved turn by turn
    for key in ("emotion", "success", "user_left", "need", "strategy", "reward_components"):
        assert envs["remote"].last_info[key] == envs["local"].last_info[key], key
    assert _active(url) == 1
    factory.close()
    _wait_for_sessions(url, 0)
    envs["local"]._close()


@pytest.mark.server
@pytest.mark.slow
def test_a_session_closed_for_idling_is_reopened_by_reset(server):
    url = server(max_sessions=4, idle_timeout=1.0, **USER)
    with DialogueToolEnv(reward=REWARD, max_turns=3, base_url=url) as env:
        row = episode_dataset("test", n=1, seed=3)[0]
        env.reset(**row)
        first = env.reply(LINES[0])
        # OpenEnv's reaper looks every max(timeout / 4, 5) s: the session goes, the socket stays.
        _wait_for_sessions(url, 0, within=12.0)
        with pytest.raises(served().DialogueServerError, match="session is closed"):
            env.reply(LINES[1])  # mid-conversation: the user is gone, and it says so
        env.reset(**row)  # a new episode: a new session, the same user
        assert env.reply(LINES[0]) == first and _active(url) == 1
    _wait_for_sessions(url, 0)


# --------------------------------------------------------------------- clear errors


def test_a_base_url_that_is_no_server_is_a_clear_error():
    from dialogue_gym.ports import free_port

    data = episode_dataset("test", n=1)
    with pytest.raises(InvalidArgument) as err:
        DialogueRollout(data, base_url="127.0.0.1:8000")
    assert (err.value.owner, err.value.field) == ("DialogueRollout", "base_url")
    assert "must be a server's URL, 'http://HOST:PORT'" in str(err.value)
    nobody = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InvalidArgument, match="no dialogue-gym server answers there") as err:
        DialogueToolEnv.factory(base_url=nobody)
    assert err.value.value == nobody
    assert f"dialogue-gym serve --env {ENV_ID}" in str(err.value)
    with pytest.raises(InvalidArgument, match="client_kwargs"):
        DialogueRollout(data, base_url=nobody, client_kwargs=["message_timeout_s", 5])


def test_the_server_publishes_its_settings_but_not_a_backends_url():
    import json

    import gymnasium as gym

    kwargs = {"voice": "template", "backend": "openai:http://user:secret@10.0.0.5:8080/v1"}
    settings = served().served_settings(ENV_ID, kwargs, gym.make(ENV_ID, **kwargs))
    assert settings["backend"] == "openai" and "secret" not in json.dumps(settings)
    # The env's defaults are published too: a client compares values, not how they were given.
    assert (settings["reward"], settings["recogniser"], settings["max_turns"]) == (
        "sparse",
        "embedding",  # EmpathyDialogueText-v1's reader
        10,
    )


@pytest.mark.server
def test_settings_that_differ_from_the_servers_are_clear_errors(server):
    url = server(**USER)
    data = episode_dataset("test", n=1)
    with pytest.raises(InvalidArgument) as err:
        DialogueRollout(data, reward="sparse", max_turns=3, base_url=url)
    assert (err.value.owner, err.value.field, err.value.value) == (
        "DialogueRollout",
        "reward",
        "sparse",
    )
    assert f"makes its envs with reward='{REWARD}'" in str(err.value)
    assert "--reward" in str(err.value)
    with pytest.raises(InvalidArgument, match=r"DialogueRollout.max_turns = 4: .*max_turns=3"):
        DialogueRollout(data, reward=REWARD, base_url=url)  # max_turns defaults to 4
    with pytest.raises(InvalidArgument, match=r"DialogueToolEnv.voice = 'llm': .*'template'"):
        DialogueToolEnv.factory(reward=REWARD, max_turns=3, base_url=url, voice="llm")
    with pytest.raises(InvalidArgument, match="reward_kwargs"):
        DialogueToolEnv(REWARD, {"scale": 2.0}, max_turns=3, base_url=url)
    strategy_url = server("EmpathyDialogue-v0")
    with pytest.raises(InvalidArgument, match=f"serves EmpathyDialogue-v0; .*--env {ENV_ID}"):
        DialogueRollout(data, base_url=strategy_url)
    # A card the server does not have: the env's own error, through the session.
    rollout = DialogueRollout(
        episode_dataset("train", n=1), reward=REWARD, max_turns=3, base_url=url
    )
    trainer = type("Trainer", (), {"processing_class": smollm2_tokenizer()})()
    with rollout, pytest.raises(served().DialogueServerError, match=r"options\['card'\]"):
        rollout(list(episode_dataset("train", n=1)["prompt"]), trainer)


# ------------------------------------------------------- real GRPO steps, served user


@pytest.mark.server
@pytest.mark.slow
def test_two_grpo_steps_against_dialogue_gym_serve(tmp_path):
    """``dialogue-gym serve`` in its own process, TRL's GRPOTrainer with ``rollout_func``
    pointed at it: the documented command, run."""
    options = ["--env", ENV_ID, "--voice", "template", "--scenarios", "train"]
    options += ["--max-turns", "3", "--reward", REWARD, "--max-sessions", "8"]
    with serve_process(*options) as url:
        data = episode_dataset("train", n=8, seed=0)
        rollout = DialogueRollout(data, reward=REWARD, max_turns=3, turn_tokens=12, base_url=url)
        trainer = _trainer(rollout, data, tmp_path)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        with rollout:
            trainer.train()
            assert _active(url) == 2  # the generation batch: one session a conversation
        _wait_for_sessions(url, 0)
    assert any(not a.equal(b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    logs = [h for h in trainer.state.log_history if "rewards/env_reward/std" in h]
    assert len(logs) == 2
    assert any(h["rewards/env_reward/std"] > 0 for h in logs), "env rewards were all equal"
    assert all("env/final_emotion" in h for h in logs)
    assert len(rollout.history) == 2 and all(h["episodes"] == 2 for h in rollout.history)


@pytest.mark.server
@pytest.mark.slow
def test_a_grpo_step_through_environment_factory_against_a_served_user(server, tmp_path):
    url = server(max_sessions=8, **{**USER, "scenarios": "train", "max_turns": 2})
    factory = DialogueToolEnv.factory(reward=REWARD, max_turns=2, base_url=url)
    trainer = tool_trainer(tmp_path, factory, max_steps=1)
    with factory:
        trainer.train()
        assert _active(url) == 4  # TRL's pool: one instance, one session, a conversation
        assert all(env.base_url == url for env in factory.made)
    _wait_for_sessions(url, 0)
    (log,) = [h for h in trainer.state.log_history if "rewards/DialogueToolEnv/mean" in h]
    assert log["tools/call_frequency"] > 0, "the policy never called reply"
    assert any(len(env.transcript) > 1 for env in trainer.environments)
