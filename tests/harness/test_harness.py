"""The chart, run like a cluster would run it: each scenario's `helm template` output under Docker.

For LocalExecutor (the default install), CeleryExecutor, KubernetesExecutor and LocalExecutor
behind PgBouncer (issue 32: afterwards PostgreSQL's only clients are PgBouncer's): the migration Job
completes, the api-server is healthy, the reference config API's workflows are all visible with
zero import errors, and a triggered run of the mapped workflow `hello_conf` succeeds. For the
KubernetesExecutor the unmodified executor creates every task's pod through the harness's Kubernetes
API stand-in (tests/harness/kubeapi.py), which runs it as a kubelet would.
The releases come from conftest.py (`release`, one per scenario, shared by the scenario's tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubeapi import KubeApi
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
    api, kubelet, kube = release.api, release.kubelet, release.kube
    assert api is not None
    assert api.call("GET", "/api/v2/monitor/health", auth=False)["metadatabase"]["status"] == "healthy"

    def all_visible() -> set[str] | None:
        ids = {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}
        return ids if ids >= WORKFLOWS else None

    assert wait_until("every workflow of the config API as a DAG", all_visible, READY_TIMEOUT, every=5) >= WORKFLOWS
    assert api.call("GET", "/api/v2/importErrors")["total_entries"] == 0

    version = kube.store.version if kube else 0
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
    if kube:
        assert_task_pods(kube, version, len(tis), summary)


def assert_task_pods(kube: KubeApi, version: int, count: int, summary: list) -> None:
    """Every task ran in a pod the unmodified KubernetesExecutor created through the API, from the pod template."""

    def succeeded() -> dict | None:  # a task reports success before its container exits
        pods = kube.pods_since(version, f"kubernetes_executor=True,dag_id={MAPPED}")
        phases = {name: {obj["status"]["phase"] for _, obj in events} for name, events in pods.items()}
        return pods if len(pods) >= count and all("Succeeded" in p for p in phases.values()) else None

    pods = wait_until("every task pod to succeed", succeeded, 300, every=2)
    assert len(pods) == count, (sorted(pods), summary)
    calls = {(account, verb, resource) for account, verb, resource in kube.calls}
    assert {("dagfleet-scheduler", verb, "pods") for verb in ("watch", "create", "delete")} <= calls
    for events in pods.values():
        (base,) = events[0][1]["spec"]["containers"]
        assert base["command"] == ["dumb-init", "--", "dagfleet", "task", "--"]
        assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
        env = {e["name"] for e in base["env"]}
        assert "DAGFLEET_TASK_WORKFLOW" in env
        assert not {"DAGFLEET_API_URL", "DAGFLEET_API_KEY_FILE"} & env
