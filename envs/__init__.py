"""The environments (installed as ``dialogue_gym.envs``), beside their scenario cards.

- :mod:`~dialogue_gym.envs.empathy`: ``EmpathyDialogue-v0``, a strategy each turn;
- :mod:`~dialogue_gym.envs.text`: ``EmpathyDialogueText-v0``, the agent's own words;
- :mod:`~dialogue_gym.envs.hard`: ``EmpathyDialogueHard-v0``, a strategy each turn, a harder user;
- :mod:`~dialogue_gym.envs.vector`: the batched vector env ``gym.make_vec`` returns;
- ``scenarios/`` (``train``, ``test``) and ``parts/``: the scenario cards as YAML data.

The ids are registered in :mod:`dialogue_gym.registration`, one line each.
"""
