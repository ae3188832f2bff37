"""The chart at fleet scale (issue 32): autoscaling (KEDA, HPAs) with consistent PodDisruptionBudgets,
PgBouncer in every Airflow component's database path, the cleanup CronJobs, global placement."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from support import chart
from support.chart import (
    MINIMAL,
    HelmFailedError,
    by_kind,
    container,
    env_of,
    one,
    pod_spec,
    render_chart,
    render_scenario,
)

KEDA_SCHEMA = json.loads((Path(__file__).parent / "fixtures" / "keda-v1alpha1.schema.json").read_text())
CELERY = {**MINIMAL, "executor": "CeleryExecutor"}
KEDA = {**CELERY, "workers": {"concurrency": 8, "autoscaling": {"enabled": True}}}
PGBOUNCER = {"pgbouncer": {"enabled": True, "image": {"repository": "pgbouncer", "tag": "1.18.0"}}}
PGBOUNCER_ADDRESS = "dagfleet-pgbouncer.dagfleet.svc:6543"
URL_KEY = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"


def secret_value(docs: list[dict[str, Any]], name: str, key: str) -> str:
    return base64.b64decode(one(docs, "Secret", name)["data"][key]).decode()


def run_like_airflow(command: str, url_file: Path) -> str:
    """What Airflow does with a `_CMD` setting (shlex.split, no shell), on a file of ours."""
    args = [arg.replace("/var/run/secrets/airflow/sql-alchemy-conn", str(url_file)) for arg in shlex.split(command)]
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=30).stdout.strip()


def keda_problems(doc: dict[str, Any]) -> list[str]:
    """KEDA's schema (tests/chart/fixtures, written from KEDA's docs) for the object's kind."""
    schema = {"definitions": KEDA_SCHEMA["definitions"], "$ref": f"#/definitions/{doc['kind']}"}
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


class TestWorkerAutoscalingKeda:
    def test_scaled_object_scales_the_worker_deployment_on_queued_and_running_tasks(self) -> None:
        docs = render_chart(KEDA)
        scaled = one(docs, "ScaledObject", "dagfleet-worker")
        spec = scaled["spec"]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "dagfleet-worker"}
        assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 10)
        assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (10, 300)
        assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
            "stabilizationWindowSeconds": 600
        }
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "postgresql"
        assert trigger["metadata"] == {
            "query": "SELECT ceil(COUNT(*)::decimal / 8) FROM task_instance WHERE state IN ('queued', 'running')",
            "targetQueryValue": "1",
        }
        assert "replicas" not in one(docs, "Deployment", "dagfleet-worker")["spec"]  # the autoscaler owns it
        assert not by_kind(docs, "HorizontalPodAutoscaler")

    def test_keda_reads_the_bundled_database_through_its_own_secret_key(self) -> None:
        docs = render_chart(KEDA)
        auth = one(docs, "TriggerAuthentication", "dagfleet-worker-keda")
        assert auth["spec"]["secretTargetRef"] == [
            {"parameter": "connection", "name": "dagfleet-postgresql", "key": "keda-connection"}
        ]
        assert one(docs, "ScaledObject", "dagfleet-worker")["spec"]["triggers"][0]["authenticationRef"] == {
            "name": "dagfleet-worker-keda"
        }
        password = secret_value(docs, "dagfleet-postgresql", "password")
        assert secret_value(docs, "dagfleet-postgresql", "keda-connection") == (
            f"postgresql://airflow:{password}@dagfleet-postgresql.dagfleet.svc:5432/airflow?sslmode=disable"
        )
        assert "keda-connection" not in one(render_chart(CELERY), "Secret", "dagfleet-postgresql")["data"]

    def test_an_existing_connection_secret(self) -> None:
        values = {
            **KEDA,
            "postgresql": {"enabled": False},
            "externalDatabase": {"existingSecret": "db"},
            "workers": {"autoscaling": {"enabled": True, "connectionSecretName": "keda-db"}},
        }
        auth = one(render_chart(values), "TriggerAuthentication", "dagfleet-worker-keda")
        assert auth["spec"]["secretTargetRef"][0] == {"parameter": "connection", "name": "keda-db", "key": "connection"}

    @pytest.mark.parametrize("scenario", ["fleet-keda"])
    def test_rendered_keda_objects_validate_against_kedas_schema(self, scenario: str) -> None:
        docs = [d for d in render_scenario(scenario) if d["apiVersion"].startswith("keda.sh/")]
        assert {d["kind"] for d in docs} == {"ScaledObject", "TriggerAuthentication"}
        assert {d["metadata"]["name"]: keda_problems(d) for d in docs} == {d["metadata"]["name"]: [] for d in docs}

    def test_the_keda_schema_refuses_what_keda_would(self) -> None:
        """The fixture is not a rubber stamp: a wrong type, a typo, a trigger without its query fail."""
        scaled = one(render_chart(KEDA), "ScaledObject", "dagfleet-worker")
        assert keda_problems(scaled) == []
        broken = json.loads(json.dumps(scaled))
        broken["spec"]["minReplicaCount"] = "1"
        broken["spec"]["cooldownPeriods"] = 5
        del broken["spec"]["triggers"][0]["metadata"]["query"]
        problems = " | ".join(keda_problems(broken))
        assert "'1' is not of type 'integer'" in problems
        assert "'cooldownPeriods' was unexpected" in problems
        assert "'query' is a required property" in problems

    def test_nothing_to_scale_without_celery(self) -> None:
        docs = render_chart({**MINIMAL, "workers": {"autoscaling": {"enabled": True}}})
        assert not by_kind(docs, "ScaledObject")
        assert not by_kind(docs, "HorizontalPodAutoscaler")


