"""Doctest collection of the optional integrations: skipped when their extra is not installed.

pytest collects every module's doctests (``--doctest-modules``); a module that imports an
optional engine at its top would stop the whole run in an install without that extra.
``make test`` installs ``.[dev]``, which has every one, so CI collects them all.
"""

from __future__ import annotations

import importlib.util

#: Module glob -> the top-level package it needs.
_OPTIONAL = {
    "dialogue_gym/integrations/openenv/*.py": "openenv",
    "dialogue_gym/integrations/minari.py": "minari",
    "dialogue_gym/integrations/verl/*.py": "verl",
    "dialogue_gym/integrations/rllib.py": "ray",
    "dialogue_gym/ui/app.py": "gradio",
}

collect_ignore_glob = [
    glob for glob, package in _OPTIONAL.items() if importlib.util.find_spec(package) is None
]
