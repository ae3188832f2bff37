"""The `make run` stack (scripts/devstack.py) on free loopback ports, driven through Airflow's REST API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from support.fleet import write_workflows
from support.net import free_port
from support.paths import REPO
from support.wait import wait_until


@dataclass
class Airflow:
    url: str
    session: requests.Session
    workflows_file: Path
    dags: Path

    def api(self, method: str, path: str, **kw: Any) -> Any:
        response = self.session.request(method, f"{self.url}/api/v2{path}", timeout=30, **kw)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json() if response.content else None

    def dag_visible(self, dag_id: str) -> bool:
        response = self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30)
        return response.status_code == 200 and not response.json().get("is_stale", False)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Unpause ``dag_id`` and start a run with ``conf``: its run ID."""
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})["dag_run_id"]

    def finished(self, dag_id: str, run_id: str, timeout: float = 240) -> dict[str, Any]:
        """The run once it succeeded or failed."""

        def done() -> dict[str, Any] | None:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return state if state["state"] in ("success", "failed") else None

        return wait_until(f"run {run_id} of {dag_id}", done, timeout, every=2)

    def run_to_completion(self, dag_id: str, conf: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
        run_id = self.trigger(dag_id, conf)
        result = self.finished(dag_id, run_id, timeout)
        if result["state"] != "success":
            tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            states = [(t["task_id"], t["map_index"], t["state"]) for t in tis["task_instances"]]
            pytest.fail(f"{dag_id} run failed: {states}")
        return result

    def write_workflows(self, workflows: dict[str, Any]) -> None:
        write_workflows(self.workflows_file, workflows)


@contextmanager
def devstack(tmp: Path, workflows_file: Path, sync_interval: float, *args: str, **env: str) -> Iterator[Airflow]:
    """scripts/devstack.py serving ``workflows_file`` (more ``args`` and environment ``env``), until
    it is healthy; on exit Ctrl-C stops it and nothing listens on its port any more."""
    port = free_port()
    run_dir = tmp / "run"
    log = (tmp / "devstack.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py"), "--workflows", str(workflows_file),
         "--run-dir", str(run_dir), "--port", str(port), "--config-port", str(free_port()),
         "--sync-interval", str(sync_interval), *args],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )  # fmt: skip
    try:

        def ready() -> bool:
            assert proc.poll() is None, f"devstack exited: {Path(log.name).read_text()[-3000:]}"
            return "READY" in Path(log.name).read_text()

        wait_until("the stack to be healthy", ready, 360)
        home = run_dir / "airflow"
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        url = f"http://localhost:{port}"
        token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert token.status_code in (200, 201), token.text
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield Airflow(url, session, workflows_file, home / "dags")
    finally:
        _stop(proc, log, port)


def _stop(proc: subprocess.Popen[bytes], log: Any, port: int) -> None:
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    finally:
        print(f"devstack stopped in {time.monotonic() - started:.1f}s", file=sys.stderr)
        log.close()
    # Ctrl-C really stopped Airflow: nothing listens on its port any more. SO_REUSEADDR
    # ignores the TIME_WAIT connections a stopped server leaves; a live listener still fails.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))  # the api-server listened on every address
        sock.listen()
