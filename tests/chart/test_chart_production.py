"""Issue 17, the chart a production team can adopt: first contact, identity, extension points,
placement, task logs, metrics, Airflow settings precedence, and upgrade behaviours as render
diffs (two renders, one value changed)."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import jmespath
import pytest
import yaml

from support.chart import (
    by_kind,
    container,
    containers,
    env_of,
    one,
    pod_spec,
    pod_templates,
    render_chart,
    render_install,
    render_scenario,
)
from support.paths import REPO

pytestmark = pytest.mark.helm

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
COMPONENTS = {
    "api-server": "apiServer",
    "scheduler": "scheduler",
    "dag-processor": "dagProcessor",
    "triggerer": "triggerer",
}
KE = {"executor": "KubernetesExecutor"}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].removeprefix("dagfleet-"): d for d in by_kind(docs, "Deployment")}


def worker_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (template,) = list(pod_templates(docs))
    return yaml.safe_load(template)


def migration_job(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (job,) = by_kind(docs, "Job")
    return job


def helm_test_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (pod,) = by_kind(docs, "Pod")
    return pod


def annotations(doc: dict[str, Any]) -> dict[str, str]:
    return doc["spec"]["template"]["metadata"].get("annotations") or {}


def cfg(docs: list[dict[str, Any]]) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(one(docs, "ConfigMap", "dagfleet-airflow-config")["data"]["airflow.cfg"])
    return parser


class TestFirstContact:
    """`helm template dagfleet ./chart` / `helm install` with no values at all."""

    def test_no_values_runs_the_reference_config_api(self) -> None:
        docs = render_chart(minimal=False)
        api = one(docs, "Deployment", "dagfleet-config-api")
        assert "--file" not in container(api, "config-api")["command"]  # the image's example workflows
        env = env_of(container(deployments(docs)["scheduler"], "scheduler"))
        assert env["DAGFLEET_API_URL"] == "http://dagfleet-config-api.dagfleet.svc:8000"
        one(docs, "Service", "dagfleet-config-api")

    def test_notes_say_so(self) -> None:
        _, notes = render_install(minimal=False)
        assert "No workflow source was given" in notes
        assert "the example workflows embedded in the image" in notes

    def test_any_source_turns_it_off(self) -> None:
        for values in ({"configApi": {"url": "https://config.example.com"}}, {"staticWorkflows": ["a"]}):
            names = {d["metadata"]["name"] for d in render_chart(values, minimal=False)}
            assert "dagfleet-config-api" not in names, values
        notes = render_install({"staticWorkflows": ["a"]}, minimal=False)[1]
        assert "No workflow source was given" not in notes


class TestServiceAccounts:
    def test_one_per_component_and_task_pods(self) -> None:
        docs = render_chart(KE)
        accounts = {sa["metadata"]["name"]: sa for sa in by_kind(docs, "ServiceAccount")}
        assert set(accounts) == {f"dagfleet-{c}" for c in [*COMPONENTS, "worker"]}
        for component, deploy in deployments(docs).items():
            if component in COMPONENTS:
                assert pod_spec(deploy)["serviceAccountName"] == f"dagfleet-{component}"
        assert worker_pod(docs)["spec"]["serviceAccountName"] == "dagfleet-worker"

    def test_no_task_pod_account_with_local_executor(self) -> None:
        assert "dagfleet-worker" not in {sa["metadata"]["name"] for sa in by_kind(render_chart(), "ServiceAccount")}

    @pytest.mark.parametrize(
        ("executor", "expected"),
        [
            ("LocalExecutor", {"api-server": False, "scheduler": True, "dag-processor": False, "triggerer": True}),
            (
                "KubernetesExecutor",
                {"api-server": True, "scheduler": True, "dag-processor": False, "triggerer": True, "worker": True},
            ),
        ],
    )
    def test_token_only_where_the_kubernetes_api_is_called(self, executor: str, expected: dict[str, bool]) -> None:
        docs = render_chart({"executor": executor})
        mounted = {
            c: pod_spec(d)["automountServiceAccountToken"] for c, d in deployments(docs).items() if c in COMPONENTS
        }
        if executor == "KubernetesExecutor":
            mounted["worker"] = worker_pod(docs)["spec"]["automountServiceAccountToken"]
        assert mounted == expected
        accounts = {sa["metadata"]["name"].removeprefix("dagfleet-"): sa for sa in by_kind(docs, "ServiceAccount")}
        assert {c: sa["automountServiceAccountToken"] for c, sa in accounts.items()} == expected
        launchers = {"scheduler", "triggerer"} | ({"worker"} if executor == "KubernetesExecutor" else set())
        for binding in by_kind(docs, "RoleBinding"):
            bound = {s["name"].removeprefix("dagfleet-") for s in binding["subjects"]}
            if binding["metadata"]["name"] == "dagfleet-pod-launcher":
                assert bound == launchers
            else:
                assert binding["metadata"]["name"] == "dagfleet-pod-log-reader"
                assert bound == {"api-server"}

    def test_api_server_reads_task_pod_logs_with_kubernetes_executor_only(self) -> None:
        assert "dagfleet-pod-log-reader" not in {r["metadata"]["name"] for r in by_kind(render_chart(), "Role")}
        docs = render_chart(KE)
        role = one(docs, "Role", "dagfleet-pod-log-reader")
        assert role["metadata"]["namespace"] == "dagfleet"
        assert {tuple(r["resources"]): r["verbs"] for r in role["rules"]} == {
            ("pods",): ["get", "list"],
            ("pods/log",): ["get"],
        }
        off = render_chart({**KE, "apiServer": {"serviceAccount": {"automountServiceAccountToken": False}}})
        assert pod_spec(deployments(off)["api-server"])["automountServiceAccountToken"] is False

    def test_annotations_land_on_one_account(self) -> None:
        irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/scheduler"}
        docs = render_chart({"scheduler": {"serviceAccount": {"annotations": irsa}}})
        accounts = {sa["metadata"]["name"]: sa for sa in by_kind(docs, "ServiceAccount")}
        assert accounts["dagfleet-scheduler"]["metadata"]["annotations"] == irsa
        assert "annotations" not in accounts["dagfleet-api-server"]["metadata"]

    def test_token_switch(self) -> None:
        docs = render_chart({"apiServer": {"serviceAccount": {"automountServiceAccountToken": True}}})
        deploy = deployments(docs)["api-server"]
        assert pod_spec(deploy)["automountServiceAccountToken"] is True
        assert "checkov.io/skip-sa-token" in deploy["metadata"]["annotations"]
        assert "checkov.io/skip-sa-token" not in deployments(docs)["dag-processor"]["metadata"]["annotations"]

    def test_non_launcher_without_account_uses_default_and_is_not_bound(self) -> None:
        docs = render_chart({"dagProcessor": {"serviceAccount": {"create": False}}})
        spec = pod_spec(deployments(docs)["dag-processor"])
        assert spec["serviceAccountName"] == "default"
        assert spec["automountServiceAccountToken"] is False
        for binding in by_kind(docs, "RoleBinding"):
            assert "default" not in {s["name"] for s in binding["subjects"]}


EXTRA_VOLUME = {"name": "ca", "configMap": {"name": "corporate-ca"}}
EXTRA_MOUNT = {"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}
ENV_FROM = {"secretRef": {"name": "airflow-connections"}}
SIDECAR = {"name": "shipper", "image": "shipper:1"}
INIT = {"name": "prepare", "image": "prepare:1"}
GLOBAL = {
    "airflow": {
        "extraVolumes": [EXTRA_VOLUME],
        "extraVolumeMounts": [EXTRA_MOUNT],
        "extraEnvFrom": [ENV_FROM],
        "extraContainers": [SIDECAR],
        "extraInitContainers": [INIT],
    }
}


class TestExtensionPoints:
    @pytest.mark.parametrize("component", COMPONENTS)
    def test_global_ones_reach_every_component(self, component: str) -> None:
        deploy = deployments(render_chart(GLOBAL))[component]
        spec = pod_spec(deploy)
        assert EXTRA_VOLUME in spec["volumes"]
        main = container(deploy, component)
        assert EXTRA_MOUNT in main["volumeMounts"]
        assert main["envFrom"] == [ENV_FROM]
        assert jmespath.search("containers[?name=='shipper'] | [0]", spec) == SIDECAR
        assert spec["initContainers"][0] == INIT  # before the chart's own init containers
        assert "checkov.io/skip-env-secret" in deploy["metadata"]["annotations"]

    @pytest.mark.parametrize(("component", "key"), COMPONENTS.items())
    def test_component_ones_come_after_the_global_ones(self, component: str, key: str) -> None:
        own_volume = {"name": "own", "emptyDir": {}}
        own_mount = {"name": "own", "mountPath": "/own"}
        own_env = {"configMapRef": {"name": "own"}}
        values = {
            **GLOBAL,
            key: {
                "extraVolumes": [own_volume],
                "extraVolumeMounts": [own_mount],
                "extraEnvFrom": [own_env],
                "extraContainers": [{"name": "own-sidecar", "image": "own:1"}],
                "extraInitContainers": [{"name": "own-init", "image": "own:1"}],
            },
        }
        docs = render_chart(values)
        deploy = deployments(docs)[component]
        spec = pod_spec(deploy)
        assert spec["volumes"][-2:] == [EXTRA_VOLUME, own_volume]
        assert container(deploy, component)["volumeMounts"][-2:] == [EXTRA_MOUNT, own_mount]
        assert container(deploy, component)["envFrom"] == [ENV_FROM, own_env]
        assert [c["name"] for c in spec["initContainers"][:2]] == ["prepare", "own-init"]
        assert [c["name"] for c in spec["containers"][:2]] == ["shipper", "own-sidecar"]
        # Only that component gets its own ones.
        others = [d for c, d in deployments(docs).items() if c in COMPONENTS and c != component]
        assert all(own_volume not in pod_spec(d)["volumes"] for d in others)

    def test_task_pods_get_volumes_and_env_but_no_global_containers(self) -> None:
        values = {**KE, **GLOBAL, "workers": {"extraEnvFrom": [{"configMapRef": {"name": "task"}}]}}
        pod = worker_pod(render_chart(values))
        assert EXTRA_VOLUME in pod["spec"]["volumes"]
        base = container(pod, "base")
        assert EXTRA_MOUNT in base["volumeMounts"]
        assert base["envFrom"] == [ENV_FROM, {"configMapRef": {"name": "task"}}]
        assert [c["name"] for c in containers(pod)] == ["base"]  # a task pod must end

    def test_task_pods_own_containers(self) -> None:
        sidecar = {"name": "proxy", "image": "proxy:1", "restartPolicy": "Always"}
        pod = worker_pod(render_chart({**KE, "workers": {"extraInitContainers": [sidecar]}}))
        assert pod["spec"]["initContainers"] == [sidecar]

    def test_migration_job_gets_volumes_and_env(self) -> None:
        job = migration_job(render_chart(GLOBAL))
        assert EXTRA_VOLUME in pod_spec(job)["volumes"]
        for c in containers(job):
            assert EXTRA_MOUNT in c["volumeMounts"]
            assert c["envFrom"] == [ENV_FROM]
        assert [c["name"] for c in containers(job)] == ["wait-for-database", "migrate"]


PLACEMENT = {
    "nodeSelector": {"pool": "airflow"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "airflow", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway"}
    ],
    "priorityClassName": "high",
}
PLACEMENT_TARGETS = [
    *[(key, lambda docs, c=c: pod_spec(deployments(docs)[c])) for c, key in COMPONENTS.items()],
    ("workers", lambda docs: worker_pod(docs)["spec"]),
    ("migrations", lambda docs: pod_spec(migration_job(docs))),
    ("helmTest", lambda docs: pod_spec(helm_test_pod(docs))),
    ("postgresql", lambda docs: pod_spec(one(docs, "StatefulSet", "dagfleet-postgresql"))),
    ("referenceConfigApi", lambda docs: pod_spec(deployments(docs)["config-api"])),
    ("metrics", lambda docs: pod_spec(deployments(docs)["statsd"])),
]


class TestPlacement:
    @pytest.mark.parametrize(("key", "spec_of"), PLACEMENT_TARGETS, ids=[k for k, _ in PLACEMENT_TARGETS])
    def test_every_pod(self, key: str, spec_of: Any) -> None:
        values: dict[str, Any] = {
            **KE,
            "configApi": {"url": ""},
            "referenceConfigApi": {"enabled": True},
            "metrics": {"enabled": True},
            key: dict(PLACEMENT),
        }
        if key == "metrics":
            values["metrics"] = {"enabled": True, **PLACEMENT}
        if key == "referenceConfigApi":
            values["referenceConfigApi"] = {"enabled": True, **PLACEMENT}
        spec = spec_of(render_chart(values))
        for field, value in PLACEMENT.items():
            assert spec[field] == value, field

    def test_nothing_by_default(self) -> None:
        docs = render_chart(KE)
        specs = [pod_spec(d) for d in by_kind(docs, "Deployment")] + [worker_pod(docs)["spec"]]
        for spec in specs:
            assert not {"nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName"} & (
                spec.keys()
            )

    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ({}, 600),  # LocalExecutor: running tasks get time to finish during a rollout
            (KE, 60),
            ({"scheduler": {"terminationGracePeriodSeconds": 0}}, 0),
            ({"scheduler": {"terminationGracePeriodSeconds": 1800}}, 1800),
        ],
    )
    def test_scheduler_grace_period(self, values: dict[str, Any], expected: int) -> None:
        assert pod_spec(deployments(render_chart(values))["scheduler"])["terminationGracePeriodSeconds"] == expected

    def test_grace_period_per_component_and_task_pods(self) -> None:
        values = {**KE, **{key: {"terminationGracePeriodSeconds": 30 + i} for i, key in enumerate(COMPONENTS.values())}}
        values["workers"] = {"terminationGracePeriodSeconds": 900}
        docs = render_chart(values)
        for i, component in enumerate(COMPONENTS):
            assert pod_spec(deployments(docs)[component])["terminationGracePeriodSeconds"] == 30 + i
        assert worker_pod(docs)["spec"]["terminationGracePeriodSeconds"] == 900


class TestTaskLogs:
    def test_empty_dir_by_default(self) -> None:
        docs = render_chart(KE)
        assert not by_kind(docs, "PersistentVolumeClaim")
        logs = jmespath.search("spec.volumes[?name=='logs'] | [0]", worker_pod(docs))
        assert logs == {"name": "logs", "emptyDir": {}}

    def test_one_claim_shared_by_components_and_task_pods(self) -> None:
        values = {**KE, "logs": {"persistence": {"enabled": True, "size": "20Gi", "storageClassName": "rwx"}}}
        docs = render_chart(values)
        (claim,) = by_kind(docs, "PersistentVolumeClaim")
        assert claim["metadata"]["name"] == "dagfleet-logs"
        assert claim["spec"] == {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "rwx",
            "resources": {"requests": {"storage": "20Gi"}},
        }
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        pods = [pod_spec(d) for c, d in deployments(docs).items() if c in COMPONENTS] + [worker_pod(docs)["spec"]]
        for spec in pods:
            logs = jmespath.search("volumes[?name=='logs'] | [0]", spec)
            assert logs == {"name": "logs", "persistentVolumeClaim": {"claimName": "dagfleet-logs"}}
        base = container(worker_pod(docs), "base")
        assert {"name": "logs", "mountPath": "/opt/airflow/logs"} in base["volumeMounts"]

    def test_existing_claim(self) -> None:
        docs = render_chart({"logs": {"persistence": {"enabled": True, "existingClaim": "airflow-logs"}}})
        assert not by_kind(docs, "PersistentVolumeClaim")
        spec = pod_spec(deployments(docs)["scheduler"])
        assert jmespath.search("volumes[?name=='logs'].persistentVolumeClaim.claimName | [0]", spec) == "airflow-logs"


class TestMetrics:
    def test_off_by_default(self) -> None:
        docs = render_chart(KE)
        assert "statsd" not in deployments(docs)
        assert not [k for k in env_of(container(deployments(docs)["scheduler"], "scheduler")) if "METRICS" in k]

    def test_exporter_and_airflow_wiring(self) -> None:
        mappings = [{"match": "airflow.dag.*.*.duration", "name": "airflow_task_duration"}]
        docs = render_chart({**KE, "metrics": {"enabled": True, "mappings": mappings, "prefix": "af"}})
        exporter = deployments(docs)["statsd"]
        main = container(exporter, "statsd-exporter")
        assert main["image"] == "prom/statsd-exporter:v0.28.0"
        assert "--statsd.mapping-config=/etc/statsd-exporter/mappings.yml" in main["args"]
        assert yaml.safe_load(one(docs, "ConfigMap", "dagfleet-statsd")["data"]["mappings.yml"]) == {
            "mappings": mappings
        }
        service = one(docs, "Service", "dagfleet-statsd")
        assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {
            (9125, "UDP"),
            (9125, "TCP"),
            (9102, "TCP"),
        }
        expected = {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "dagfleet-statsd.dagfleet.svc",
            "AIRFLOW__METRICS__STATSD_PORT": "9125",
            "AIRFLOW__METRICS__STATSD_PREFIX": "af",
        }
        targets = [container(deployments(docs)[c], c) for c in COMPONENTS] + [container(worker_pod(docs), "base")]
        for c in targets:
            assert expected.items() <= env_of(c).items(), c["name"]
        assert not by_kind(docs, "ServiceMonitor")

    def test_service_monitor(self) -> None:
        values = {"metrics": {"enabled": True, "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}}
        (monitor,) = by_kind(render_chart(values), "ServiceMonitor")
        assert monitor["metadata"]["labels"]["release"] == "prom"
        assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
        assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "statsd"

    def test_network_policy_lets_statsd_in(self) -> None:
        docs = render_chart({"metrics": {"enabled": True}, "networkPolicy": {"enabled": True}})
        policy = one(docs, "NetworkPolicy", "dagfleet-statsd")
        ports = jmespath.search("spec.ingress[].ports[].[port, protocol]", policy)
        assert [9125, "UDP"] in ports and [9102, "TCP"] in ports


class TestAirflowSettings:
    def test_user_wins_over_chart_defaults(self) -> None:
        """A chart default also set in airflow.config: the env var is left out, airflow.cfg decides."""
        config = {"core": {"load_examples": "True", "hostname_callable": "socket.getfqdn"}}
        docs = render_chart({"airflow": {"config": config}})
        env = env_of(container(deployments(docs)["scheduler"], "scheduler"))
        assert "AIRFLOW__CORE__LOAD_EXAMPLES" not in env
        assert "AIRFLOW__CORE__HOSTNAME_CALLABLE" not in env
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # untouched keys stay
        assert cfg(docs)["core"]["hostname_callable"] == "socket.getfqdn"

    def test_chart_defaults_without_user_config(self) -> None:
        env = env_of(container(deployments(render_chart())["scheduler"], "scheduler"))
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "airflow.utils.net.get_host_ip_address"

    def test_kubernetes_executor_delete_pods_can_come_from_config(self) -> None:
        docs = render_chart({**KE, "airflow": {"config": {"kubernetes_executor": {"delete_worker_pods": "False"}}}})
        env = env_of(container(deployments(docs)["scheduler"], "scheduler"))
        assert "AIRFLOW__KUBERNETES_EXECUTOR__DELETE_WORKER_PODS" not in env
        assert env["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"].endswith("pod_template_file.yaml")


def checksums(doc: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in annotations(doc).items() if k.startswith("checksum/")}


def pod_checksums(values: dict[str, Any]) -> dict[str, dict[str, str]]:
    docs = render_chart(values)
    found = {name: checksums(d) for name, d in deployments(docs).items()}
    found["postgresql"] = checksums(one(docs, "StatefulSet", "dagfleet-postgresql"))
    return found


def rolled(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The workloads whose pod annotations differ between the two renders."""
    a, b = pod_checksums(before), pod_checksums(after)
    return {name for name in a if a[name] != b[name]}


