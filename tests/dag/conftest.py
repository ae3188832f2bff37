"""Fixtures for the base DAG tests: generated dags folders, DagBag parsing, a real redis-server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support.dag import example_workflows, make_dags, parse_dags
from support.net import SilentServer
from support.redis import RedisServer, start_redis


@pytest.fixture(autouse=True)
def _no_dagfleet_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test states the DAGFLEET_* variables it needs."""
    for name in list(os.environ):
        if name.startswith("DAGFLEET_"):
            monkeypatch.delenv(name)


@dataclass
class Examples:
    folder: Path
    bag: Any
    configs: dict[str, dict[str, Any]]


@pytest.fixture(scope="session")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Examples]:
    """The example workflows as generated DAGs, parsed once for the session."""
    configs = example_workflows()
    folder = make_dags(tmp_path_factory.mktemp("examples") / "dags", configs)
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in [n for n in os.environ if n.startswith("DAGFLEET_")]:
            monkeypatch.delenv(name)
        bag = parse_dags(folder, monkeypatch)
        yield Examples(folder, bag, configs)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def silent_api() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()
