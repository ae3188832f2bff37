"""The scheduling controls of a config (docs/config.md, "Scheduling controls"), without Airflow:
the fields, asset schedules and outlets as the config model checks them, and the pools, executors
and Celery queues a deployment declares (DAGFLEET_POOLS, DAGFLEET_EXECUTORS, DAGFLEET_QUEUES) as
sync and validate check them; deadline alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagfleet.api.retry import retry_policy
from dagfleet.fleet.assets import AssetCondition
from dagfleet.fleet.config import Declared, validate_config
from dagfleet.fleet.errors import DagfleetError, WorkflowConfigError
from dagfleet.fleet.settings import Settings
from dagfleet.sync.apply import FleetSync

POOLS = json.dumps({"tenant_a": {"slots": 4, "description": "tenant A"}, "tenant_b": {"slots": 2, "description": ""}})


def _error(raw: dict[str, Any], declared: Declared | None = None) -> str:
    with pytest.raises(WorkflowConfigError) as err:
        validate_config("wf", raw, declared)
    return str(err.value)


def test_every_field_with_its_value() -> None:
    config = validate_config(
        "wf",
        {
            "pool": "tenant_a",
            "pool_slots": 2,
            "priority_weight": 10,
            "weight_rule": "absolute",
            "queue": "tenant-a",
            "executor": "CeleryExecutor",
            "max_active_tasks": 4,
            "dagrun_timeout": "PT2H",
            "outlets": ["s3://bucket/tenant-a/orders"],
            "notify": {"on_failure": {"connection": "tenant_a_webhook"}},
        },
    )
    assert (config.pool, config.pool_slots, config.priority_weight, config.weight_rule) == (
        "tenant_a",
        2,
        10,
        "absolute",
    )
    assert (config.queue, config.executor, config.max_active_tasks) == ("tenant-a", "CeleryExecutor", 4)
    assert config.dagrun_timeout == timedelta(hours=2)
    assert config.notify.on_failure is not None and config.notify.on_failure.connection == "tenant_a_webhook"
    assert config.notify.on_success is None


def test_unset_fields_leave_airflow_its_defaults() -> None:
    config = validate_config("wf", {})
    unset = ("pool", "pool_slots", "priority_weight", "weight_rule", "queue", "executor", "max_active_tasks")
    assert all(getattr(config, name) is None for name in unset)
    assert config.dagrun_timeout is None and config.outlets == [] and config.notify.on_failure is None


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        ({"pool": "has space"}, "pool", "is not a valid pool name"),
        ({"pool_slots": 0}, "pool_slots", "greater than or equal to 1"),
        ({"priority_weight": 10**9}, "priority_weight", "less than or equal to 100000"),
        ({"weight_rule": "sideways"}, "weight_rule", "'downstream', 'upstream' or 'absolute'"),
        ({"queue": "a queue"}, "queue", "is not a valid queue name"),
        ({"executor": "os.system('x')"}, "executor", "is not a valid executor name"),
        ({"max_active_tasks": 0}, "max_active_tasks", "greater than or equal to 1"),
        ({"dagrun_timeout": -5}, "dagrun_timeout", "longer than zero"),
        ({"outlets": ["/no/scheme"]}, "outlets[0]", "is not an asset URI"),
        ({"notify": {"on_failure": {"url": "http://evil"}}}, "notify.on_failure.url", "unknown field"),
        ({"notify": {"on_failure": {"connection": "a b"}}}, "notify.on_failure.connection", "connection ID"),
        ({"notify": {"on_retry": {"connection": "x"}}}, "notify.on_retry", "unknown field"),
        ({"deadline": {"after": 0, "connection": "x"}}, "deadline.after", "longer than zero"),
        ({"deadline": {"after": "PT5M"}}, "deadline.connection", "required field is missing"),
        ({"deadline": {"after": "PT5M", "connection": "x", "url": "http://evil"}}, "deadline.url", "unknown field"),
        ({"deadline": {"after": "soon", "connection": "x"}}, "deadline.after", "expected"),
    ],
)
def test_bad_values_name_the_field_on_one_line(raw: dict[str, Any], field: str, problem: str) -> None:
    line = _error(raw)
    assert "\n" not in line
    assert f"config field '{field}'" in line and problem in line, line


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"assets": ["s3://b/a"]}, {"all": ["s3://b/a"]}),
        ({"assets": ["s3://b/a", "gs://c/d"]}, {"all": ["s3://b/a", "gs://c/d"]}),
        (
            {"any": ["s3://b/a", {"all": ["s3://b/x", "x-own://y"]}]},
            {"any": ["s3://b/a", {"all": ["s3://b/x", "x-own://y"]}]},
        ),
    ],
)
def test_asset_schedules_and_their_json_round_trip(schedule: dict[str, Any], expected: dict[str, Any]) -> None:
    config = validate_config("wf", {"schedule": schedule})
    assert isinstance(config.schedule, AssetCondition)
    dumped = config.model_dump(mode="json", exclude_unset=True)
    assert dumped["schedule"] == expected
    assert validate_config("wf", dumped) == config  # a dumped config re-validates to itself


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"assets": []}, "non-empty list"),
        ({"assets": "s3://b/a"}, "non-empty list"),
        ({"assets": [{"all": ["s3://b/a"]}]}, "asset URIs only"),
        ({"any": ["s3://b/a", {"none": ["s3://b/x"]}]}, "expected an asset URI or"),
        ({"all": ["s3://b/a b"]}, "no whitespace"),
        ({"all": ["S3://b/a"]}, "lower-case scheme"),
        ({"all": ["s3://b/\u00e9"]}, "printable ASCII"),
        ({"all": ["airflow://x"]}, "reserved"),
        ({"all": ["s3://b/" + "k" * 1500]}, "at most 1500 characters"),
        ({"all": [f"s3://b/{i}" for i in range(65)]}, "at most 64 assets"),
        ({"all": [{"all": [{"all": [{"all": [{"all": ["s3://b/a"]}]}]}]}]}, "at most 4 levels"),
    ],
)
def test_bad_asset_schedules_are_one_line_errors(schedule: dict[str, Any], problem: str) -> None:
    line = _error({"schedule": schedule})
    assert "config field 'schedule'" in line and problem in line, line


def test_a_duration_object_is_still_a_duration() -> None:
    assert validate_config("wf", {"schedule": {"hours": 6}}).schedule == timedelta(hours=6)


def test_declared_pools_and_executors() -> None:
    declared = Declared(pools=("tenant_a",), executors=("LocalExecutor", "CeleryExecutor"))
    assert validate_config("wf", {"pool": "tenant_a", "executor": "CeleryExecutor"}, declared).pool == "tenant_a"
    assert validate_config("wf", {"pool": "default_pool"}, declared).pool == "default_pool"  # Airflow always has it
    line = _error({"pool": "tenant_z", "executor": "KubernetesExecutor"}, declared)
    assert "config field 'pool': pool 'tenant_z' is not declared (declared: default_pool, tenant_a)" in line
    assert "config field 'executor': executor 'KubernetesExecutor' is not configured in Airflow" in line
    assert validate_config("wf", {"pool": "anything"}).pool == "anything"  # nothing declared: not checked


def test_declared_queues() -> None:
    declared = Declared(queues=("default", "tenant-a"))
    assert validate_config("wf", {"queue": "tenant-a"}, declared).queue == "tenant-a"
    assert validate_config("wf", {}, declared).queue is None  # Airflow's default queue: a group serves it
    line = _error({"queue": "tenant-z"}, declared)
    assert "config field 'queue': queue 'tenant-z' is served by no Celery worker (served: default, tenant-a)" in line
    assert "\n" not in line
    assert validate_config("wf", {"queue": "anything"}).queue == "anything"  # nothing declared: not checked


def test_a_deadline_becomes_a_config_and_needs_an_executor_that_runs_callbacks() -> None:
    deadline = {"after": {"minutes": 30}, "connection": "tenant_a_webhook"}
    config = validate_config("wf", {"deadline": deadline}, Declared(executors=("LocalExecutor",)))
    assert config.deadline is not None
    assert (config.deadline.after, config.deadline.connection) == (timedelta(minutes=30), "tenant_a_webhook")
    assert validate_config("wf", {}).deadline is None
    kubernetes = Declared(executors=("KubernetesExecutor", "CeleryExecutor"))
    line = _error({"deadline": deadline}, kubernetes)
    assert "config field 'deadline': executor 'KubernetesExecutor' runs no deadline callbacks" in line
    on_celery = validate_config("wf", {"deadline": deadline, "executor": "CeleryExecutor"}, kubernetes)
    assert on_celery.deadline is not None  # its own executor runs the callback


def test_the_settings_read_the_declarations() -> None:
    settings = Settings.from_env(
        {"DAGFLEET_POOLS": POOLS, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor,tenant:my.mod.Exec"}
    )
    assert settings.pools == ("tenant_a", "tenant_b")
    assert settings.executors == ("LocalExecutor", "tenant", "my.mod.Exec", "Exec")
    assert Settings.from_env({}).declared() == Declared(None, None, None)
    queues = Settings.from_env({"DAGFLEET_QUEUES": "default, tenant-a,tenant-b:hi,,default"})
    assert queues.declared().queues == ("default", "tenant-a", "tenant-b:hi")
    assert Settings.from_env({"DAGFLEET_QUEUES": " , "}).queues is None
    for bad in ("[]", "{", '{"p": {"slots": "4"}}', '{"p": {"slots": -2}}', '{"p": 4}', '{"p": {"slots": 1}}'):
        with pytest.raises(DagfleetError, match="DAGFLEET_POOLS: expected a JSON object"):
            Settings.from_env({"DAGFLEET_POOLS": bad})


def test_sync_rejects_a_workflow_on_an_undeclared_pool_alone(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"ok": {"pool": "tenant_a"}, "lost": {"pool": "tenant_z"}, "plain": {}})
    settings = Settings(
        api_url=api.url, api_key_value="test-key-123", dags_folder=tmp_path / "dags", retries=2, pools=("tenant_a",)
    )
    from dagfleet.api.client import ConfigClient

    report = FleetSync(settings, ConfigClient.from_settings(settings, retrying=retry_policy(2, initial=0))).sync()
    lost = [p for p in report.problems if p.startswith("workflow 'lost'")]
    assert len(lost) == 1 and "\n" not in lost[0]
    assert "config field 'pool': pool 'tenant_z' is not declared (declared: default_pool, tenant_a)" in lost[0]
    assert not [p for p in report.problems if not p.startswith("workflow 'lost'")]
    assert settings.store.record("ok") is not None and settings.store.record("plain") is not None
    assert settings.store.record("lost") is None  # a new workflow: its DAG shows the line as an import error
    assert "is not declared" in (settings.dags_folder / "lost-mydag.py").read_text()


def _validate(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`dagfleet validate --file` as the config team's CI runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW__CORE__EXECUTOR"))}
    argv = [sys.executable, "-m", "dagfleet.service.cli", "validate", "--file", str(path)]
    return subprocess.run(argv, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_validate_checks_pools_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_text(yaml.safe_dump({"workflows": {"ok": {"pool": "tenant_b"}, "lost": {"pool": "tenant_z"}}}))
    result = _validate(path, DAGFLEET_POOLS=POOLS)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "workflow 'lost': config field 'pool': pool 'tenant_z' is not declared "
        "(declared: default_pool, tenant_a, tenant_b); declare it or pick one; fix it in the config API"
    ]
    assert _validate(path).returncode == 0  # no declaration: pool names are not checked


def test_validate_checks_queues_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_text(yaml.safe_dump({"workflows": {"ok": {"queue": "tenant-a"}, "lost": {"queue": "tenant-z"}}}))
    result = _validate(path, DAGFLEET_QUEUES="default,tenant-a")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "workflow 'lost': config field 'queue': queue 'tenant-z' is served by no Celery worker "
        "(served: default, tenant-a); add it to a worker group's queues (workers.groups) or pick one; "
        "fix it in the config API"
    ]
    assert _validate(path).returncode == 0  # no declaration: queue names are not checked
