"""Celery worker groups, one per queue (issue #29), in the `celery` scenario's running release.

`values/celery.yaml` gives the chart two worker groups (`tenant-a` on the queues `default` and
`tenant-a`, `tenant-b` on `tenant-b`: two worker Deployments, each `celery worker --queues …`) and
the reference config API two workflows of the unchanged `demo` template, `queue_a` (`queue:
tenant-a`) and `queue_b` (`queue: tenant-b`). Both are triggered at once; every task instance of
each must run on its own group's worker and never on the other's: the TI's `queue` is its
workflow's, and its `hostname` (the chart's `core.hostname_callable` is the pod IP) is the IP of
that group's pod. Each group's KEDA query (rendered for autoscaled groups) runs on the release's
PostgreSQL with Airflow 3.3.2's schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubelet import helm_template
from release import Release, psql

pytestmark = pytest.mark.harness

PINNED = {"queue_a": ("tenant-a", "worker-tenant-a"), "queue_b": ("tenant-b", "worker-tenant-b")}
ITEMS = ["north", "south"]


def keda_queries(workdir: Path) -> dict[str, str]:
    """The KEDA ScaledObjects' queries the chart renders for the scenario's groups, autoscaled."""
    groups = [
        {"name": "tenant-a", "queues": ["default", "tenant-a"]},
        {"name": "tenant-b", "queues": ["tenant-b"]},
    ]
    values = workdir / "keda-groups.yaml"
    workers = {"concurrency": 2, "autoscaling": {"enabled": True}, "groups": groups}
    values.write_text(yaml.safe_dump({"executor": "CeleryExecutor", "workers": workers}))
    scaled = [d for d in helm_template([values]) if d["kind"] == "ScaledObject"]
    return {d["metadata"]["name"]: d["spec"]["triggers"][0]["metadata"]["query"] for d in scaled}


@pytest.mark.scenarios("celery")
def test_each_workflow_runs_on_its_own_worker_group(release: Release) -> None:
    api, kubelet = release.api, release.kubelet
    assert api is not None
    addresses = {pod: kubelet.ip(kubelet.pods[pod]) for _, pod in PINNED.values()}
    assert len(set(addresses.values())) == 2, addresses
    runs = {dag_id: api.trigger(dag_id, {"items": ITEMS}) for dag_id in PINNED}  # both at once
    for dag_id, path in runs.items():
        queue, pod = PINNED[dag_id]
        state = api.wait_finished(path)
        tis = api.task_instances(path)
        seen = sorted({(t["task_id"], t["queue"], t["hostname"], t["state"]) for t in tis})
        assert state == "success", seen
        assert len(tis) == 7, seen  # the demo template: five tasks, two of them mapped over two items
        assert {t["queue"] for t in tis} == {queue}, seen
        assert {t["hostname"] for t in tis} == {addresses[pod]}, (addresses, seen)


@pytest.mark.scenarios("celery")
def test_each_groups_keda_query_runs_on_airflows_schema(release: Release) -> None:
    queries = keda_queries(release.workdir)
    assert set(queries) == {"dagfleet-worker-tenant-a", "dagfleet-worker-tenant-b"}
    for query in queries.values():
        assert psql(release.kubelet, query) == "0"  # nothing queued or running on its queues now
