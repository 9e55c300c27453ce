"""verl adapter: the interaction's async methods driven directly, and verl's agent loop on CPU.

verl trains on GPUs; what is tested here is everything on our side of verl's interface, with
verl installed: the ``BaseInteraction`` methods (asyncio, no verl trainer), and for verl >= 0.8
the agent loop built by hydra from ``examples/verl/agent_loop_config.yaml`` exactly as verl's
``AgentLoopWorker`` builds it, reading a row of verl's own ``RLHFDataset``, with verl's
Continuous Token builder and SmolLM2's tokenizer; only the LLM server is a stand-in that says
scripted lines.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from pathlib import Path

import gymnasium as gym
import pytest
from packaging.version import Version

verl = pytest.importorskip("verl")

import dialogue_gym  # noqa: E402,F401  (registers the envs)
from dialogue_gym.envs.text import EXAMPLE_UTTERANCES, to_action  # noqa: E402
from dialogue_gym.integrations.verl import (  # noqa: E402
    DEFAULT_CONFIG,
    DialogueInteraction,
    UnknownInstanceError,
    compute_score,
    shared_interaction,
    verl_rows,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "verl"
#: The policy's lines: one per strategy, round and round.
SCRIPT = [EXAMPLE_UTTERANCES[i % len(EXAMPLE_UTTERANCES)] for i in (0, 2, 1, 4, 5, 2, 4, 5, 7, 4)]


def _in_process(seed: int, card: str | int, texts: list[str], reward: str = "final_emotion"):
    """The env itself, as the interaction is configured by default, played with ``texts``."""
    kwargs = DEFAULT_CONFIG["env_kwargs"]
    env = gym.make(DEFAULT_CONFIG["env_id"], reward=reward, **kwargs)
    _, info = env.reset(seed=seed, options={"card": card})
    opening, turns = info["user_utterance"], []
    for text in texts:
        _, r, terminated, truncated, info = env.step(to_action(text))
        done = terminated or truncated
        turns.append((info["user_utterance"], float(r), done, float(info["emotion"])))
        if done:
            break
    env.close()
    return opening, turns


async def _converse(user: DialogueInteraction, instance_id: str, texts: list[str], **start):
    """Drive the interaction as verl's agent loop does: the whole chat every turn."""
    await user.start_interaction(instance_id, **start)
    chat = [{"role": "system", "content": "Be kind."}]
    chat.append({"role": "user", "content": user.opening(instance_id)})
    turns = []
    for text in texts:
        chat.append({"role": "assistant", "content": text})
        done, reply, score, meta = await user.generate_response(instance_id, chat)
        turns.append((reply, score, done, meta["emotion"]))
        await asyncio.sleep(0)  # let another conversation run in between
        if done:
            break
        chat.append({"role": "user", "content": reply})
    return chat[1]["content"], turns


def test_seeded_replay_is_the_in_process_env() -> None:
    user = DialogueInteraction({"name": "dialogue_gym"})
    card = "test-academic-scholarship-at-risk-be_heard"

    async def play():
        opening, turns = await _converse(user, "a", SCRIPT, seed=3, card=card)
        return opening, turns, await user.calculate_score("a"), user.outcome("a")

    opening, turns, score, outcome = asyncio.run(play())
    assert (opening, turns) == _in_process(3, card, SCRIPT)
    assert turns[-1][2], "the episode ends within the script"
    # RLVER's layout: 0 on every turn, then max(e_T / 100, 0) once, at the end.
    assert [t[1] for t in turns[:-1]] == [0.0] * (len(turns) - 1)
    assert score == turns[-1][1] == pytest.approx(max(turns[-1][3] / 100, 0))
    assert outcome["final_emotion"] == turns[-1][3] and outcome["turns"] == len(turns)


