"""The LLM experiment script: a tiny smoke run writes every output file, with sane contents."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("trl")

from dialogue_gym.cli import main as cli_main  # noqa: E402
from dialogue_gym.integrations.train_llm import (  # noqa: E402
    EVAL_SEED,
    episode_json,
    evaluate,
    main,
    parse_args,
)
from dialogue_gym.integrations.trl.config import split_step  # noqa: E402
from dialogue_gym.integrations.trl.episode import check_prefix_preserving  # noqa: E402
from dialogue_gym.integrations.trl.memory import (  # noqa: E402
    ModelShape,
    check_fits,
    estimate_memory,
    fits,
    sequence_length,
)

SMOKE = [
    "--tiny",
    "--steps", "2",
    "--prompts-per-step", "1",
    "--num-generations", "2",
    "--max-turns", "2",
    "--turn-tokens", "8",
    "--eval-cards", "3",
]  # fmt: skip


@pytest.mark.slow
def test_smoke_run_writes_every_output_file(tmp_path: Path) -> None:
    code = cli_main(["train-llm", *SMOKE, "--reward", "emotion_delta", "--out", str(tmp_path)])
    assert code == 0
    run = tmp_path / "emotion_delta-tiny"
    for name in (
        "args.json",
        "curves.csv",
        "eval.json",
        "episodes_before.jsonl",
        "episodes_after.jsonl",
        "audit.md",
        "report.md",
        "curves.png",
    ):
        assert (run / name).stat().st_size > 0, name
    rows = list(csv.DictReader((run / "curves.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["env_s"]) <= float(r["rollout_s"]) for r in rows)
    result = json.loads((run / "eval.json").read_text())
    for phase in ("before", "after"):
        assert result[phase]["episodes"] == 3
        assert 0.0 <= result[phase]["success"] <= 1.0
        assert abs(sum(result[phase]["strategy_distribution"].values()) - 1.0) < 1e-6
    before = [json.loads(line) for line in (run / "episodes_before.jsonl").open()]
    assert len(before) == 3 and all(len(ep["utterances"]) == ep["turns"] for ep in before)
    assert all(len(ep["emotions"]) == ep["turns"] + 1 for ep in before)
    assert "| success |" in (run / "report.md").read_text()


@pytest.mark.slow
def test_a_managed_run_reports_the_delivery_agreement(tmp_path: Path) -> None:
    argv = [*SMOKE, "--steps", "1", "--eval-cards", "2", "--manager", "stage-heuristic"]
    assert cli_main(["train-llm", *argv, "--name", "managed", "--out", str(tmp_path)]) == 0
    run = tmp_path / "managed"
    assert json.loads((run / "args.json").read_text())["manager"] == "stage-heuristic"
    result = json.loads((run / "eval.json").read_text())
    for phase in ("before", "after"):
        assert 0.0 <= result[phase]["delivery_agreement"] <= 1.0
        episodes = [json.loads(line) for line in (run / f"episodes_{phase}.jsonl").open()]
        assert all(len(ep["planned"]) == ep["turns"] for ep in episodes)
    report = (run / "report.md").read_text()
    assert "Manager: `stage-heuristic`" in report
    assert "| delivery agreement (read as planned) |" in report


def test_the_flat_run_records_no_manager() -> None:
    args = parse_args(SMOKE)
    assert args.manager == "none" and dataclasses.asdict(args)["manager"] == "none"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--reward", "dense"], "unknown reward 'dense'"),
        (["--reward-kwargs", "[1]"], "must be a JSON object"),
        (["--num-generations", "1"], "must be >= 2"),
        (["--steps", "0"], "--steps must be >= 1"),
    ],
)
def test_bad_arguments_name_the_field(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)


# ------------------------------------------------------------------ settings refused up front


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--eval-cards", "0"], "--eval-cards must be >= 1, got 0"),
        (["--device", "gpu"], "--device: 'gpu' is not allowed; allowed: 'cpu', 'cuda'"),
        (
            ["--micro-batch", "3"],
            r"--micro-batch 3: micro_batch 3 does not divide the step's 8 sequences; allowed: "
            r"0 \(the whole step\) or 1, 2, 4, 8",
        ),
        (["--micro-batch", "-1"], "--micro-batch -1"),
        (["--lora", "-4"], "--lora must be >= 0"),
        (["--gpu", "h900"], "--gpu: unknown GPU 'h900'; known: h100, h200"),
        (["--gpu-memory-gib", "-1"], "--gpu-memory-gib must be > 0"),
        (["--save-steps", "-1"], "--save-steps must be >= 0"),
        (["--use-vllm", "--device", "cuda"], "the default model is the embedded SmolLM2 GGUF"),
        (["--use-vllm", "--device", "cuda", "--tiny"], "--tiny builds a random-weights model"),
        (["--use-vllm", "--device", "cuda", "--model", "m/x.gguf"], "is a GGUF file"),
        (["--use-vllm", "--model", "Qwen/Qwen2.5-0.5B-Instruct"], "needs --device cuda"),
        (
            ["--manager", "stage"],
            "--manager: 'stage' is not a manager; choices: none, random, always-question, "
            r"always-reassure, always-suggest, stage-heuristic, oracle, or a path to an SB3 "
            r"model \(\*.zip\)",
        ),
        (["--manager", "no/such/ppo.zip"], "--manager: 'no/such/ppo.zip': no SB3 model file"),
    ],
)
def test_settings_are_refused_naming_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)


def test_vllm_refuses_a_folder_of_gguf_files_and_says_how_to_give_weights(tmp_path: Path) -> None:
    (tmp_path / "model-q8.gguf").write_bytes(b"")
    with pytest.raises(SystemExit) as err:
        parse_args(["--use-vllm", "--device", "cuda", "--model", str(tmp_path)])
    text = str(err.value)
    assert "holds GGUF files (model-q8.gguf)" in text
    assert "vLLM loads Hugging Face weights" in text and "--model Qwen/" in text
    # a Hugging Face folder (config.json) is accepted; vLLM itself is not imported to check
    (tmp_path / "config.json").write_text("{}")
    assert parse_args(["--use-vllm", "--device", "cuda", "--model", str(tmp_path)]).use_vllm


def test_lora_without_peft_gives_the_install_hint() -> None:
    if importlib.util.find_spec("peft") is not None:
        assert parse_args(["--lora", "16"]).lora == 16
        return
    with pytest.raises(SystemExit, match="--lora 16 needs peft, which is not installed: pip"):
        parse_args(["--lora", "16"])


def test_micro_batches_keep_the_step_and_accumulate() -> None:
    args = parse_args(["--prompts-per-step", "2", "--num-generations", "4", "--micro-batch", "2"])
    assert split_step(args.prompts_per_step * args.num_generations, args.micro_batch) == (2, 4)
    assert split_step(8, 0) == (8, 1)


# ------------------------------------------------------------------ the memory estimate

# Qwen2.5-1.5B-Instruct's shape, written out: 28 layers, hidden 1536, MLP 8960, vocabulary
# 151,936, 1,543,714,304 parameters (tied embeddings); per layer q, k, v, o and the gated MLP's
# three projections sum to 3072 + 1792 + 1792 + 3072 + 3 * 10496 = 41,216 in + out features.
QWEN_1_5B = ModelShape(
    params=1_543_714_304,
    vocab_size=151_936,
    hidden_size=1536,
    intermediate_size=8960,
    num_layers=28,
    linear_in_out=41_216 * 28,
)


def test_memory_estimate_matches_the_hand_computed_parts() -> None:
    seq = sequence_length(8, 128)
    assert seq == 128 + 8 * (128 + 64) == 1664
    est = estimate_memory(
        QWEN_1_5B, micro_batch=4, sequence=seq, dtype="bfloat16", gradient_checkpointing=True
    )
    p, tokens = 1_543_714_304, 4 * 1664
    assert est.parts == {
        "weights": 4 * p,  # fp32 master weights
        "gradients": 4 * p,
        "optimiser": 8 * p,  # AdamW: two fp32 moments
        "reference model": 0,  # beta 0
        # each layer's input (28 x 1536) plus one layer recomputed (11 x 1536 + 4 x 8960), bf16
        "activations": tokens * (28 * 1536 + 11 * 1536 + 4 * 8960) * 2,
        "logits": 2 * tokens * 151_936 * 2,  # the logits and their gradient, bf16
    }
    assert fits(est, 80.0, vllm_share=0.3)  # 27.96 GiB within 80 x 0.7 x 0.9 = 50.4
    no_ckpt = estimate_memory(QWEN_1_5B, micro_batch=4, sequence=seq, dtype="bfloat16")
    assert no_ckpt.parts["activations"] == tokens * 28 * (11 * 1536 + 4 * 8960) * 2
    lora = estimate_memory(QWEN_1_5B, micro_batch=4, sequence=seq, dtype="bfloat16", lora_rank=16)
    trained = 16 * 41_216 * 28
    assert lora.parts["weights"] == 2 * p + 4 * trained  # frozen bf16 base, fp32 adapters
    assert lora.parts["optimiser"] == 8 * trained
    kl = estimate_memory(QWEN_1_5B, micro_batch=1, sequence=seq, reference_model=True)
    assert kl.parts["reference model"] == 4 * p


def test_memory_refusal_gives_the_estimate_its_parts_and_what_to_change() -> None:
    est = estimate_memory(QWEN_1_5B, micro_batch=16, sequence=sequence_length(8, 128))
    with pytest.raises(ValueError) as err:
        check_fits(est, 80.0, vllm_share=0.3)
    text = str(err.value)
    assert f"needs about {est.total_gib:.2f} GiB" in text
    for part in ("weights", "gradients", "optimiser", "activations", "logits"):
        assert part in text
    for knob in ("--micro-batch", "--gradient-checkpointing", "--bf16", "--lora"):
        assert knob in text
    assert "50.4 GiB for the trainer after vLLM's 30%" in text


def test_train_llm_refuses_a_setting_that_cannot_fit_before_training(tmp_path: Path) -> None:
    argv = [*SMOKE, "--gpu-memory-gib", "0.01", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"needs about .* GiB \(weights .*logits .*--micro-batch"):
        main(parse_args(argv))
    assert not (tmp_path / "sparse-tiny" / "episodes_before.jsonl").exists()


# ------------------------------------------------------------------ vLLM: weights synced first


class _SyncSpy:
    """Stands in for TRL's ``VLLMGeneration`` (vLLM cannot run on this CPU-only machine): it
    records each weight sync, and the rollout double records each evaluation, in one log."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def sync_weights(self) -> None:
        self.log.append("sync")


