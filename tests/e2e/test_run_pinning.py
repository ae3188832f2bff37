"""Issue #30: a run keeps the config and template it started with (the dagfleet bundle).

A real `airflow standalone` (LocalExecutor) reads the fleet through the shipped
``dag_bundle_config_list``; the test runs `dagfleet sync` itself, so it decides when a change
lands. Its template's task ``first`` waits for a gate file, ``second`` records the spec value
and the template's marker. Run A starts, the workflow changes (spec, template, or removal)
while ``first`` waits, the gate opens: every task of A saw the old config, run B the new one,
and A's and B's task instances carry different DAG versions. A removed workflow's active run
finishes on its version; its DAG goes stale after ``DAGFLEET_REMOVED_GRACE`` with no new run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from dagfleet.service import dagprocessor
from support.airflowapi import call
from support.fleet import ConfigApi, write_workflows
from support.net import free_port
from support.proc import stop_group
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]
BIN = Path(sys.executable).parent

TEMPLATE = """
from __future__ import annotations

import json
import time
from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

from dagfleet import workflow

MARK = "{mark}"
wf = workflow(__file__)


def note(step: str) -> None:
    out = Path(wf.spec["out"])
    line = {{"task": step, "run": get_current_context()["run_id"], "value": wf.spec["value"], "mark": MARK}}
    with open(out / "seen.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\\n")


