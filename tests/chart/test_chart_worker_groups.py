"""CeleryExecutor worker groups (issue #29): one worker Deployment per group, listening on its queues,
each with its own PodDisruptionBudget and autoscaler; DAGFLEET_QUEUES for sync; without groups,
today's single worker exactly."""

from __future__ import annotations

from typing import Any

import pytest

from dagfleet.fleet.settings import read_setting
from support.chart import MINIMAL, by_kind, container, containers, env_of, one, pod_spec, render_chart, workloads

pytestmark = pytest.mark.helm

CELERY = {**MINIMAL, "executor": "CeleryExecutor"}
GROUPS = [
    {"name": "tenant-a", "queues": ["default", "tenant-a"], "concurrency": 4},
    {
        "name": "tenant-b",
        "queues": ["tenant-b", "tenant-b:hi"],
        "replicas": 2,
        "autoscaling": {"enabled": False},
        "resources": {"limits": {"cpu": "2", "memory": "2Gi"}},
    },
    {"name": "bulk", "queues": ["bulk"], "autoscaling": {"mode": "cpu", "minReplicas": 1, "maxReplicas": 3}},
]
AUTOSCALED = {"concurrency": 8, "autoscaling": {"enabled": True, "maxReplicas": 10}}


def celery(workers: dict[str, Any] | None = None, **values: Any) -> list[dict[str, Any]]:
    return render_chart({**CELERY, "workers": workers or {}, **values})


def worker_deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment") if "worker" in d["metadata"]["name"]}


def worker_args(deployment: dict[str, Any]) -> list[str]:
    return container(deployment, "worker")["args"]


class TestWithoutGroups:
    def test_one_worker_on_the_default_queue_as_before(self) -> None:
        docs = celery()
        (name,) = worker_deployments(docs)
        worker = one(docs, "Deployment", "dagfleet-worker")
        assert name == "dagfleet-worker"
        assert worker_args(worker) == ["celery", "worker"]  # Airflow's default queue: no --queues
        assert worker["spec"]["replicas"] == 1
        assert "dagfleet/worker-group" not in worker["spec"]["selector"]["matchLabels"]
        assert "dagfleet/worker-group" not in worker["spec"]["template"]["metadata"]["labels"]
        assert {p["metadata"]["name"] for p in by_kind(docs, "PodDisruptionBudget")} >= {"dagfleet-worker"}

    def test_an_empty_list_renders_the_same_objects(self) -> None:
        def objects(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [d for d in docs if d["kind"] != "Secret"]  # generated passwords differ per render

        assert objects(celery({"groups": []})) == objects(celery())
        keda = celery({**AUTOSCALED, "groups": []})
        assert one(keda, "ScaledObject", "dagfleet-worker")["spec"]["triggers"][0]["metadata"]["query"] == (
            "SELECT ceil(COUNT(*)::decimal / 8) FROM task_instance WHERE state IN ('queued', 'running')"
        )

    def test_sync_knows_the_default_queue(self) -> None:
        queues = {env_of(c).get("DAGFLEET_QUEUES") for d in workloads(celery()) for c in containers(d)}
        assert queues - {None} == {"default"}
        own_default = celery(airflow={"config": {"operators": {"default_queue": "main"}}})
        assert {env_of(c).get("DAGFLEET_QUEUES") for d in workloads(own_default) for c in containers(d)} - {None} == {
            "main"
        }

    def test_other_executors_declare_no_queues(self) -> None:
        for executor in ("LocalExecutor", "KubernetesExecutor"):
            docs = render_chart({**MINIMAL, "executor": executor, "workers": {"groups": GROUPS}})
            assert not any("DAGFLEET_QUEUES" in env_of(c) for d in workloads(docs) for c in containers(d))
            assert not [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].startswith("dagfleet-worker")]


