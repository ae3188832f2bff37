"""The reference config API (`dagfleet serve-config`) in a thread, and the YAML file it serves."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import yaml


def write_workflows(path: Path, workflows: dict[str, Any] | list[Any]) -> None:
    """Replace the workflows file atomically, with a new mtime even within the same clock tick."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"workflows": workflows}))
    tmp.replace(path)
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


class ConfigApi:
    """The reference config API (`dagfleet serve-config`), in a thread, serving a temp YAML file."""

    def __init__(self, path: Path, api_key: str | None, list_format: str) -> None:
        from dagfleet.service.server import make_server

        self.path = path
        self.api_key = api_key
        self.server = make_server(path, "127.0.0.1", 0, api_key, list_format)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def write(self, workflows: dict[str, Any] | list[Any]) -> None:
        """Replace the served workflows (the server reloads on mtime/size change)."""
        write_workflows(self.path, workflows)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
