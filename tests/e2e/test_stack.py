"""End to end: the `make run` stack, driven through Airflow 3's REST API (v2).

Starts scripts/devstack.py (reference config API + `dagfleet run -- standalone` + `dagfleet
watch`) on free loopback ports, triggers a pod-free workflow with a conf, checks the mapped
fan-out and the conf seen by the TaskFlow task, then adds and removes a workflow in the YAML
file and watches Airflow follow without a restart.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest
import yaml

from support.paths import REPO
from support.stack import Airflow, devstack
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]
SYNC_INTERVAL = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    tmp = tmp_path_factory.mktemp("stack")
    workflows_file = tmp / "workflows.yaml"
    shutil.copy(REPO / "examples" / "workflows.yaml", workflows_file)
    with devstack(tmp, workflows_file, SYNC_INTERVAL, "--removed-grace", "5") as airflow:
        yield airflow


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
