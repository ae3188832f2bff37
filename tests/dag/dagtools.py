"""Helpers for the base DAG tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from dagfleet import __version__
from dagfleet.settings import SHIPPED_TEMPLATES
from dagfleet.store import FleetStore, Record, dag_bytes

REPO = Path(__file__).resolve().parents[2]
BASE_DAG = SHIPPED_TEMPLATES / "demo.py"
EXAMPLES = REPO / "examples" / "workflows.yaml"


def example_workflows(template: str | None = None) -> dict[str, dict[str, Any]]:
    """The example workflows; ``template`` given: only those of that template (default: demo)."""
    examples = {wid: config or {} for wid, config in yaml.safe_load(EXAMPLES.read_text())["workflows"].items()}
    if template is None:
        return examples
    return {wid: c for wid, c in examples.items() if c.get("template", "demo") == template}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_dags(folder: Path, configs: Mapping[str, Mapping[str, Any] | None], template: Path | None = None) -> Path:
    """``<id>-mydag.py`` copies of a template plus their stored records (what sync writes).

    ``template`` None: the shipped template the config names (default: the demo). A ``None``
    config writes the DAG file only (the loader then has to find the config elsewhere).
    """
    store = FleetStore(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for workflow_id, config in configs.items():
        named = (config or {}).get("template")
        chosen = template or (SHIPPED_TEMPLATES / f"{named}.py" if named else BASE_DAG)
        record = Record(workflow_id, dict(config or {}), chosen.stem)
        store.dag_path(workflow_id).write_bytes(dag_bytes(chosen.read_bytes(), record, __version__))
        if config is not None:
            store.write_record(record)
    return folder


def parse_dags(folder: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    """A ``DagBag`` of ``folder``, parsed in this process with ``DAGFLEET_*`` settings from ``env``."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DAGFLEET_DAGS_FOLDER", str(folder))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return DagBag(dag_folder=str(folder))


def render_context(dag: Any, task: Any, conf: dict[str, Any] | None = None, map_index: int = -1) -> dict[str, Any]:
    """The context KubernetesPodOperator needs to render its pod without a cluster (FACTS.md)."""
    conf = conf or {}
    params = {**dag.params.dump(), **conf}
    run = SimpleNamespace(conf=conf, run_id="manual__test", dag_id=dag.dag_id)
    ti = SimpleNamespace(
        dag_id=dag.dag_id, task_id=task.task_id, run_id="manual__test", map_index=map_index, try_number=1
    )
    return {"params": params, "dag_run": run, "ti": ti, "run_id": "manual__test", "dag": dag, "task": task}


# -- redis-server ----------------------------------------------------------------------------
@dataclass
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_redis(folder: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server): Redis cache tests need it"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"],
        stdout=(folder / "redis.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert process.poll() is None, (folder / "redis.log").read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return RedisServer(f"redis://127.0.0.1:{port}/0", port, process)
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"redis-server did not answer PING on port {port}")


class SilentServer:
    """Listens on loopback, accepts, reads and never replies: a hung config API."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self) -> None:
        self.sock.close()


def dead_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"
