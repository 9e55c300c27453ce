"""The machine a measurement ran on, in words: every timing the package reports quotes it.

Example:
    >>> describe().count(" cores") == 1 and "Python" in describe()
    True
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s, from /proc/cpuinfo), else the platform's word.

    Example:
        >>> isinstance(cpu_model(), str) and cpu_model() != ""
        True
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def describe(python: bool = True) -> str:
    """``"AMD EPYC 7B13, 2 cores, Python 3.11.7"`` (without the Python version if not
    ``python``)."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    return f"{text}, Python {platform.python_version()}" if python else text