class TestGroups:
    def test_one_deployment_per_group_on_its_queues(self) -> None:
        deployments = worker_deployments(celery({"concurrency": 8, "groups": GROUPS}))
        assert {name: worker_args(d) for name, d in deployments.items()} == {
            "dagfleet-worker-tenant-a": ["celery", "worker", "--queues", "default,tenant-a"],
            "dagfleet-worker-tenant-b": ["celery", "worker", "--queues", "tenant-b,tenant-b:hi"],
            "dagfleet-worker-bulk": ["celery", "worker", "--queues", "bulk"],
        }
        concurrency = {
            name: env_of(container(d, "worker"))["AIRFLOW__CELERY__WORKER_CONCURRENCY"]
            for name, d in deployments.items()
        }
        assert concurrency == {
            "dagfleet-worker-tenant-a": "4",
            "dagfleet-worker-tenant-b": "8",
            "dagfleet-worker-bulk": "8",
        }
        b = deployments["dagfleet-worker-tenant-b"]
        assert b["spec"]["replicas"] == 2
        assert container(b, "worker")["resources"] == {
            "requests": {"cpu": "100m", "memory": "512Mi"},  # workers.resources, its limits replaced
            "limits": {"cpu": "2", "memory": "2Gi"},
        }
        for d in deployments.values():  # every group keeps the sync sidecar and the shared ServiceAccount
            assert container(d, "dag-sync")["command"] == ["dumb-init", "--", "dagfleet", "watch"]
            assert pod_spec(d)["serviceAccountName"] == "dagfleet-worker"

    def test_selectors_are_one_per_group_and_match_their_own_pods_only(self) -> None:
        docs = celery({"groups": GROUPS})
        selectors = {}
        for name, d in worker_deployments(docs).items():
            selector = d["spec"]["selector"]["matchLabels"]
            pod_labels = d["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
            assert selector["app.kubernetes.io/component"] == "worker"  # NetworkPolicies select workers by it
            selectors[name] = selector["dagfleet/worker-group"]
        assert selectors == {f"dagfleet-worker-{g['name']}": g["name"] for g in GROUPS}
        budgets = {
            p["metadata"]["name"]: p["spec"]["selector"]["matchLabels"] for p in by_kind(docs, "PodDisruptionBudget")
        }
        for name, group in selectors.items():
            assert budgets[name]["dagfleet/worker-group"] == group
        assert "dagfleet-worker" not in budgets

    def test_each_group_scales_on_its_own_queues(self) -> None:
        docs = celery({**AUTOSCALED, "groups": GROUPS})
        (scaled,) = by_kind(docs, "ScaledObject")  # tenant-b turned it off, bulk uses the CPU
        assert scaled["spec"]["scaleTargetRef"]["name"] == scaled["metadata"]["name"] == "dagfleet-worker-tenant-a"
        assert scaled["spec"]["triggers"][0]["metadata"]["query"] == (
            "SELECT ceil(COUNT(*)::decimal / 4) FROM task_instance WHERE state IN ('queued', 'running')"
            " AND queue IN ('default', 'tenant-a')"
        )
        (hpa,) = by_kind(docs, "HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "dagfleet-worker-bulk"
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
        deployments = worker_deployments(docs)
        assert "replicas" not in deployments["dagfleet-worker-tenant-a"]["spec"]  # left to the autoscaler
        assert "replicas" not in deployments["dagfleet-worker-bulk"]["spec"]
        assert deployments["dagfleet-worker-tenant-b"]["spec"]["replicas"] == 2
        assert [t["metadata"]["name"] for t in by_kind(docs, "TriggerAuthentication")] == ["dagfleet-worker-keda"]

    def test_every_syncing_container_knows_every_served_queue(self) -> None:
        docs = celery({"groups": GROUPS})
        synced = [env_of(c) for d in workloads(docs) for c in containers(d) if "DAGFLEET_SYNC_INTERVAL" in env_of(c)]
        assert synced and {env["DAGFLEET_QUEUES"] for env in synced} == {"default,tenant-a,tenant-b,tenant-b:hi,bulk"}
        served = read_setting({"DAGFLEET_QUEUES": synced[0]["DAGFLEET_QUEUES"]}, "DAGFLEET_QUEUES")
        assert served == ("default", "tenant-a", "tenant-b", "tenant-b:hi", "bulk")
