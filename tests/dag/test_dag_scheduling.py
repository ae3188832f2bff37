"""Scheduling controls as Airflow sees them, with the shipped `demo` template unchanged.

Parsing (`DagBag`, which runs dagfleet's cluster policy like the dag-processor and the workers):
task defaults on every task, DAG arguments, asset schedules, outlets on the leaf tasks only.
Notifications: `airflow dags test` of a failing and of a succeeding run posts to a real loopback
webhook whose URL lives only in an `AIRFLOW_CONN_*` connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from support.dag import make_dags, parse_dags
from support.webhook import webhook_receiver

pytestmark = pytest.mark.airflow

AIRFLOW = str(Path(sys.executable).parent / "airflow")
ORDERS = "s3://bucket/tenant-a/orders"
SCHEDULED = {
    "pool": "tenant_a",
    "pool_slots": 2,
    "priority_weight": 7,
    "weight_rule": "absolute",
    "queue": "tenant-a",
    "max_active_tasks": 3,
    "dagrun_timeout": {"minutes": 30},
    "outlets": [ORDERS, "s3://bucket/tenant-a/report"],
}
CONSUMER = {"schedule": {"any": [ORDERS, {"all": ["s3://bucket/b/x", "s3://bucket/b/y"]}]}}
FAILING_CONF = {"items": [{"name": "x", "secret_set": "undeclared"}]}  # plan_items fails the run
LATE = {"deadline": {"after": {"minutes": 30}, "connection": "tenant_hook"}}


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = make_dags(
        tmp_path_factory.mktemp("sched") / "dags",
        {"producer": SCHEDULED, "consumer": CONSUMER, "plain": {}, "late": LATE},
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        parsed = parse_dags(folder, monkeypatch)
        assert parsed.import_errors == {}
        yield parsed


def test_task_level_fields_reach_every_task(bag: Any) -> None:
    dag = bag.dags["producer"]
    for task in dag.tasks:
        assert (task.pool, task.pool_slots, task.queue) == ("tenant_a", 2, "tenant-a"), task.task_id
        assert (task.priority_weight, str(task.weight_rule)) == (7, "absolute"), task.task_id


def test_dag_level_fields(bag: Any) -> None:
    dag = bag.dags["producer"]
    assert dag.max_active_tasks == 3
    assert dag.dagrun_timeout == timedelta(minutes=30)


def test_outlets_go_on_the_leaf_tasks_only(bag: Any) -> None:
    dag = bag.dags["producer"]
    leaves = {t.task_id for t in dag.leaves}
    assert leaves == {"summarize"}  # the demo template's final task
    for task in dag.tasks:
        uris = [a.uri for a in task.outlets]
        assert uris == ([ORDERS, "s3://bucket/tenant-a/report"] if task.task_id in leaves else []), task.task_id


def test_an_asset_schedule_becomes_airflows_condition(bag: Any) -> None:
    from airflow.sdk import Asset, AssetAll, AssetAny

    schedule = bag.dags["consumer"].schedule
    assert schedule == AssetAny(Asset(ORDERS), AssetAll(Asset("s3://bucket/b/x"), Asset("s3://bucket/b/y")))


def test_a_workflow_without_the_fields_keeps_airflows_defaults(bag: Any) -> None:
    dag, producer = bag.dags["plain"], bag.dags["producer"]
    assert dag.max_active_tasks != 3 and dag.dagrun_timeout is None
    assert dag.on_failure_callback is None and dag.on_success_callback is None
    for task in dag.tasks:
        assert (task.pool, task.queue, task.outlets) == ("default_pool", "default", []), task.task_id
    assert {t.task_id for t in dag.tasks} == {t.task_id for t in producer.tasks}  # the same template


def test_a_deadline_becomes_airflows_deadline_alert(bag: Any) -> None:
    from airflow.sdk import DeadlineReference, SyncCallback
    from airflow.serialization.serialized_objects import DagSerialization

    (alert,) = bag.dags["late"].deadline
    assert alert.reference == DeadlineReference.DAGRUN_QUEUED_AT
    assert alert.interval == timedelta(minutes=30)
    assert isinstance(alert.callback, SyncCallback)  # run by the executor (LocalExecutor, CeleryExecutor)
    assert (alert.callback.path, alert.callback.kwargs) == (
        "dagfleet.fleet.notify.deadline_missed",
        {"connection": "tenant_hook"},
    )
    assert not bag.dags["plain"].deadline
    serialized = json.dumps(DagSerialization.to_dict(bag.dags["late"]))  # what the dag-processor stores
    assert "dagfleet.fleet.notify.deadline_missed" in serialized and "tenant_hook" in serialized


# -- notifications -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def webhook() -> Iterator[Any]:
    with webhook_receiver() as server:
        yield server


@pytest.fixture(scope="module")
def dags_test(tmp_path_factory: pytest.TempPathFactory, webhook: Any) -> Any:
    """`airflow dags test <id> -c <conf>` in a subprocess with its own AIRFLOW_HOME and connection."""
    tmp = tmp_path_factory.mktemp("notify")
    notify = {"on_failure": {"connection": "tenant_hook"}, "on_success": {"connection": "tenant_hook"}}
    dags = make_dags(tmp / "dags", {"notified": {"notify": notify}})
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DAGFLEET_", "AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp / "home"),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW_CONN_TENANT_HOOK=f"http://127.0.0.1:{webhook.server_port}/hooks/tenant-a",
    )

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AIRFLOW, *argv], capture_output=True, text=True, env=env, timeout=300, cwd=tmp)

    migrated = run("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return run


def test_a_failed_run_calls_the_failure_notifier(dags_test: Any, webhook: Any) -> None:
    webhook.received.clear()
    result = dags_test("dags", "test", "notified", "-c", json.dumps(FAILING_CONF))
    assert result.returncode != 0  # the run failed
    assert webhook.received, f"no notification: {result.stdout[-2000:]}"
    path, payload = webhook.received[-1]
    assert path == "/hooks/tenant-a"
    assert (payload["event"], payload["dag_id"], payload["state"]) == ("on_failure", "notified", "failed")
    assert str(webhook.server_port) not in result.stdout + result.stderr  # the URL is never logged


def test_a_successful_run_calls_the_success_notifier(dags_test: Any, webhook: Any) -> None:
    webhook.received.clear()
    result = dags_test("dags", "test", "notified", "-c", json.dumps({"items": ["a"]}))
    assert result.returncode == 0, result.stdout[-2000:]
    assert [(p["event"], p["state"]) for _, p in webhook.received] == [("on_success", "success")]


def test_the_deadline_callback_as_the_executor_runs_it_posts_to_the_webhook(webhook: Any, monkeypatch: Any) -> None:
    """Airflow's own callback runner, with the kwargs and the context the scheduler gives a missed deadline."""
    import structlog
    from airflow.sdk.execution_time.callback_supervisor import execute_callback

    monkeypatch.setenv("AIRFLOW_CONN_TENANT_HOOK", f"http://127.0.0.1:{webhook.server_port}/hooks/late")
    webhook.received.clear()
    context = {
        "dag_run": {"dag_id": "late", "dag_run_id": "manual__1", "state": "running", "conf": {}},
        "deadline": {"id": "01a2", "deadline_time": "2026-12-08 02:19:51+00:00"},
    }
    kwargs = {"connection": "tenant_hook", "context": context}
    ok, error = execute_callback(
        "dagfleet.fleet.notify.deadline_missed", kwargs, "late-mydag.py", None, structlog.get_logger()
    )
    assert (ok, error) == (True, None)
    [(path, payload)] = webhook.received
    assert path == "/hooks/late"
    assert payload == {
        "event": "deadline_missed",
        "dag_id": "late",
        "run_id": "manual__1",
        "state": "running",
        "reason": "not finished by its deadline 2026-12-08 02:19:51+00:00",
    }


