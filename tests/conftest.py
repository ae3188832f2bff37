"""Fixtures for every test: a temporary AIRFLOW_HOME and the reference config API on loopback.

Helpers live in the ``support`` package (tests/support/); conftest files hold fixtures only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.fleet import ConfigApi, write_workflows


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
