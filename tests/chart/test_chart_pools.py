"""Pools declared in the chart's values (`pools`) and its executor: DAGFLEET_POOLS and
DAGFLEET_EXECUTORS for every syncing container, and the migration Job's command, run for real
against a SQLite Airflow, creating and updating the pools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagfleet.fleet.settings import read_setting
from support.chart import container, containers, env_of, render_chart, workloads

pytestmark = pytest.mark.helm

POOLS = {
    "tenant_a": {"slots": 4, "description": "Tenant A"},
    "tenant_b": {"slots": 1, "description": 'it\'s "B"; $(x)'},
}
BIN = Path(sys.executable).parent


def _migrate(values: dict) -> dict:
    docs = render_chart(values, show_only=["templates/migrate-job.yaml"])
    return container(docs[0], "migrate")


def test_every_syncing_container_gets_the_declared_pools() -> None:
    docs = render_chart({"pools": POOLS})
    envs = [env_of(c) for doc in workloads(docs) for c in containers(doc)]
    declared = [env["DAGFLEET_POOLS"] for env in envs if "DAGFLEET_POOLS" in env]
    synced = [env for env in envs if "DAGFLEET_SYNC_INTERVAL" in env]  # the syncing containers
    assert synced and len(declared) >= len(synced)
    assert {json.dumps(json.loads(d), sort_keys=True) for d in declared} == {json.dumps(POOLS, sort_keys=True)}
    assert read_setting({"DAGFLEET_POOLS": declared[0]}, "DAGFLEET_POOLS") == ("tenant_a", "tenant_b")


def test_without_pools_nothing_changes() -> None:
    docs = render_chart({})
    assert not any("DAGFLEET_POOLS" in json.dumps(doc) for doc in docs)
    assert _migrate({})["command"] == ["airflow", "db", "migrate"]


def test_the_migration_job_creates_and_updates_the_pools(tmp_path: Path) -> None:
    """The rendered command as the container runs it (its /tmp is the test's folder), twice."""
    migrate = _migrate({"pools": POOLS})
    script = migrate["command"][2].replace("/tmp/", f"{tmp_path}/")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DAGFLEET_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
        AIRFLOW_HOME=str(tmp_path / "home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        DAGFLEET_POOLS=env_of(migrate)["DAGFLEET_POOLS"],
    )

    def run(argv: list[str]) -> str:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout

    def pools() -> dict:
        listed = json.loads(run(["airflow", "pools", "list", "-o", "json"]))
        return {p["pool"]: (int(p["slots"]), p["description"]) for p in listed}

    run([*migrate["command"][:2], script])
    assert pools() == {
        "default_pool": (128, "Default pool"),
        "tenant_a": (4, "Tenant A"),
        "tenant_b": (1, POOLS["tenant_b"]["description"]),
    }
    env["DAGFLEET_POOLS"] = json.dumps({**POOLS, "tenant_a": {"slots": 8, "description": "Tenant A, grown"}})
    run([*migrate["command"][:2], script])  # a helm upgrade runs it again: updated in place
    assert pools()["tenant_a"] == (8, "Tenant A, grown")


@pytest.mark.parametrize("executor", ["LocalExecutor", "CeleryExecutor", "KubernetesExecutor"])
def test_sync_is_told_the_charts_executor(executor: str) -> None:
    docs = render_chart({"executor": executor})
    synced = [env_of(c) for doc in workloads(docs) for c in containers(doc) if "DAGFLEET_SYNC_INTERVAL" in env_of(c)]
    assert synced and {env["DAGFLEET_EXECUTORS"] for env in synced} == {executor}
    assert read_setting({"DAGFLEET_EXECUTORS": executor}, "DAGFLEET_EXECUTORS") == (executor,)
