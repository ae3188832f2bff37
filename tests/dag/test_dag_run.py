"""`airflow dags test <id> -c '<conf>'` of a pod-free workflow: a real run, no Kubernetes anywhere.

Runs the Airflow CLI in a subprocess with its own AIRFLOW_HOME (SQLite), then reads the task
instances and XComs from that database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from support.dag import example_workflows, make_dags

pytestmark = pytest.mark.airflow

WORKFLOW = "hello_conf"
CONF = {"message": "hello from dags test", "items": ["north", {"name": "west"}, "south", "up"]}
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def dags_test_run(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    tmp = tmp_path_factory.mktemp("dags-test")
    configs = example_workflows()
    assert not configs[WORKFLOW].get("pod"), "the dags test workflow must be pod-free"
    dags = make_dags(tmp / "dags", {WORKFLOW: configs[WORKFLOW]})
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DAGFLEET_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        KUBECONFIG=str(tmp / "no-such-kubeconfig"),  # pod-free means no cluster is ever contacted
    )
    for argv in ([AIRFLOW, "db", "migrate"], [AIRFLOW, "dags", "test", WORKFLOW, "-c", json.dumps(CONF)]):
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=tmp)
        assert result.returncode == 0, f"{argv[1:3]}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return sqlite3.connect(tmp / "home" / "airflow.db")


def _xcom(db: sqlite3.Connection, task_id: str) -> Any:
    rows = db.execute(
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' AND map_index = -1",
        (WORKFLOW, task_id),
    ).fetchall()
    assert len(rows) == 1, task_id
    value = json.loads(rows[0][0])
    return json.loads(value) if isinstance(value, str) else value


def test_every_task_succeeds_and_each_item_is_mapped_once(dags_test_run: sqlite3.Connection) -> None:
    rows = dags_test_run.execute(
        "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ?", (WORKFLOW,)
    ).fetchall()
    assert {state for _, _, state in rows} == {"success"}
    per_task = Counter(task_id for task_id, _, _ in rows)
    assert per_task == {
        "read_context": 1,
        "plan_items": 1,
        "process_item": len(CONF["items"]),
        "process_item_kwargs": len(CONF["items"]),
        "summarize": 1,
    }
    names = dags_test_run.execute(
        "SELECT rendered_map_index FROM task_instance WHERE dag_id = ? AND task_id = 'process_item' ORDER BY map_index",
        (WORKFLOW,),
    ).fetchall()
    assert [name for (name,) in names] == ["north", "west", "south", "up"]


def test_taskflow_tasks_saw_the_conf_and_params(dags_test_run: sqlite3.Connection) -> None:
    context = _xcom(dags_test_run, "read_context")
    assert context["message"] == CONF["message"]
    assert context["conf"] == CONF
    assert context["params"]["items"] == CONF["items"]  # conf overrides the declared param
    summary = _xcom(dags_test_run, "summarize")
    assert summary["message"] == CONF["message"]
    assert summary["items"] == ["north", "west", "south", "up"]
    assert summary["positions"] == ["1/4", "2/4", "3/4", "4/4"]
    planned = _xcom(dags_test_run, "plan_items")
    assert [p["item"] for p in planned] == ["north", "west", "south", "up"]
    assert all(p["secret_specs"] == [] for p in planned)