def test_evaluation_syncs_the_weights_to_vllm_first() -> None:
    log: list[str] = []

    class Rollout:
        history: list[dict] = []
        episodes: list[str] = ["episode"]

        def __call__(self, prompts: list, trainer: object) -> None:
            log.append(f"play {len(prompts)}")

    rows = [{"prompt": [{"role": "user", "content": "hi"}]}] * 2
    trainer = SimpleNamespace(use_vllm=True, vllm_generation=_SyncSpy(log))
    evaluate(Rollout(), trainer, rows, seed=0)  # before training
    evaluate(Rollout(), trainer, rows, seed=0)  # after: TRL has not synced the last update
    assert log == ["sync", "play 2", "sync", "play 2"]
    log.clear()
    evaluate(Rollout(), SimpleNamespace(use_vllm=False), rows, seed=0)
    assert log == ["play 2"]


# ------------------------------------------------------------------ chat templates


# A template that drops earlier assistant turns' thinking blocks, as Qwen3's does.
STRIPS_THINKING = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and not loop.last %}"
    "{{ m['content'].split('</think>')[-1].lstrip() }}"
    "{% else %}{{ m['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_is_not_prefix_preserving_is_refused() -> None:
    from dialogue_gym.integrations.trl import smollm2_tokenizer, tool_chat_template

    tokenizer = smollm2_tokenizer()
    check_prefix_preserving(tokenizer)  # SmolLM2's own
    check_prefix_preserving(tokenizer, tool_chat_template())  # TRL's Qwen3-Instruct-2507
    for template in (STRIPS_THINKING, tool_chat_template("qwen3")):
        with pytest.raises(ValueError, match="not prefix-preserving.*Qwen3-family"):
            check_prefix_preserving(tokenizer, template)