class TestUpgradeDiffs:
    """Two renders, one value changed: which pods roll."""

    def test_same_values_roll_nothing(self) -> None:
        """Generated secrets are hashed from their inputs, so `helm template` twice gives the same pods."""
        values = {"configApi": {"url": "https://config.example.com", "apiKey": "k1"}}
        assert rolled(values, values) == set()

    def test_config_api_key_rolls_only_the_syncing_components(self) -> None:
        before = {"configApi": {"url": "https://config.example.com", "apiKey": "k1"}}
        after = {"configApi": {"url": "https://config.example.com", "apiKey": "k2"}}
        assert rolled(before, after) == {"scheduler", "dag-processor"}

    def test_reference_config_api_key_rolls_its_server_not_postgresql(self) -> None:
        before = {"configApi": {"url": "", "apiKey": "k1"}, "referenceConfigApi": {"enabled": True}}
        after = {"configApi": {"url": "", "apiKey": "k2"}, "referenceConfigApi": {"enabled": True}}
        assert rolled(before, after) == {"scheduler", "dag-processor", "config-api"}

    def test_airflow_config_rolls_the_airflow_components(self) -> None:
        after = {"airflow": {"config": {"core": {"parallelism": 8}}}}
        assert rolled({}, after) == set(COMPONENTS)

    def test_database_user_rolls_postgresql_and_airflow(self) -> None:
        assert rolled({}, {"postgresql": {"username": "other"}}) == {*COMPONENTS, "postgresql"}

    def test_existing_secrets_are_stable_under_helm_template(self) -> None:
        """Bring-your-own Secrets: tracked by resourceVersion during `helm upgrade` (lookup); a render
        without a cluster sees nothing, so the checksum stays put (documented in docs/helm.md)."""
        values = {"airflow": {"existingSecret": "keys"}, "configApi": {"url": "https://c", "existingSecret": "k"}}
        assert rolled(values, values) == set()
        renamed = {"airflow": {"existingSecret": "keys"}, "configApi": {"url": "https://c", "existingSecret": "k2"}}
        assert rolled(values, renamed) == {"scheduler", "dag-processor"}

    def test_pod_template_change_rolls_the_scheduler(self) -> None:
        before = {**KE, "workers": {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}}
        after = {**KE, "workers": {"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}}
        assert rolled(before, after) == {"scheduler"}

    def test_migration_job_name_is_stable_without_hooks(self) -> None:
        values = {"migrations": {"useHelmHooks": False}}
        first = migration_job(render_chart(values))["metadata"]["name"]
        assert first == migration_job(render_chart(values))["metadata"]["name"]
        assert first.startswith("dagfleet-migrate-") and not first.endswith("-1")
        new_image = migration_job(render_chart({**values, "image": {"tag": "0.2.0"}}))["metadata"]["name"]
        assert new_image != first  # a new Job (a Job's pod template is immutable), which runs once
        annotated = migration_job(
            render_chart(
                {"migrations": {"useHelmHooks": False, "jobAnnotations": {"argocd.argoproj.io/sync-wave": "-1"}}}
            )
        )
        assert annotated["metadata"]["name"] == first  # Job annotations do not make a new Job
        assert annotated["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"


class TestProductionScenario:
    def test_uses_every_production_feature(self) -> None:
        docs = render_scenario("production")
        kinds = {d["kind"] for d in docs}
        assert {"PersistentVolumeClaim", "ServiceMonitor", "Ingress", "NetworkPolicy"} <= kinds
        job = migration_job(docs)
        assert "ttlSecondsAfterFinished" not in job["spec"]
        assert job["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
        scheduler = deployments(docs)["scheduler"]
        assert pod_spec(scheduler)["terminationGracePeriodSeconds"] == 120
        assert "log-shipper" in {c["name"] for c in containers(scheduler)}
        triggerer = pod_spec(deployments(docs)["triggerer"])
        assert triggerer["serviceAccountName"] == "dagfleet-triggerer-irsa"
        pod = worker_pod(docs)
        assert pod["spec"]["priorityClassName"] == "dagfleet-tasks"
        env = env_of(container(scheduler, "scheduler"))
        assert "AIRFLOW__CORE__HOSTNAME_CALLABLE" not in env  # airflow.config wins


class TestMetricsReachAirflow:
    """The chart's [metrics] settings, given to real Airflow (the project's .venv), send StatsD."""

    def test_airflow_sends_statsd_with_the_chart_settings(self, tmp_path: Path) -> None:
        docs = render_chart({"metrics": {"enabled": True, "prefix": "dagfleet_ci"}})
        env = {k: str(v) for k, v in env_of(container(deployments(docs)["scheduler"], "scheduler")).items()}
        metrics = {k: v for k, v in env.items() if k.startswith("AIRFLOW__METRICS__")}
        assert metrics["AIRFLOW__METRICS__STATSD_HOST"] == "dagfleet-statsd.dagfleet.svc"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
            server.bind(("127.0.0.1", 0))
            server.settimeout(120)  # a safety bound, not a timing assertion
            # Only where the exporter listens differs: loopback instead of the in-cluster Service.
            metrics["AIRFLOW__METRICS__STATSD_HOST"] = "127.0.0.1"
            metrics["AIRFLOW__METRICS__STATSD_PORT"] = str(server.getsockname()[1])
            run_env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "AIRFLOW_HOME": str(tmp_path),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                **metrics,
            }
            code = "from airflow.stats import Stats\nStats.incr('chart_probe')"
            result = subprocess.run(
                [str(VENV_PYTHON), "-c", code], env=run_env, capture_output=True, text=True, timeout=300, check=False
            )
            assert result.returncode == 0, result.stderr[-2000:]
            received: list[str] = []
            while "dagfleet_ci.chart_probe:1|c" not in received:  # Airflow sends its own metrics too
                received += server.recv(65536).decode().splitlines()
        assert all(line.startswith("dagfleet_ci.") for line in received), received
