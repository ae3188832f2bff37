"""Airflow 3's REST API (v2) as the e2e tests call it, and a `make run` stack's Airflow through it."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from support.fleet import write_workflows
from support.wait import wait_until


def call(session: requests.Session, url: str, method: str, path: str, **kw: Any) -> Any:
    """``METHOD {url}/api/v2{path}``: the JSON answer (None when empty); fails on any status >= 300."""
    response = session.request(method, f"{url}/api/v2{path}", timeout=30, **kw)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
    return response.json() if response.content else None


@dataclass
class Airflow:
    url: str
    session: requests.Session
    workflows_file: Path
    dags: Path

    def api(self, method: str, path: str, **kw: Any) -> Any:
        return call(self.session, self.url, method, path, **kw)

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

    @classmethod
    def login(cls, url: str, password: str, workflows_file: Path, dags: Path) -> Airflow:
        """A session with a token from ``POST /auth/token`` (user ``admin``)."""
        token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert token.status_code in (200, 201), token.text
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        return cls(url, session, workflows_file, dags)

    def write_workflows(self, workflows: dict[str, Any]) -> None:
        write_workflows(self.workflows_file, workflows)


def when_ready(proc: subprocess.Popen[bytes], log: Path, run_dir: Path, port: int, workflows_file: Path) -> Airflow:
    """Wait for `make run` (scripts/devstack.py) to print READY, then log in with its password file."""

    def ready() -> bool:
        assert proc.poll() is None, f"the stack exited: {log.read_text()[-3000:]}"
        return "READY" in log.read_text()

    wait_until("the stack to be healthy", ready, 360)
    home = run_dir / "airflow"
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    return Airflow.login(f"http://localhost:{port}", password, workflows_file, home / "dags")