def test_two_concurrent_conversations_are_isolated() -> None:
    user = DialogueInteraction({"name": "dialogue_gym"})
    card = 5
    other = list(reversed(SCRIPT))

    async def play():
        return await asyncio.gather(
            _converse(user, "one", SCRIPT, seed=11, card=card),
            _converse(user, "two", other, seed=11, card=card),  # the same user, other words
            _converse(user, "three", SCRIPT, seed=12, card=card),
        )

    one, two, three = asyncio.run(play())
    assert one == _in_process(11, card, SCRIPT)
    assert two == _in_process(11, card, other)
    assert three == _in_process(12, card, SCRIPT)
    assert one[1] != two[1] and one[0] == two[0]  # same opening, own conversation
    assert len(user) == 3 and user.live == 0  # all ended: envs freed, records kept


def test_finalize_frees_state_and_envs_are_reused() -> None:
    user = DialogueInteraction({"name": "dialogue_gym", "pool_size": 1})

    async def play():
        await _converse(user, "done", SCRIPT, seed=1, card=0)
        # Ended: the env is back in the pool already (verl 0.7.1 never calls finalize)...
        assert user.live == 0 and len(user.pool) == 1 and "done" in user
        await user.finalize_interaction("done")
        assert len(user) == 0 and "done" not in user
        # ...and a conversation finalized midway gives its env back too.
        await _converse(user, "mid", SCRIPT[:2], seed=2, card=1)
        assert user.live == 1 and not user.pool
        await user.finalize_interaction("mid")
        assert len(user) == 0 and len(user.pool) == 1
        # A pooled env serves the next user exactly as a fresh one.
        return await _converse(user, "again", SCRIPT, seed=1, card=0)

    assert asyncio.run(play()) == _in_process(1, 0, SCRIPT)


def test_bad_instance_ids_get_clear_errors() -> None:
    user = DialogueInteraction({"name": "dialogue_gym", "max_sessions": 2})
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]

    async def play():
        with pytest.raises(UnknownInstanceError, match=r"no conversation with instance_id 'nope'"):
            await user.generate_response("nope", chat)
        for call in (user.calculate_score, user.finalize_interaction):
            with pytest.raises(UnknownInstanceError, match="start_interaction"):
                await call("nope")
        await user.start_interaction("x", seed=0, card=0)
        with pytest.raises(ValueError, match="already in use"):
            await user.start_interaction("x", seed=0)
        with pytest.raises(ValueError, match="opening line"):
            await user.generate_response("x", chat)  # a row built for another user
        with pytest.raises(ValueError, match="no assistant message"):
            await user.generate_response("x", chat[:1])
        await _converse(user, "ended", SCRIPT, seed=0, card=0)
        with pytest.raises(ValueError, match="has ended"):
            await user.generate_response("ended", chat)
        await user.finalize_interaction("ended")
        with pytest.raises(UnknownInstanceError):
            await user.finalize_interaction("ended")
        # Past max_sessions the least recently used conversation goes, with a warning.
        await user.start_interaction("y", seed=0)
        await user.start_interaction("z", seed=0)
        with pytest.raises(UnknownInstanceError, match="max_sessions=2"):
            await user.calculate_score("x")

    asyncio.run(play())
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        DialogueInteraction({"reward": "nope"})
    with pytest.raises(ValueError, match="unknown DialogueInteraction config keys"):
        DialogueInteraction({"rewards": "sparse"})


def test_eviction_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    user = DialogueInteraction({"max_sessions": 1})
    with caplog.at_level(logging.WARNING, logger="dialogue_gym.integrations.verl"):
        asyncio.run(user.start_interaction("a", seed=0))
        asyncio.run(user.start_interaction("b", seed=0))
    assert "dropping conversation 'a'" in caplog.text and list(user.sessions) == ["b"]


def test_idle_conversations_are_dropped() -> None:
    user = DialogueInteraction({"idle_timeout_s": 60})
    now = [0.0]
    user.clock = lambda: now[0]
    for t, instance_id in ((0.0, "a"), (30.0, "b"), (70.0, "c")):
        now[0] = t
        asyncio.run(user.start_interaction(instance_id, seed=0))
    # "a" sat 70 s untouched (verl cut it short and never finalized it): dropped, env pooled.
    assert list(user.sessions) == ["b", "c"] and user.live == 2 and len(user.pool) == 1
    with pytest.raises(UnknownInstanceError, match="idle"):
        asyncio.run(user.calculate_score("a"))