class TestHorizontalPodAutoscalers:
    def test_worker_cpu_mode(self) -> None:
        values = {**CELERY, "workers": {"autoscaling": {"enabled": True, "mode": "cpu", "minReplicas": 0}}}
        docs = render_chart(values)
        assert not by_kind(docs, "ScaledObject")
        hpa = one(docs, "HorizontalPodAutoscaler", "dagfleet-worker")
        assert hpa["spec"]["scaleTargetRef"]["name"] == "dagfleet-worker"
        assert hpa["spec"]["minReplicas"] == 1  # an HPA cannot scale to zero
        assert hpa["spec"]["metrics"][0]["resource"] == {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 70},
        }

    @pytest.mark.parametrize(("key", "component"), [("apiServer", "api-server"), ("triggerer", "triggerer")])
    def test_component_hpa(self, key: str, component: str) -> None:
        values = {**MINIMAL, key: {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 5}}}
        docs = render_chart(values)
        hpa = one(docs, "HorizontalPodAutoscaler", f"dagfleet-{component}")
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"dagfleet-{component}",
        }
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
        assert "replicas" not in one(docs, "Deployment", f"dagfleet-{component}")["spec"]

    def test_off_by_default_and_replicas_stay(self) -> None:
        docs = render_chart(CELERY)
        assert not by_kind(docs, "HorizontalPodAutoscaler")
        assert not by_kind(docs, "ScaledObject")
        for name in ("api-server", "triggerer", "worker"):
            assert one(docs, "Deployment", f"dagfleet-{name}")["spec"]["replicas"] == 1


class TestDisruptionBudgets:
    def test_every_autoscaled_deployment_and_pgbouncer_has_a_budget_that_lets_a_drain_through(self) -> None:
        docs = render_scenario("fleet-keda")
        targets = {
            d["spec"]["scaleTargetRef"]["name"]
            for d in docs
            if d["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")
        }
        assert targets == {"dagfleet-worker", "dagfleet-api-server", "dagfleet-triggerer"}
        budgets = {d["metadata"]["name"]: d["spec"] for d in by_kind(docs, "PodDisruptionBudget")}
        for name in [*targets, "dagfleet-pgbouncer"]:
            assert budgets[name]["maxUnavailable"] >= 1, name
            labels = one(docs, "Deployment", name)["spec"]["selector"]["matchLabels"]
            assert budgets[name]["selector"]["matchLabels"] == labels


