"""End to end: the `make run` stack, driven through Airflow 3's REST API (v2).

Starts scripts/devstack.py (reference config API + `dagfleet run -- standalone` + `dagfleet
watch`) on free loopback ports, triggers a pod-free workflow with a conf, checks the mapped
fan-out and the conf seen by the TaskFlow task, then adds and removes a workflow in the YAML
file and watches Airflow follow without a restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from support.airflowapi import call
from support.fleet import write_workflows
from support.net import free_port
from support.paths import REPO
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]
SYNC_INTERVAL = 2


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

    def run_to_completion(self, dag_id: str, conf: dict[str, Any], timeout: float = 240) -> dict[str, Any]:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        run_id = run["dag_run_id"]

        def finished() -> dict[str, Any] | None:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return state if state["state"] in ("success", "failed") else None

        result = wait_until(f"run {run_id} of {dag_id}", finished, timeout, every=2)
        if result["state"] != "success":
            tis = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
            states = [(t["task_id"], t["map_index"], t["state"]) for t in tis["task_instances"]]
            pytest.fail(f"{dag_id} run failed: {states}")
        return result

    def write_workflows(self, workflows: dict[str, Any]) -> None:
        write_workflows(self.workflows_file, workflows)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    tmp = tmp_path_factory.mktemp("stack")
    workflows_file = tmp / "workflows.yaml"
    shutil.copy(REPO / "examples" / "workflows.yaml", workflows_file)
    port = free_port()
    run_dir = tmp / "run"
    log = (tmp / "devstack.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py"), "--workflows", str(workflows_file),
         "--run-dir", str(run_dir), "--port", str(port), "--config-port", str(free_port()),
         "--sync-interval", str(SYNC_INTERVAL), "--removed-grace", "5"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env={**os.environ, "PYTHONUNBUFFERED": "1"},
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


def _pod_free_workflow(template: str = "demo") -> str:
    workflows = yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"]
    return next(
        wid
        for wid, config in workflows.items()
        if not (config or {}).get("pod") and (config or {}).get("template", "demo") == template
    )


def test_generated_dags_import_cleanly(stack: Airflow) -> None:
    workflows = yaml.safe_load(stack.workflows_file.read_text())["workflows"]
    for workflow_id in workflows:
        wait_until(f"DAG {workflow_id} in the API", lambda w=workflow_id: stack.dag_visible(w), 180)
    errors = stack.api("GET", "/importErrors")
    assert errors["total_entries"] == 0, errors


def test_triggered_run_maps_each_item_and_sees_the_conf(stack: Airflow) -> None:
    dag_id = _pod_free_workflow()
    wait_until(f"DAG {dag_id}", lambda: stack.dag_visible(dag_id), 180)
    items = ["north", "south", "east"]
    run = stack.run_to_completion(dag_id, {"message": "hello from e2e", "items": items})
    run_path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
    for mapped in ("process_item", "process_item_kwargs"):
        tis = stack.api("GET", f"{run_path}/taskInstances/{mapped}/listMapped")
        assert tis["total_entries"] == len(items), mapped
        assert {ti["state"] for ti in tis["task_instances"]} == {"success"}
    xcom = stack.api("GET", f"{run_path}/taskInstances/read_context/xcomEntries/return_value")
    assert "hello from e2e" in json.dumps(xcom["value"])


def test_a_workflow_of_the_realistic_template_runs_one_task_per_table(stack: Airflow) -> None:
    dag_id = _pod_free_workflow("tenant_etl")
    spec = yaml.safe_load(stack.workflows_file.read_text())["workflows"][dag_id]["spec"]
    wait_until(f"DAG {dag_id}", lambda: stack.dag_visible(dag_id), 180)
    run = stack.run_to_completion(dag_id, {"tables": spec["tables"][:2]})
    run_path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"
    tis = stack.api("GET", f"{run_path}/taskInstances/load_table/listMapped")
    assert tis["total_entries"] == 2
    assert {ti["state"] for ti in tis["task_instances"]} == {"success"}
    xcom = stack.api("GET", f"{run_path}/taskInstances/report/xcomEntries/return_value")
    reported = json.dumps(xcom["value"])
    assert all(table in reported for table in spec["tables"][:2])
    assert spec["tables"][2] not in reported  # the run's conf chose two of the three tables


def test_workflows_follow_the_config_api_without_restart(stack: Airflow) -> None:
    original = yaml.safe_load(stack.workflows_file.read_text())["workflows"]
    added = "e2e_added"
    stack.write_workflows({**original, added: {"tags": ["e2e"]}})
    wait_until("the added workflow's DAG", lambda: stack.dag_visible(added), 120)
    run = stack.run_to_completion(added, {"message": "before removal"})

    stack.write_workflows(original)
    wait_until("the removed workflow's file to be pruned", lambda: not (stack.dags / f"{added}-mydag.py").exists(), 60)
    wait_until("Airflow to mark the DAG stale", lambda: not stack.dag_visible(added), 120)
    runs = stack.api("GET", f"/dags/{added}/dagRuns")
    assert run["dag_run_id"] in [r["dag_run_id"] for r in runs["dag_runs"]]  # history kept
    for workflow_id in original:
        assert (stack.dags / f"{workflow_id}-mydag.py").exists()
