"""Shared fixtures: a temporary AIRFLOW_HOME and the reference config API on loopback."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"


@pytest.fixture(autouse=True, scope="session")
def _airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Importing airflow writes AIRFLOW_HOME: never let a test touch ~/airflow."""
    home = tmp_path_factory.mktemp("airflow-home")
    old = {k: os.environ.get(k) for k in ("AIRFLOW_HOME", "AIRFLOW__CORE__LOAD_EXAMPLES")}
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class ConfigApi:
    """The reference config API (`dagfleet serve-config`), in a thread, serving a temp YAML file."""

    def __init__(self, path: Path, api_key: str | None, list_format: str) -> None:
        from dagfleet.server import make_server

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


def write_workflows(path: Path, workflows: dict[str, Any] | list[Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"workflows": workflows}))
    tmp.replace(path)
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))  # a new mtime even within the same clock tick


@pytest.fixture
def config_api_factory(tmp_path: Path) -> Iterator[Any]:
    servers: list[ConfigApi] = []

    def start(
        workflows: dict[str, Any] | list[Any], api_key: str | None = "test-key-123", list_format: str = "objects"
    ) -> ConfigApi:
        path = tmp_path / f"workflows-{len(servers)}.yaml"
        write_workflows(path, workflows)
        server = ConfigApi(path, api_key, list_format)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
