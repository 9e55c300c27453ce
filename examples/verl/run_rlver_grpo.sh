#!/usr/bin/env bash
# RLVER's layout on verl >= 0.8 (0.9.1 tested): GRPO, 4 rollouts per user, no KL, lr 1e-6,
# batch 32, 1,000 steps, Qwen2.5-7B-Instruct; the reward is the simulated user's final emotion
# / 100 on the last token (final_emotion in agent_loop_config.yaml), the user's tokens masked.
# Needs GPUs (8 here) and verl's rollout engine (vLLM). Extra arguments are hydra overrides:
#   bash examples/verl/run_rlver_grpo.sh trainer.n_gpus_per_node=4
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DATA="${DATA:-$HOME/data/dialogue_gym}"
[ -f "$DATA/train.parquet" ] || python "$HERE/make_dataset.py" --out "$DATA" --train-rows 2048

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=False \
    data.train_files="$DATA/train.parquet" \
    data.val_files="$DATA/test.parquet" \
    data.train_batch_size=32 \
    data.max_prompt_length=1024 \
    data.max_response_length=4096 \
    data.return_raw_chat=True \
    actor_rollout_ref.model.path=Qwen/Qwen2.5-7B-Instruct \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=32 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.actor.entropy_coeff=0 \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.n=4 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.rollout.multi_turn.enable=True \
    actor_rollout_ref.rollout.multi_turn.max_assistant_turns=9 \
    actor_rollout_ref.rollout.multi_turn.max_user_turns=9 \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$HERE/agent_loop_config.yaml" \
    actor_rollout_ref.rollout.agent.default_agent_loop=dialogue_gym_user \
    actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu=4 \
    trainer.total_training_steps=1000 \
    trainer.n_gpus_per_node=8 \
    trainer.nnodes=1 \
    trainer.test_freq=50 \
    trainer.save_freq=-1 \
    trainer.logger='["console"]' \
    trainer.project_name=dialogue_gym \
    trainer.experiment_name=rlver_grpo_final_emotion \
    "$@"