def test_any_reward_wrapper_by_name() -> None:
    user = DialogueInteraction({"reward": "emotion_delta"})
    _, turns = asyncio.run(_converse(user, "d", SCRIPT, seed=4, card=2))
    assert turns == _in_process(4, 2, SCRIPT, reward="emotion_delta")[1]
    assert any(t[1] != 0.0 for t in turns[:-1])  # a per-turn reward, unlike RLVER's
    extra = {"turn_scores": [t[1] for t in turns]}
    assert compute_score("dialogue_gym", "", "", extra) == pytest.approx(
        asyncio.run(user.calculate_score("d"))
    )


def test_rows_name_their_users() -> None:
    rows = verl_rows("test", n=4, seed=0)
    user = DialogueInteraction({"name": "dialogue_gym"})
    for row in rows:
        kwargs = row["extra_info"]["interaction_kwargs"]
        assert kwargs["name"] == "dialogue_gym" and row["agent_name"] == "dialogue_gym_user"
        instance = asyncio.run(user.start_interaction(**kwargs))
        assert row["prompt"][-1]["content"] == user.opening(instance)
    assert len({r["extra_info"]["interaction_kwargs"]["card"] for r in rows}) == 4


def test_example_interaction_config_loads_as_verl_loads_it() -> None:
    """verl <= 0.7.1 builds interactions from the YAML: ``class_name`` imported, ``config`` with
    ``name`` added. Where that verl is installed, its own loader is used."""
    try:
        from verl.interactions.base import BaseInteraction
        from verl.interactions.utils.interaction_registry import (
            initialize_interactions_from_config,
        )
    except ImportError:  # verl >= 0.8 removed them: do what its loader did
        from omegaconf import OmegaConf

        interactions = {}
        for item in OmegaConf.load(EXAMPLES / "interaction_config.yaml").interaction:
            module, _, name = item.class_name.rpartition(".")
            config = OmegaConf.to_container(item.config, resolve=True)
            config["name"] = item.name
            interactions[item.name] = getattr(importlib.import_module(module), name)(config=config)
    else:
        interactions = initialize_interactions_from_config(
            str(EXAMPLES / "interaction_config.yaml")
        )
        assert isinstance(interactions["dialogue_gym"], BaseInteraction)
    user = interactions["dialogue_gym"]
    assert user.name == "dialogue_gym" and user.settings["reward"] == "final_emotion"
    _, turns = asyncio.run(_converse(user, "cfg", SCRIPT, seed=9, card=3))
    assert turns == _in_process(9, 3, SCRIPT)[1]


# ------------------------------------------------------------------ verl >= 0.8: agent loop

#: The agent loop and the command are for verl >= 0.8 (verl 0.7 has the interaction form).
needs_agent_loops = pytest.mark.skipif(
    Version(verl.__version__) < Version("0.8"),
    reason=f"verl {verl.__version__} has interactions, not agent loops of this form",
)


class ScriptedServer:
    """Stands in for verl's LLM server: says the script's lines, one a turn, as token ids."""

    def __init__(self, tokenizer, lines: list[str]) -> None:
        self.tokenizer, self.lines, self.generated = tokenizer, list(lines), []
        self.end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    async def generate(self, request_id, prompt_ids, sampling_params, **kwargs):
        from verl.workers.rollout.replica import TokenOutput

        ids = self.tokenizer.encode(self.lines.pop(0), add_special_tokens=False) + [self.end]
        self.generated.append(ids)
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))