with DAG(**wf.dag_args()) as dag:

    @task
    def first() -> None:
        deadline = time.monotonic() + 240
        while not (Path(wf.spec["out"]) / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        note("first")

    @task
    def second() -> None:
        note("second")

    first() >> second()
"""
SCHEMA = {"type": "object", "properties": {"value": {"type": "string"}, "out": {"type": "string"}}}


@dataclass
class Stack:
    url: str
    session: requests.Session
    api: ConfigApi
    env: dict[str, str]
    templates: Path
    dags: Path

    def call(self, method: str, path: str, **kw: Any) -> Any:
        return call(self.session, self.url, method, path, **kw)

    def sync(self) -> None:
        done = subprocess.run(
            [str(BIN / "dagfleet"), "sync"], env=self.env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr

    def template(self, mark: str) -> None:
        (self.templates / "pin.py").write_text(TEMPLATE.format(mark=mark))

    def dag_versions(self, dag_id: str) -> int:
        response = self.session.get(f"{self.url}/api/v2/dags/{dag_id}/dagVersions", timeout=30)
        return response.json()["total_entries"] if response.status_code == 200 else 0

    def dag_state(self, dag_id: str) -> dict[str, Any] | None:
        response = self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=30)
        return response.json() if response.status_code == 200 else None

    def trigger(self, dag_id: str) -> str:
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": {}})["dag_run_id"]

    def finish(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        def done() -> dict[str, Any] | None:
            run = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in ("success", "failed") else None

        run = wait_until(f"run {run_id} of {dag_id}", done, 300, every=2)
        tis = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        assert run["state"] == "success", [(t["task_id"], t["state"]) for t in tis]
        return tis

    def running(self, dag_id: str, run_id: str, task_id: str) -> bool:
        ti = self.call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return ti["state"] == "running"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("pinning")
    home, dags, templates = tmp / "airflow", tmp / "airflow" / "dags", tmp / "templates"
    for folder in (dags, templates):
        folder.mkdir(parents=True)
    (templates / "pin.schema.json").write_text(json.dumps(SCHEMA))
    write_workflows(tmp / "workflows.yaml", {})
    api = ConfigApi(tmp / "workflows.yaml", None, "objects")
    port = free_port()
    url = f"http://localhost:{port}"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW"))}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    env = {**base, "DAGFLEET_API_URL": api.url, "DAGFLEET_DAGS_FOLDER": str(dags), "DAGFLEET_TEMPLATES": str(templates),
           "DAGFLEET_DEFAULT_TEMPLATE": "pin", "DAGFLEET_ALLOW_EMPTY": "true", "DAGFLEET_RETRIES": "1",
           "DAGFLEET_REMOVED_GRACE": "5"}  # fmt: skip
    airflow = {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__PARALLELISM": "4",
               "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False", "AIRFLOW__API__PORT": str(port),
               "AIRFLOW__API__BASE_URL": url, "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
               **dagprocessor.airflow_env(), "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3",
               "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": "1",
               "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2"}  # fmt: skip
    (home / "simple_auth_manager_passwords.json.generated").write_text(json.dumps({"admin": "pinning"}))
    stack = Stack(url, requests.Session(), api, env, templates, dags)
    stack.template("t1")
    log = (tmp / "standalone.log").open("wb")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=airflow, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # fmt: skip
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp / "standalone.log").read_text()[-3000:]
            try:
                return requests.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until("airflow standalone to be healthy", healthy, 360, every=2)
        token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": "pinning"}, timeout=30)
        stack.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield stack
    finally:
        stop_group(proc)
        log.close()
        api.close()


def _workflow(stack: Stack, dag_id: str, value: str, tmp: Path, **more: Any) -> dict[str, Any]:
    config = {"schedule": None, "spec": {"value": value, "out": str(tmp)}, **more}
    stack.api.write({dag_id: config})
    stack.sync()
    return config


def _seen(out: Path) -> list[dict[str, Any]]:
    path = out / "seen.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _start_run_a(stack: Stack, dag_id: str, versions_before: int) -> str:
    wait_until(f"DAG {dag_id} parsed", lambda: stack.dag_versions(dag_id) > versions_before, 180)
    run_a = stack.trigger(dag_id)
    wait_until(f"run A's task first to run ({dag_id})", lambda: stack.running(dag_id, run_a, "first"), 180)
    return run_a


def _dag_versions(tis: list[dict[str, Any]]) -> set[int]:
    return {ti["dag_version"]["version_number"] for ti in tis}


def _pinned(stack: Stack, dag_id: str, out: Path, change: Any, old: dict[str, str], new: dict[str, str]) -> None:
    _workflow(stack, dag_id, "v1", out)
    run_a = _start_run_a(stack, dag_id, 0)
    versions_a = stack.dag_versions(dag_id)
    change()
    wait_until("the change to reach Airflow as a new DAG version", lambda: stack.dag_versions(dag_id) > versions_a, 120)
    (out / "go").touch()
    tis_a = stack.finish(dag_id, run_a)
    run_b = stack.trigger(dag_id)
    tis_b = stack.finish(dag_id, run_b)
    seen = _seen(out)
    a_saw = [(row["task"], row["value"], row["mark"]) for row in seen if row["run"] == run_a]
    b_saw = [(row["task"], row["value"], row["mark"]) for row in seen if row["run"] == run_b]
    assert sorted(a_saw) == [("first", old["value"], old["mark"]), ("second", old["value"], old["mark"])]
    assert sorted(b_saw) == [("first", new["value"], new["mark"]), ("second", new["value"], new["mark"])]
    assert len(_dag_versions(tis_a)) == 1 and len(_dag_versions(tis_b)) == 1
    assert _dag_versions(tis_a) != _dag_versions(tis_b), "A and B ran on the same DAG version"


def test_a_spec_change_reaches_the_next_run_only(stack: Stack, tmp_path: Path) -> None:
    dag_id = "pin_spec"
    _pinned(stack, dag_id, tmp_path, lambda: _workflow(stack, dag_id, "v2", tmp_path),
            {"value": "v1", "mark": "t1"}, {"value": "v2", "mark": "t1"})  # fmt: skip


def test_a_template_edit_reaches_the_next_run_only(stack: Stack, tmp_path: Path) -> None:
    dag_id = "pin_template"

    def edit() -> None:
        stack.template("t2")
        stack.sync()

    try:
        _pinned(stack, dag_id, tmp_path, edit, {"value": "v1", "mark": "t1"}, {"value": "v1", "mark": "t2"})
    finally:
        stack.template("t1")


def test_a_removed_workflow_finishes_its_active_run(stack: Stack, tmp_path: Path) -> None:
    dag_id = "pin_removed"
    # scheduled, but not due before next New Year: removal must turn the schedule off (a new DAG version)
    today = datetime.now(UTC).date().isoformat()
    _workflow(stack, dag_id, "v1", tmp_path, schedule="0 0 1 1 *", start_date=today, catchup=False)
    run_a = _start_run_a(stack, dag_id, 0)
    versions_a = stack.dag_versions(dag_id)
    stack.api.write({})
    stack.sync()
    assert not (stack.dags / f"{dag_id}-mydag.py").exists()
    # kept, unscheduled, for DAGFLEET_REMOVED_GRACE: a new DAG version, not a stale DAG
    wait_until("the removed workflow's unscheduled DAG version", lambda: stack.dag_versions(dag_id) > versions_a, 120)
    assert not (stack.dag_state(dag_id) or {}).get("is_stale")
    (tmp_path / "go").touch()
    stack.finish(dag_id, run_a)
    assert sorted((row["task"], row["value"]) for row in _seen(tmp_path)) == [("first", "v1"), ("second", "v1")]

    def stale() -> bool:
        stack.sync()  # once the grace is over, a sync publishes a version without it
        return bool((stack.dag_state(dag_id) or {}).get("is_stale"))

    wait_until("Airflow to mark the removed DAG stale after its grace", stale, 120, every=3)
    runs = stack.call("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
    assert [run["dag_run_id"] for run in runs] == [run_a]  # nothing new was scheduled
