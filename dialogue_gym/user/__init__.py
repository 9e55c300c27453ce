"""The simulated user's senses and voice: what turns the core's decisions into words and back.

- :mod:`~dialogue_gym.user.voices`: user voices and agent realisers (template, LLM, registered);
- :mod:`~dialogue_gym.user.recognise`: recognisers that read a strategy off free text;
- :mod:`~dialogue_gym.user.judge`: SAGE mode, the emotion change judged by an LLM;
- :mod:`~dialogue_gym.user.injection`: the screen that keeps agent text data, never instructions.
"""
