"""The ``llm-train`` extra, imported on demand: a missing package names the extra to install.

``trl``, ``datasets``, ``transformers`` and ``torch`` are heavy and optional, so the adapter's
modules import them inside the functions that need them, through :func:`require`; importing
``dialogue_gym.integrations.trl`` itself needs none of them.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["require"]


def require(module: str) -> Any:
    """Import ``module`` or say which extra installs it.

    Args:
        module: An absolute module name (``"trl"`` is the third-party TRL, never this package).

    Returns:
        The imported module.

    Raises:
        ImportError: ``module`` is not installed; the message names ``dialogue_gym[llm-train]``.

    Example:
        >>> require("json").dumps([1])
        '[1]'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover (the dev install has them)
        raise ImportError(
            f"dialogue_gym.integrations.trl needs {module}: pip install 'dialogue_gym[llm-train]'"
        ) from exc