# ------------------------------------------------------------------ transcripts


def test_a_transcript_opens_with_the_users_line() -> None:
    from trl import GRPOConfig, GRPOTrainer

    from dialogue_gym.evaluation.audit import format_transcript
    from dialogue_gym.integrations.trl import DialogueRollout, episode_dataset, tiny_policy

    model, tokenizer = tiny_policy()
    rows = episode_dataset("test", n=2, seed=EVAL_SEED)
    rollout = DialogueRollout(rows, max_turns=2, turn_tokens=6)
    config = GRPOConfig(
        output_dir="unused", per_device_train_batch_size=2, num_generations=2, max_steps=1,
        report_to="none", use_cpu=True, save_strategy="no",
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=rollout.reward_func,
        train_dataset=rows, rollout_func=rollout, args=config,
    )  # fmt: skip
    for ep in evaluate(rollout, trainer, rows, EVAL_SEED):
        record = episode_json(ep)
        lines = format_transcript(record).splitlines()[2:-1]
        assert lines[0] == f"user:  {record['user'][0]}"  # the user opens the conversation
        assert lines[1].startswith("agent: ")
        assert [line[:6] for line in lines] == ["user: ", "agent:"] * record["turns"] + ["user: "]


# ------------------------------------------------------------------ resume


def test_resume_refuses_other_settings_than_the_folders(tmp_path: Path) -> None:
    argv = [*SMOKE, "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="no run to resume"):
        main(parse_args([*argv, "--resume"]))
    run = tmp_path / "sparse-tiny"
    run.mkdir()
    saved = dataclasses.asdict(parse_args(argv))
    (run / "args.json").write_text(json.dumps(saved))
    with pytest.raises(SystemExit, match=r"--steps 3 \(the run's: 2\); --seed 1 \(the run's: 0\)"):
        main(parse_args([*argv, "--resume", "--steps", "3", "--seed", "1"]))
    with pytest.raises(SystemExit, match="no checkpoint in"):
        main(parse_args([*argv, "--resume", "--threads", "1"]))  # threads may differ


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialogue_gym.integrations.trl import DialogueRollout

    argv = [*SMOKE, "--reward", "emotion_delta", "--out", str(tmp_path)]
    run = tmp_path / "emotion_delta-tiny"
    play = DialogueRollout.__call__
    calls = {"n": 0}

    def dies_in_step_two(self: DialogueRollout, prompts: list, trainer: object) -> dict:
        calls["n"] += 1
        if calls["n"] == 3:  # the evaluation before, step 1, then step 2
            raise KeyboardInterrupt
        return play(self, prompts, trainer)

    monkeypatch.setattr(DialogueRollout, "__call__", dies_in_step_two)
    with pytest.raises(KeyboardInterrupt):
        main(parse_args(argv))
    rows = list(csv.DictReader((run / "curves.csv").open()))
    assert [int(r["step"]) for r in rows] == [1]  # step 1 was written as it ended
    assert (run / "trainer" / "checkpoint-1").is_dir()
    monkeypatch.setattr(DialogueRollout, "__call__", play)

    result = main(parse_args([*argv, "--resume"]))
    rows = list(csv.DictReader((run / "curves.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2]
    state = json.loads((run / "trainer" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert result["before"] == json.loads((run / "eval_before.json").read_text())
    assert "n = 3 conversations before and 3 after" in (run / "report.md").read_text()


def test_the_documented_gpu_recipe_estimate() -> None:
    """docs/llm_policies.md's table: the recipe fits an H100, the whole step in one pass and
    no checkpointing do not."""
    seq = sequence_length(8, 128)
    recipe = estimate_memory(
        QWEN_1_5B, micro_batch=8, sequence=seq, dtype="bfloat16", gradient_checkpointing=True
    )
    assert recipe.describe() == (
        "32.91 GiB (weights 5.75, gradients 5.75, optimiser 11.50, activations 2.37, logits 7.53)"
    )
    assert fits(recipe, 80.0, vllm_share=0.3)
    whole = estimate_memory(QWEN_1_5B, micro_batch=64, sequence=seq, dtype="bfloat16")
    no_ckpt = estimate_memory(QWEN_1_5B, micro_batch=8, sequence=seq, dtype="bfloat16")
    assert round(whole.total_gib) == 376 and round(no_ckpt.total_gib) == 67
    assert not fits(whole, 80.0, 0.3) and not fits(no_ckpt, 80.0, 0.3)
    docs = Path(__file__).resolve().parents[1] / "docs" / "llm_policies.md"
    assert "| **total** | **32.91** |" in docs.read_text()