class TestPgBouncer:
    def test_off_by_default(self) -> None:
        docs = render_chart()
        assert not [d for d in docs if d["metadata"]["name"] == "dagfleet-pgbouncer"]
        scheduler = container(one(docs, "Deployment", "dagfleet-scheduler"), "scheduler")
        assert env_of(scheduler)[URL_KEY] == "cat /var/run/secrets/airflow/sql-alchemy-conn"

    def test_every_airflow_container_connects_through_pgbouncer_except_migrations_and_cleanup(
        self, tmp_path: Path
    ) -> None:
        docs = render_chart({**CELERY, **PGBOUNCER, "databaseCleanup": {"enabled": True}})
        url_file = tmp_path / "url"
        url_file.write_text("postgresql+psycopg2://air:p%40ss@db.example.com:5432/airflow?sslmode=require\n")
        pooled, direct = set(), set()
        for workload in chart.workloads(docs):
            for c in chart.containers(workload):
                env = env_of(c)
                if URL_KEY not in env:
                    continue
                url = run_like_airflow(env[URL_KEY], url_file)
                where = f"{workload['metadata']['name']}/{c['name']}"
                if PGBOUNCER_ADDRESS in url:
                    assert url == f"postgresql+psycopg2://air:p%40ss@{PGBOUNCER_ADDRESS}/airflow"
                    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] == (
                        "dagfleet.service.pgbouncer.ASYNCPG_CONNECT_ARGS"
                    )
                    result_backend = run_like_airflow(env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"], url_file)
                    assert result_backend == f"db+{url}"
                    pooled.add(where)
                else:
                    assert url == url_file.read_text().strip()
                    direct.add(where)
        assert direct == {
            "dagfleet-migrate/wait-for-database",
            "dagfleet-migrate/migrate",
            "dagfleet-database-cleanup/database-cleanup",
        }
        components = {"api-server", "scheduler", "dag-processor", "triggerer", "worker"}
        assert {f"dagfleet-{c}/{c}" for c in components} <= pooled

    def test_pgbouncer_pod_writes_its_config_from_the_database_secret(self) -> None:
        values = {**MINIMAL, **PGBOUNCER}
        values["pgbouncer"] = {**PGBOUNCER["pgbouncer"], "maxDbConnections": 80}
        docs = render_chart(values)
        deployment = one(docs, "Deployment", "dagfleet-pgbouncer")
        init = container(deployment, "pgbouncer-config")
        assert init["command"][:3] == ["python", "-m", "dagfleet.service.pgbouncer"]
        assert init["command"][3:6] == ["/var/run/secrets/airflow/sql-alchemy-conn", "/etc/pgbouncer-generated", "6543"]
        assert "max_db_connections=80" in init["command"]
        main = container(deployment, "pgbouncer")
        assert main["image"] == "pgbouncer:1.18.0"
        assert main["command"] == ["pgbouncer", "/etc/pgbouncer-generated/pgbouncer.ini"]
        spec = pod_spec(deployment)
        assert spec["automountServiceAccountToken"] is False
        (url,) = [v for v in spec["volumes"] if v["name"] == "database-url"]
        assert url["secret"]["secretName"] == "dagfleet-postgresql"
        service = one(docs, "Service", "dagfleet-pgbouncer")
        assert service["spec"]["ports"][0]["port"] == 6543


class TestCleanupJobs:
    def test_database_cleanup(self) -> None:
        values = {**MINIMAL, "databaseCleanup": {"enabled": True, "retentionDays": 30, "skipArchive": True}}
        docs = render_chart(values)
        cron = one(docs, "CronJob", "dagfleet-database-cleanup")
        assert cron["spec"]["schedule"] == "0 3 * * *"
        assert cron["spec"]["concurrencyPolicy"] == "Forbid"
        spec = pod_spec(cron)
        assert spec["serviceAccountName"] == "dagfleet-database-cleanup"
        assert spec["automountServiceAccountToken"] is False
        assert one(docs, "ServiceAccount", "dagfleet-database-cleanup")["automountServiceAccountToken"] is False
        (main,) = spec["containers"]
        assert main["command"][:5] == ["dumb-init", "--", "/entrypoint", "bash", "-c"]
        assert "airflow db clean" in main["command"][5]
        assert "-30 days" in main["command"][5]
        assert main["command"][5].endswith("--yes --skip-archive")
        assert main["resources"]["limits"]["memory"] == "1Gi"

    def test_pod_cleanup_role_lists_and_deletes_pods_only(self) -> None:
        docs = render_chart({**MINIMAL, "executor": "KubernetesExecutor", "cleanup": {"enabled": True}})
        role = one(docs, "Role", "dagfleet-cleanup")
        assert role["metadata"]["namespace"] == "dagfleet"
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]}]
        binding = one(docs, "RoleBinding", "dagfleet-cleanup")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dagfleet-cleanup", "namespace": "dagfleet"}]
        cron = one(docs, "CronJob", "dagfleet-cleanup")
        spec = pod_spec(cron)
        assert spec["serviceAccountName"] == "dagfleet-cleanup"
        assert spec["automountServiceAccountToken"] is True
        (main,) = spec["containers"]
        assert main["command"] == [
            "airflow", "kubernetes", "cleanup-pods", "--namespace", "dagfleet",
            "--min-completed-minutes", "60", "--min-pending-minutes", "30",
        ]  # fmt: skip
        assert URL_KEY not in env_of(main)  # it needs the Kubernetes API, not the database

    def test_off_by_default(self) -> None:
        assert not by_kind(render_chart({**MINIMAL, "executor": "KubernetesExecutor"}), "CronJob")


class TestGlobalPlacement:
    def test_every_pod_takes_the_defaults_unless_it_sets_its_own(self) -> None:
        docs = render_scenario("fleet-keda")
        for workload in chart.workloads(docs):
            spec = pod_spec(workload)
            name = workload["metadata"]["name"]
            expected = {"pool": "scheduler"} if name == "dagfleet-scheduler" else {"pool": "airflow"}
            assert spec.get("nodeSelector") == expected, name
            assert spec["tolerations"][0]["key"] == "dedicated", name
            (spread,) = spec["topologySpreadConstraints"]
            component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
            assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component, name
        assert any(w["kind"] == "CronJob" for w in chart.workloads(docs))

    def test_own_constraint_is_left_alone(self) -> None:
        own = [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}]
        values = {
            **MINIMAL,
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "host", "whenUnsatisfiable": "ScheduleAnyway"}],
            "scheduler": {"topologySpreadConstraints": own},
        }
        docs = render_chart(values)
        assert pod_spec(one(docs, "Deployment", "dagfleet-scheduler"))["topologySpreadConstraints"] == own


def test_refusals_name_the_fix() -> None:
    with pytest.raises(HelmFailedError, match=r"pgbouncer\.image\.repository"):
        render_chart({**MINIMAL, "pgbouncer": {"enabled": True}})
