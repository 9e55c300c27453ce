"""The environments (installed as ``dialogue_gym.envs``), beside their scenario cards.

- :mod:`~dialogue_gym.envs.empathy`: ``EmpathyDialogue-v0``, a strategy each turn;
- :mod:`~dialogue_gym.envs.text`: ``EmpathyDialogueText-v0``, the agent's own words;
- :mod:`~dialogue_gym.envs.hard`: ``EmpathyDialogueHard-v0``, a strategy each turn, a harder user;
- :mod:`~dialogue_gym.envs.vector`: the batched vector env ``gym.make_vec`` returns;
- ``scenarios/`` (``train``, ``test``) and ``parts/``: the scenario cards as YAML data.

The ids are registered in :mod:`dialogue_gym.registration`, one line each.
"""

from pathlib import Path

from dialogue_gym.core.scenario import set_builtin_root


def data_dir() -> Path:
    """This folder: the built-in scenario cards (``scenarios/``) and their parts (``parts/``).

    Installed as the package ``dialogue_gym.envs`` (``setup.cfg``), so a wheel carries it.
    """
    return Path(__file__).resolve().parent


#: 0.1's ``dialogue_gym.paths.envs_dir`` (that old path now gives this module: ``_compat``).
envs_dir = data_dir

# The core names the built-in card sets ("train", "test") but does not know where they live:
# the envs layer, which carries them, tells it (so layer 0 imports nothing above it).
set_builtin_root(data_dir())