def test_a_connection_that_is_not_a_url_fails_without_leaking_it() -> None:
    from airflow.sdk import Connection

    from dagfleet.fleet.notify import webhook_url

    assert webhook_url(Connection(conn_id="h", conn_type="https", host="hooks.example.com", schema="t/x")) == (
        "https://hooks.example.com/t/x"
    )
    with pytest.raises(ValueError, match="connection 'h' must be an http or https URL") as err:
        webhook_url(Connection(conn_id="h", conn_type="ftp", host="secret-host", password="pw"))  # noqa: S106 - fake
    assert "secret-host" not in str(err.value) and "pw" not in str(err.value)


def test_an_asset_uri_airflow_refuses_is_rejected_at_sync_not_at_parse(config_api_factory: Any, tmp_path: Path) -> None:
    """`postgres://x` has dagfleet's form but Airflow's postgres rule needs database, schema and
    table: sync rejects the new config on one line and the workflow keeps its last known good DAG."""
    from dagfleet.api.client import ConfigClient
    from dagfleet.api.retry import retry_policy
    from dagfleet.fleet.settings import Settings
    from dagfleet.sync.apply import FleetSync

    api = config_api_factory({"tenant": {"outlets": ["s3://bucket/ok"]}})
    settings = Settings(api_url=api.url, api_key_value="test-key-123", dags_folder=tmp_path / "dags", retries=2)

    def sync() -> Any:
        return FleetSync(settings, ConfigClient.from_settings(settings, retrying=retry_policy(2, initial=0))).sync()

    assert sync().problems == []
    api.write({"tenant": {"outlets": ["postgres://x"], "schedule": {"any": ["s3://bucket/ok", "postgres://h/db"]}}})
    problems = sync().problems
    assert len(problems) == 1 and "\n" not in problems[0]
    assert (
        "config field 'outlets[0]': Airflow refuses the asset URI: URI format postgres:// must contain" in problems[0]
    )
    assert "config field 'schedule': Airflow refuses the asset URI" in problems[0]
    assert problems[0].endswith("kept its last known good config")
    assert settings.store.record("tenant").config == {"outlets": ["s3://bucket/ok"]}  # type: ignore[union-attr]