@needs_agent_loops
@pytest.mark.slow  # reads SmolLM2's tokenizer from the GGUF (about 6 s)
@pytest.mark.parametrize("max_assistant_turns", [None, 2])
def test_agent_loop_plays_a_conversation(tmp_path: Path, max_assistant_turns: int | None) -> None:
    import hydra
    import pandas as pd
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop.agent_loop import (
        DictConfigWrap,
        ToolListWrap,
        _agent_loop_registry,
    )
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from dialogue_gym.integrations.trl import smollm2_tokenizer

    tokenizer = smollm2_tokenizer()
    # verl's own dataset class reads the rows verl_rows writes (examples/verl/make_dataset.py).
    pd.DataFrame(verl_rows("test", n=2, seed=0)).to_parquet(tmp_path / "test.parquet")
    data_config = OmegaConf.create({"cache_dir": str(tmp_path / "cache"), "max_prompt_length": 512})
    dataset = RLHFDataset(str(tmp_path / "test.parquet"), tokenizer, data_config)
    row = dataset[1]

    # What AgentLoopWorker does with agent_loop_config_path, then per trajectory.
    for entry in OmegaConf.load(EXAMPLES / "agent_loop_config.yaml"):
        _agent_loop_registry[entry.name] = entry
    trainer_config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {
                    "prompt_length": 512,
                    "response_length": 4096,
                    "multi_turn": {
                        "max_assistant_turns": max_assistant_turns,
                        "max_user_turns": None,
                    },
                }
            },
            "data": data_config,
        }
    )
    server = ScriptedServer(tokenizer, SCRIPT)

    async def run():
        loop = hydra.utils.instantiate(
            config=_agent_loop_registry[row["agent_name"]],
            trainer_config=DictConfigWrap(config=trainer_config),
            server_manager=server,
            tokenizer=tokenizer,
            processor=None,
            hf_model_type=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(trainer_config.data),
            tools=ToolListWrap([]),
        )
        return loop, await loop.run({"temperature": 1.0}, **row)

    loop, out = asyncio.run(run())
    entry = _agent_loop_registry["dialogue_gym_user"]
    assert loop.interaction is shared_interaction(entry.interaction_config)  # the YAML's users
    kwargs = row["extra_info"]["interaction_kwargs"]
    played = len(server.generated)
    opening, turns = _in_process(kwargs["seed"], kwargs["card"], SCRIPT[:played])
    assert row["raw_prompt"][-1]["content"] == opening
    # The score: the per-turn scores of the env's reward, their sum on the last token.
    assert out.extra_fields["turn_scores"] == [t[1] for t in turns]
    assert out.reward_score == pytest.approx(sum(t[1] for t in turns))
    if max_assistant_turns:
        assert played == 2 and not turns[-1][2] and out.reward_score == 0.0  # cut by verl
    else:
        assert turns[-1][2] and out.reward_score > 0 and out.extra_fields["dialogue"]["ended"]
    # Token in, token out: the policy's tokens verbatim under mask 1, the user's under 0.
    mask, response = out.response_mask, out.response_ids
    assert len(mask) == len(response) == len(out.response_logprobs)
    ours = [t for t, m in zip(response, mask, strict=True) if m]
    assert ours == [t for ids in server.generated for t in ids]
    theirs = tokenizer.decode([t for t, m in zip(response, mask, strict=True) if not m])
    for reply, *_ in turns[:-1]:  # every reply but the last is in the context
        assert reply in theirs
    assert out.num_turns == played + len(turns) + 1
    assert len(loop.interaction) == 0  # the conversation was finalized


@needs_agent_loops
@pytest.mark.slow  # imports verl's trainer (about 10 s)
def test_rlver_command_composes_with_verls_config(tmp_path: Path) -> None:
    """The overrides of ``examples/verl/run_rlver_grpo.sh`` are keys of the installed verl's
    trainer config (hydra composes them without starting anything: ``--cfg job``)."""
    import re
    import subprocess
    import sys

    script = (EXAMPLES / "run_rlver_grpo.sh").read_text()
    overrides = [
        line.strip().rstrip("\\").strip().replace('"', "").replace("'", "")
        for line in script.splitlines()
        if re.match(r"^\s+[a-z_.]+=", line)
    ]
    overrides = [
        o.replace("$DATA", str(tmp_path)).replace("$HERE", str(EXAMPLES)) for o in overrides
    ]
    assert any(
        o.startswith("actor_rollout_ref.rollout.agent.agent_loop_config_path=") for o in overrides
    )
    done = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "--cfg", "job", *overrides],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "default_agent_loop: dialogue_gym_user" in done.stdout
    assert f"agent_loop_config_path: {EXAMPLES / 'agent_loop_config.yaml'}" in done.stdout
