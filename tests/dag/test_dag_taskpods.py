"""KubernetesExecutor task pods run the DAG and config the DAG processor parsed (dagfleet.service.taskpod).

Under the KubernetesExecutor every task carries a pod override with the workflow's parsed config;
it survives DAG serialization (what the scheduler reads); `dagfleet task` in an empty DAG folder
rebuilds exactly that DAG from it without calling the config API, even while the API is down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dagfleet.service.taskpod import ENV_VAR
from support.dag import example_workflows, make_dags, parse_dags
from support.paths import REPO

DAGFLEET = REPO / ".venv" / "bin" / "dagfleet"


def override_payload(task: Any) -> dict[str, Any] | None:
    """The DAGFLEET_TASK_WORKFLOW payload of a task's pod override (base container), or None."""
    override = (task.executor_config or {}).get("pod_override")
    if override is None:
        return None
    (base,) = [c for c in override.spec.containers if c.name == "base"]
    (value,) = [e.value for e in base.env if e.name == ENV_VAR]
    return json.loads(value)


@pytest.fixture
def kubernetes_executor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")


def test_every_task_carries_the_parsed_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubernetes_executor: None
) -> None:
    configs = example_workflows()
    bag = parse_dags(make_dags(tmp_path / "dags", configs), monkeypatch)
    assert bag.import_errors == {}
    assert set(bag.dags) == set(configs)
    for dag_id, dag in bag.dags.items():
        for task in dag.tasks:  # mapped ones included
            payload = override_payload(task)
            assert payload is not None, task.task_id
            assert (payload["workflow_id"], payload["record"]["config"]) == (dag_id, configs[dag_id]), task.task_id


def test_other_executors_get_no_pod_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    bag = parse_dags(make_dags(tmp_path / "dags", {"plain": {}}), monkeypatch)
    assert bag.import_errors == {}
    assert all(not task.executor_config for task in bag.dags["plain"].tasks)


def test_the_override_survives_serialization(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubernetes_executor: None
) -> None:
    """The scheduler reads the serialized DAG: the override must come back out of it intact."""
    from airflow.serialization.serialized_objects import DagSerialization

    config = {"tags": ["x"], "items": ["a", "b"], "params": {"message": "hi"}}
    dag = parse_dags(make_dags(tmp_path / "dags", {"ser": config}), monkeypatch).dags["ser"]
    restored = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    for task in restored.tasks:
        payload = override_payload(task)
        assert payload is not None, task.task_id
        assert payload["record"]["config"] == config, task.task_id


def test_no_stored_config_means_no_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubernetes_executor: None
) -> None:
    """A config the loader did not read from disk is not kept raw: the pod takes the fallback path.
    The override carries the record the parse read, never one written after it."""
    folder = make_dags(tmp_path / "dags", {"cached": {"tags": ["from-disk"]}})
    from dagfleet.authoring.podoverride import task_defaults
    from dagfleet.authoring.workflow import workflow
    from dagfleet.fleet.store import FleetStore, Record

    monkeypatch.setenv("DAGFLEET_DAGS_FOLDER", str(folder))
    parsed = workflow(folder / "cached-mydag.py")
    FleetStore(folder).write_record(Record("cached", {"tags": ["changed-after-parse"]}, "demo"))
    default_args = parsed.dag_args()["default_args"]
    payload = override_payload(SimpleNamespace(executor_config=default_args["executor_config"]))
    assert payload is not None and payload["record"]["config"] == {"tags": ["from-disk"]}
    assert task_defaults("cached", None, b"x") == {}  # from the cache or the API: no record to carry
    bag = parse_dags(folder, monkeypatch)
    assert override_payload(bag.dags["cached"].tasks[0]) is not None


def run_task_command(folder: Path, env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    """`dagfleet task -- COMMAND` as a task pod runs it (exec'd directly: no /entrypoint here)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")}
    full = {**base, "DAGFLEET_DAGS_FOLDER": str(folder), "DAGFLEET_EXEC": "airflow", **env}
    return subprocess.run([str(DAGFLEET), "task", "--", *command], env=full, capture_output=True, text=True,
                          timeout=180, check=False)  # fmt: skip


LIST_DAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get(sys.argv[2])
print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "ids": sorted(bag.dag_ids),
                  "tasks": sorted(dag.task_ids) if dag else None, "tags": sorted(dag.tags) if dag else None}))
"""


def test_task_command_rebuilds_the_dag_without_the_config_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kubernetes_executor: None
) -> None:
    configs = example_workflows()
    parsed = parse_dags(make_dags(tmp_path / "parsed", configs), monkeypatch).dags["acme_sync"]
    payload = override_payload(parsed.tasks[0])
    pod_dags = tmp_path / "pod-dags"  # the task pod's empty emptyDir
    # A config API that is down: `task` must not need it (nothing listens on port 1).
    env = {ENV_VAR: json.dumps(payload), "DAGFLEET_API_URL": "http://127.0.0.1:1"}
    result = run_task_command(pod_dags, env, sys.executable, "-c", LIST_DAG, str(pod_dags), "acme_sync")
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["errors"] == {}
    assert seen["ids"] == ["acme_sync"]  # only the task's own workflow
    assert seen["tasks"] == sorted(parsed.task_ids)
    assert seen["tags"] == sorted(parsed.tags)
    assert "materialized from the config the DAG was parsed with" in result.stderr
    assert "127.0.0.1:1" not in result.stderr  # no request was even attempted


def test_task_command_without_override_or_api_says_so_and_still_runs(tmp_path: Path) -> None:
    result = run_task_command(tmp_path / "dags", {}, sys.executable, "-c", "print('task ran')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "task ran"
    assert f"no {ENV_VAR} and no config API to fall back to" in result.stderr


def test_task_command_falls_back_to_one_sync(tmp_path: Path, config_api_factory: Any) -> None:
    api = config_api_factory({"fallback_wf": {"tags": ["fb"]}})
    env = {"DAGFLEET_API_URL": api.url, "DAGFLEET_API_KEY": api.api_key}
    result = run_task_command(tmp_path / "dags", env, sys.executable, "-c", "print('task ran')")
    assert result.returncode == 0, result.stderr
    assert "one bounded sync instead" in result.stderr
    assert (tmp_path / "dags" / "fallback_wf-mydag.py").exists()


def test_malformed_override_is_one_line_and_the_task_still_starts(tmp_path: Path) -> None:
    result = run_task_command(tmp_path / "dags", {ENV_VAR: "{not json"}, sys.executable, "-c", "print('task ran')")
    assert result.returncode == 0
    assert result.stdout.strip() == "task ran"
    assert f"{ENV_VAR} is not the JSON object the DAG set" in result.stderr
