"""Registered environments as data: scenario cards and their authored parts (installed as ``dialogue_gym.envs``)."""
