"""The chart, run like a cluster would run it: each scenario's `helm template` output under Docker.

For LocalExecutor (the default install), CeleryExecutor, KubernetesExecutor and LocalExecutor
behind PgBouncer (issue 32: afterwards PostgreSQL's only clients are PgBouncer's): the migration Job
completes, the api-server is healthy, the reference config API's workflows are all visible with
zero import errors, and a triggered run of the mapped workflow `hello_conf` succeeds. For the
KubernetesExecutor every task runs in the pod Airflow's own code built from the chart's pod
template (tests/harness/harness_executor.py), started here as a kubelet would start it.
The releases come from conftest.py (`release`, one per scenario, shared by the scenario's tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubelet import REPO, Kubelet, helm_template
from release import Release, psql

from support.wait import wait_until

pytestmark = pytest.mark.harness

WORKFLOWS = set(yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"])
MAPPED = "hello_conf"
ITEMS = ["north", "south", "east"]
READY_TIMEOUT = 900


def database_clients(kubelet: Kubelet) -> set[str]:
    """The addresses of PostgreSQL's network clients of the Airflow database, as PostgreSQL sees them."""
    sql = (
        "SELECT DISTINCT host(client_addr) FROM pg_stat_activity WHERE datname = 'airflow' AND client_addr IS NOT NULL"
    )
    return set(psql(kubelet, sql).split())


def connections_by_pod(kubelet: Kubelet) -> dict[str, int]:
    """How many connections each pod holds to the Airflow database now (printed: docs/helm.md)."""
    sql = (
        "SELECT host(client_addr), count(*) FROM pg_stat_activity"
        " WHERE datname = 'airflow' AND client_addr IS NOT NULL GROUP BY 1"
    )
    pods = {kubelet.ip(pod): name for name, pod in kubelet.pods.items()}
    rows = [line.split("|") for line in psql(kubelet, sql).splitlines()]
    return {pods.get(address, address): int(count) for address, count in rows}


def keda_query(workdir: Path) -> str:
    """The query of the KEDA ScaledObject the chart renders for autoscaled Celery workers."""
    values = workdir / "keda.yaml"
    values.write_text(yaml.safe_dump({"executor": "CeleryExecutor", "workers": {"autoscaling": {"enabled": True}}}))
    (scaled,) = [d for d in helm_template([values]) if d["kind"] == "ScaledObject"]
    return scaled["spec"]["triggers"][0]["metadata"]["query"]


def test_release(release: Release) -> None:
    api, kubelet, runner = release.api, release.kubelet, release.runner
    assert api is not None
    assert api.call("GET", "/api/v2/monitor/health", auth=False)["metadatabase"]["status"] == "healthy"

    def all_visible() -> set[str] | None:
        ids = {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}
        return ids if ids >= WORKFLOWS else None

    assert wait_until("every workflow of the config API as a DAG", all_visible, READY_TIMEOUT, every=5) >= WORKFLOWS
    assert api.call("GET", "/api/v2/importErrors")["total_entries"] == 0

    ran_before = len(runner.ran) if runner else 0
    path = api.trigger(MAPPED, {"items": ITEMS})
    state = api.wait_finished(path)
    tis = api.task_instances(path)
    summary = sorted((t["task_id"], t["map_index"], t["state"]) for t in tis)
    assert state == "success", summary
    mapped = [t for t in tis if t["task_id"] == "process_item"]
    assert sorted(t["map_index"] for t in mapped) == list(range(len(ITEMS)))
    assert {t["state"] for t in tis} == {"success"}
    print(f"harness {release.scenario}: database connections by pod after the run: {connections_by_pod(kubelet)}")
    if release.scenario == "pgbouncer":
        assert database_clients(kubelet) == {kubelet.ip(kubelet.pods["pgbouncer"])}
        # KEDA's worker query runs on Airflow 3.3.2's schema: nothing queued or running now.
        assert psql(kubelet, keda_query(release.workdir)) == "0"
    if runner:  # a task reports success before its container exits: wait for the last exits
        wait_until("every task pod to exit", lambda: len(runner.ran) >= ran_before + len(tis), 300, every=2)
        assert not runner.errors, runner.errors
        # Every task ran in a pod built by Airflow's code from the chart's pod template.
        assert len(runner.ran) == ran_before + len(tis), (runner.ran, summary)
        assert set(runner.ran.values()) == {0}
        for pod in runner.pods.values():
            (base,) = pod["spec"]["containers"]
            assert base["command"] == ["dumb-init", "--", "dagfleet", "task", "--"]
            assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
            env = {e["name"] for e in base["env"]}
            assert "DAGFLEET_TASK_WORKFLOW" in env
            assert not {"DAGFLEET_API_URL", "DAGFLEET_API_KEY_FILE"} & env
