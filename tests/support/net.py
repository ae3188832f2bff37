"""Loopback networking for tests: free ports, a URL nobody answers, a server that never replies."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dead_url(path: str = "") -> str:
    """A loopback URL where nothing listens (connection refused), ``path`` appended."""
    return f"http://127.0.0.1:{free_port()}{path}"


class SilentServer:
    """Listens on loopback, accepts, reads and never replies: a hung config API."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()
