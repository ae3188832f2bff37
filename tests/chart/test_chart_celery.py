"""CeleryExecutor: workers with the generated DAG set, the broker (bundled Redis or external), Flower."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from support.chart import MINIMAL, HelmFailedError, by_kind, container, env_of, one, pod_spec, render_chart

CELERY = {**MINIMAL, "executor": "CeleryExecutor"}


def celery(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return render_chart({**CELERY, **(values or {})})


def secret_value(docs: list[dict[str, Any]], name: str, key: str) -> str:
    return base64.b64decode(one(docs, "Secret", name)["data"][key]).decode()


def projected_secrets(workload: dict[str, Any]) -> set[str]:
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == "airflow-secrets"]
    return {s["secret"]["name"] for s in volume["projected"]["sources"]}


class TestWorkers:
    def test_workers_run_celery_worker_with_the_dag_sync_sidecar(self) -> None:
        worker = one(celery(), "Deployment", "dagfleet-worker")
        main = container(worker, "worker")
        assert main["args"] == ["celery", "worker"]
        assert "command" not in main  # the image's entrypoint: sync, then /entrypoint celery worker
        sidecar = container(worker, "dag-sync")
        assert sidecar["restartPolicy"] == "Always"
        assert sidecar["command"] == ["dumb-init", "--", "dagfleet", "watch"]
        assert {"name": "task-logs", "containerPort": 8793, "protocol": "TCP"} in main["ports"]

    def test_graceful_shutdown(self) -> None:
        """SIGTERM to the worker process only (warm shutdown), with time to finish running tasks."""
        worker = one(celery(), "Deployment", "dagfleet-worker")
        assert env_of(container(worker, "worker"))["DUMB_INIT_SETSID"] == "0"
        assert pod_spec(worker)["terminationGracePeriodSeconds"] == 600
        worker = one(celery({"workers": {"terminationGracePeriodSeconds": 3600}}), "Deployment", "dagfleet-worker")
        assert pod_spec(worker)["terminationGracePeriodSeconds"] == 3600

    def test_replicas_and_concurrency(self) -> None:
        worker = one(celery({"workers": {"replicas": 3, "concurrency": 8}}), "Deployment", "dagfleet-worker")
        assert worker["spec"]["replicas"] == 3
        assert env_of(container(worker, "worker"))["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "8"

    def test_broker_and_result_backend_from_files(self) -> None:
        docs = celery()
        for name in ("dagfleet-worker", "dagfleet-scheduler"):
            workload = one(docs, "Deployment", name)
            env = env_of(container(workload, name.removeprefix("dagfleet-")))
            assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
            assert env["AIRFLOW__CELERY__BROKER_URL_CMD"] == "cat /var/run/secrets/airflow/broker-url"
            assert env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"] == (
                "sed -e 's|^|db+|' /var/run/secrets/airflow/sql-alchemy-conn"
            )
            assert "dagfleet-broker-url" in projected_secrets(workload)
            assert "checksum/broker-secret" in workload["spec"]["template"]["metadata"]["annotations"]

    def test_scheduler_has_no_pod_template_and_no_sidecar(self) -> None:
        scheduler = one(celery(), "Deployment", "dagfleet-scheduler")
        assert "pod-template" not in {v["name"] for v in pod_spec(scheduler)["volumes"]}
        assert "dag-sync" not in {c["name"] for c in pod_spec(scheduler)["initContainers"]}

    def test_nothing_celery_with_other_executors(self) -> None:
        for executor in ("LocalExecutor", "KubernetesExecutor"):
            docs = render_chart({**MINIMAL, "executor": executor, "flower": {"enabled": True}})
            names = {d["metadata"]["name"] for d in docs if d["kind"] != "ServiceAccount"}
            assert not {"dagfleet-worker", "dagfleet-redis", "dagfleet-flower", "dagfleet-broker-url"} & names
            scheduler = one(docs, "Deployment", "dagfleet-scheduler")
            assert "AIRFLOW__CELERY__BROKER_URL_CMD" not in env_of(container(scheduler, "scheduler"))


class TestBroker:
    def test_bundled_redis_with_a_generated_password(self) -> None:
        docs = celery()
        password = secret_value(docs, "dagfleet-redis-password", "password")
        assert len(password) == 32
        url = secret_value(docs, "dagfleet-broker-url", "connection")
        assert url == f"redis://:{password}@dagfleet-redis.dagfleet.svc:6379/0"
        redis = one(docs, "StatefulSet", "dagfleet-redis")
        main = container(redis, "redis")
        assert password not in str(main)  # read from the mounted file, never in args or env
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert one(docs, "Service", "dagfleet-redis")["spec"]["ports"][0]["port"] == 6379
        assert [c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]] == ["data"]

    def test_redis_password_from_an_existing_secret(self) -> None:
        docs = celery({"redis": {"passwordSecretName": "my-redis"}})
        assert not [d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == "dagfleet-redis-password"]
        (volume,) = [
            v for v in pod_spec(one(docs, "StatefulSet", "dagfleet-redis"))["volumes"] if v["name"] == "password"
        ]
        assert volume["secret"]["secretName"] == "my-redis"

    def test_external_broker_url(self) -> None:
        docs = celery({"redis": {"enabled": False}, "data": {"brokerUrl": "amqp://u:p@rabbit:5672/"}})
        assert secret_value(docs, "dagfleet-broker-url", "connection") == "amqp://u:p@rabbit:5672/"
        assert not [d for d in docs if d["metadata"]["name"].startswith("dagfleet-redis")]

    def test_external_broker_secret(self) -> None:
        docs = celery({"redis": {"enabled": False}, "data": {"brokerUrlSecretName": "my-broker"}})
        assert "dagfleet-broker-url" not in {d["metadata"]["name"] for d in by_kind(docs, "Secret")}
        assert "my-broker" in projected_secrets(one(docs, "Deployment", "dagfleet-worker"))

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"redis": {"enabled": False}}, "executor=CeleryExecutor needs a broker"),
            ({"data": {"brokerUrl": "redis://r:6379/0"}}, "set redis.enabled=false to use the external broker"),
            (
                {"redis": {"enabled": False}, "data": {"brokerUrl": "redis://r/0", "brokerUrlSecretName": "s"}},
                "data.brokerUrl and data.brokerUrlSecretName are both set",
            ),
            ({"airflow": {"config": {"celery": {"broker_url": "redis://x"}}}}, "celery.broker_url is managed"),
        ],
    )
    def test_bad_combinations_fail_with_a_message(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(HelmFailedError) as err:
            celery(values)
        assert message in err.value.stderr


class TestFlower:
    def test_off_by_default(self) -> None:
        assert "dagfleet-flower" not in {d["metadata"]["name"] for d in celery()}

    def test_flower_when_enabled(self) -> None:
        docs = celery({"flower": {"enabled": True, "port": 5556}})
        flower = one(docs, "Deployment", "dagfleet-flower")
        assert container(flower, "flower")["args"] == ["celery", "flower", "--port", "5556"]
        assert one(docs, "Service", "dagfleet-flower")["spec"]["type"] == "ClusterIP"
        assert one(docs, "PodDisruptionBudget", "dagfleet-flower")
