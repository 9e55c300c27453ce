"""Adapters to other engines: Stable-Baselines3 (``sb3``) and TRL's ``GRPOTrainer`` for
language-model policies (``trl``: a multi-turn ``rollout_func`` and an ``environment_factory``).

Each adapter uses only the published simulator view (``info``, the env's public methods).
"""
