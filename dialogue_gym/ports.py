"""Loopback ports for the servers the package starts (llama.cpp, OpenEnv, the web UI).

Example:
    >>> port = free_port()
    >>> 0 < port < 65536
    True
    >>> port_taken("127.0.0.1", port)
    ''
"""

from __future__ import annotations

import socket


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_taken(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on (the OS's words), or ``""`` when it can.

    Bound as uvicorn binds its own socket (``SO_REUSEADDR``), so a port in ``TIME_WAIT`` after
    a server stopped is not reported taken. Port 0 (the OS picks one) is never taken.
    """
    if port == 0:
        return ""
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            return str(err.strerror or err)
    return ""
