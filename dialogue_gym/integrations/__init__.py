"""Adapters to other engines (Stable-Baselines3 now; trainers and servers as they arrive).

Each adapter uses only the published simulator view (``info``, the env's public methods).
"""
