"""The Airflow components: api-server (+ Service, Ingress), scheduler, dag-processor, triggerer."""

from __future__ import annotations

import configparser

import jmespath
import pytest

from support.chart import container, containers, env_of, one, pod_spec, render_chart

pytestmark = pytest.mark.helm

COMPONENTS = ["api-server", "scheduler", "dag-processor", "triggerer"]
# Components that parse DAGs and so sync them; the api-server and triggerer read serialized DAGs.
SYNCING = {"scheduler", "dag-processor"}


def deployment(component: str, values: dict | None = None) -> dict:
    docs = render_chart(values, show_only=[f"templates/{component}/deployment.yaml"])
    assert len(docs) == 1
    return docs[0]


@pytest.mark.parametrize("component", COMPONENTS)
class TestEveryComponent:
    def test_starts_through_the_entrypoint(self, component: str) -> None:
        """Syncing components: no command, the image's `dagfleet run --` syncs, then execs the component.
        The others go straight to the official /entrypoint (no sync)."""
        main = container(deployment(component), component)
        if component in SYNCING:
            assert "command" not in main
        else:
            assert main["command"] == ["dumb-init", "--", "/entrypoint"]
        assert main["args"] == [component]

    def test_waits_for_migrations(self, component: str) -> None:
        init = container(deployment(component), "wait-for-migrations")
        assert init["command"][:3] == ["airflow", "db", "check-migrations"]
        assert "--migration-wait-timeout=300" in init["command"]

    def test_sync_settings_and_dags_folder(self, component: str) -> None:
        doc = deployment(component, {"configApi": {"url": "https://cfg.example.com/", "apiKey": "k"}})
        env = env_of(container(doc, component))
        if component not in SYNCING:
            # The config API key only reaches components that sync; the api-server gets only where to
            # read the Fleet page's status (the dag-processor's sidecar).
            allowed = {"DAGFLEET_STATUS_URL"} if component == "api-server" else set()
            assert {k for k in env if k.startswith("DAGFLEET_")} == allowed
            assert "config-api-key" not in {v["name"] for v in pod_spec(doc)["volumes"]}
            assert "checksum/config-api-secret" not in doc["spec"]["template"]["metadata"]["annotations"]
            assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
            return
        assert env["DAGFLEET_API_URL"] == "https://cfg.example.com"
        assert env["DAGFLEET_DAGS_FOLDER"] == env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
        assert env["DAGFLEET_API_KEY_FILE"] == "/var/run/secrets/dagfleet/api-key"
        assert "DAGFLEET_API_KEY" not in env
        mounts = {m["mountPath"]: m["name"] for m in container(doc, component)["volumeMounts"]}
        assert mounts["/opt/airflow/dags"] == "dags"
        assert mounts["/var/run/secrets/dagfleet"] == "config-api-key"
        volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
        assert volumes["dags"] == {"name": "dags", "emptyDir": {}}
        assert volumes["config-api-key"]["secret"]["items"] == [{"key": "api-key", "path": "api-key"}]

    def test_secrets_come_from_files(self, component: str) -> None:
        env = env_of(container(deployment(component), component))
        for name in (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API__SECRET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
        ):
            assert name not in env
            assert env[f"{name}_CMD"].startswith("cat /var/run/secrets/airflow/")
        assert not any("valueFrom" in str(v) for v in env.values())

    def test_execution_api_points_at_the_api_server_service(self, component: str) -> None:
        env = env_of(container(deployment(component), component))
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://dagfleet-api-server.dagfleet.svc:8080/execution/"
        )

    def test_has_all_three_probes(self, component: str) -> None:
        main = container(deployment(component), component)
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= main.keys()

    def test_resources_from_values(self, component: str) -> None:
        key = {"api-server": "apiServer", "dag-processor": "dagProcessor"}.get(component, component)
        limits = {"cpu": "3", "memory": "5Gi"}
        doc = deployment(component, {key: {"resources": {"limits": limits}, "replicas": 3}})
        assert container(doc, component)["resources"]["limits"] == limits
        assert doc["spec"]["replicas"] == 3

    def test_scheduling_from_values(self, component: str) -> None:
        key = {"api-server": "apiServer", "dag-processor": "dagProcessor"}.get(component, component)
        tolerations = [{"key": "dedicated", "operator": "Equal", "value": "airflow", "effect": "NoSchedule"}]
        doc = deployment(
            component,
            {key: {"nodeSelector": {"pool": "airflow"}, "tolerations": tolerations, "podAnnotations": {"a": "b"}}},
        )
        assert pod_spec(doc)["nodeSelector"] == {"pool": "airflow"}
        assert pod_spec(doc)["tolerations"] == tolerations
        assert doc["spec"]["template"]["metadata"]["annotations"]["a"] == "b"

    def test_labels_and_immutable_selector(self, component: str) -> None:
        doc = deployment(component)
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector == {
            "app.kubernetes.io/name": "dagfleet",
            "app.kubernetes.io/instance": "dagfleet",
            "app.kubernetes.io/component": component,
        }
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "dagfleet-0.1.0"
        assert labels["app.kubernetes.io/version"] == "0.1.0"

    def test_checksums_roll_pods_when_config_or_secrets_change(self, component: str) -> None:
        def checksums(values: dict) -> dict:
            annotations = deployment(component, values)["spec"]["template"]["metadata"]["annotations"]
            return {k: v for k, v in annotations.items() if k.startswith("checksum/")}

        # Generated secrets are hashed from their inputs, not their random values: stable between renders.
        keyed = {"configApi": {"url": "https://config.example.com", "apiKey": "old"}}
        base = checksums(keyed)
        expected = {"checksum/airflow-config", "checksum/airflow-secret", "checksum/database-secret"}
        assert base.keys() == expected | ({"checksum/config-api-secret"} if component in SYNCING else set())
        assert checksums(keyed) == base
        changed = checksums({**keyed, "airflow": {"config": {"core": {"parallelism": 8}}}})
        assert {k for k in base if changed[k] != base[k]} == {"checksum/airflow-config"}
        new_key = checksums({"configApi": {"url": "https://config.example.com", "apiKey": "new"}})
        expected_diff = {"checksum/config-api-secret"} if component in SYNCING else set()
        assert {k for k in base if new_key[k] != base[k]} == expected_diff

    def test_image_from_values(self, component: str) -> None:
        doc = deployment(component, {"image": {"repository": "reg.example.com/dagfleet", "tag": "1.2.3"}})
        assert {c["image"] for c in containers(doc)} == {"reg.example.com/dagfleet:1.2.3"}
        digest = "sha256:" + "a" * 64
        doc = deployment(component, {"image": {"digest": digest}})
        assert {c["image"] for c in containers(doc)} == {f"dagfleet@{digest}"}


class TestWatchSidecar:
    @pytest.mark.parametrize(
        ("component", "executor", "expected"),
        [
            ("dag-processor", "LocalExecutor", True),
            ("dag-processor", "KubernetesExecutor", True),
            ("scheduler", "LocalExecutor", True),  # LocalExecutor runs the tasks: it needs the DAG files
            ("scheduler", "KubernetesExecutor", False),  # task pods sync for themselves
            ("api-server", "LocalExecutor", False),
            ("triggerer", "LocalExecutor", False),
        ],
    )
    def test_which_components_get_it(self, component: str, executor: str, expected: bool) -> None:
        doc = deployment(component, {"executor": executor})
        names = [c["name"] for c in pod_spec(doc).get("initContainers", [])]
        assert ("dag-sync" in names) is expected

    def test_is_a_native_sidecar_running_dagfleet_watch(self) -> None:
        doc = deployment("dag-processor", {"dagfleet": {"syncInterval": 15}})
        inits = pod_spec(doc)["initContainers"]
        assert [c["name"] for c in inits] == ["dag-sync", "wait-for-migrations"]  # syncs while waiting
        sidecar = inits[0]
        assert sidecar["restartPolicy"] == "Always"
        assert sidecar["command"] == ["dumb-init", "--", "dagfleet", "watch"]
        assert env_of(sidecar)["DAGFLEET_SYNC_INTERVAL"] == "15"
        assert {m["name"] for m in sidecar["volumeMounts"]} >= {"dags", "tmp"}
        assert not any(k.startswith("AIRFLOW__") for k in env_of(sidecar))  # it needs no Airflow settings

    def test_shares_the_dags_folder_with_the_component(self) -> None:
        doc = deployment("dag-processor")
        sidecar_dags = jmespath.search("volumeMounts[?name=='dags'].mountPath", container(doc, "dag-sync"))
        main_dags = jmespath.search("volumeMounts[?name=='dags'].mountPath", container(doc, "dag-processor"))
        assert sidecar_dags == main_dags == ["/opt/airflow/dags"]

    def test_can_be_disabled(self) -> None:
        doc = deployment("dag-processor", {"dagfleet": {"watch": {"enabled": False}}})
        assert [c["name"] for c in pod_spec(doc)["initContainers"]] == ["wait-for-migrations"]


class TestSyncSettings:
    def test_static_workflows_are_comma_separated(self) -> None:
        env = env_of(container(deployment("scheduler", {"staticWorkflows": ["a", "b.c", "d-e"]}), "scheduler"))
        assert env["DAGFLEET_STATIC_WORKFLOWS"] == "a,b.c,d-e"

    def test_static_only_has_no_url_and_no_key(self) -> None:
        values = {"configApi": {"url": ""}, "staticWorkflows": ["a"]}
        doc = deployment("scheduler", values)
        env = env_of(container(doc, "scheduler"))
        assert "DAGFLEET_API_URL" not in env
        assert "DAGFLEET_API_KEY_FILE" not in env
        assert "config-api-key" not in {v["name"] for v in pod_spec(doc)["volumes"]}

    def test_dagfleet_values_become_env(self) -> None:
        values = {
            "dagfleet": {
                "allowEmpty": True,
                "connectTimeout": 1.5,
                "readTimeout": 20,
                "retries": 7,
                "cacheUrl": "redis://redis:6379/1",
                "cacheTtl": 60,
                "parseTimeout": 2,
                "logLevel": "DEBUG",
            }
        }
        env = env_of(container(deployment("dag-processor", values), "dag-processor"))
        assert env["DAGFLEET_ALLOW_EMPTY"] == "true"
        assert env["DAGFLEET_CONNECT_TIMEOUT"] == "1.5"
        assert env["DAGFLEET_READ_TIMEOUT"] == "20"
        assert env["DAGFLEET_RETRIES"] == "7"
        assert env["DAGFLEET_CACHE_URL"] == "redis://redis:6379/1"
        assert env["DAGFLEET_CACHE_TTL"] == "60"
        assert env["DAGFLEET_PARSE_TIMEOUT"] == "2"
        assert env["DAGFLEET_LOG_LEVEL"] == "DEBUG"

    def test_existing_key_secret_and_key(self) -> None:
        values = {"configApi": {"existingSecret": "cfg", "existingSecretKey": "token"}}
        doc = deployment("scheduler", values)
        volume = jmespath.search("volumes[?name=='config-api-key'] | [0]", pod_spec(doc))
        assert volume["secret"]["secretName"] == "cfg"
        assert volume["secret"]["items"] == [{"key": "token", "path": "api-key"}]

    def test_airflow_config_becomes_airflow_cfg(self) -> None:
        docs = render_chart(
            {"airflow": {"config": {"core": {"parallelism": 8}, "logging": {"log_format": "%(message)s"}}}},
            show_only=["templates/airflow-config.yaml", "templates/scheduler/deployment.yaml"],
        )
        config = configparser.ConfigParser()
        config.read_string(one(docs, "ConfigMap", "dagfleet-airflow-config")["data"]["airflow.cfg"])
        assert config["core"]["parallelism"] == "8"
        assert config["logging"]["log_format"] == "%(message)s"  # %% in the file, % once parsed
        deploy = one(docs, "Deployment", "dagfleet-scheduler")
        for name in ("wait-for-migrations", "scheduler"):
            c = container(deploy, name)
            mount = jmespath.search("volumeMounts[?name=='airflow-config'] | [0]", c)
            assert env_of(c)["AIRFLOW_CONFIG"] == mount["mountPath"] + "/airflow.cfg"
            assert mount["readOnly"] is True
        volume = jmespath.search("volumes[?name=='airflow-config'] | [0]", pod_spec(deploy))
        assert volume["configMap"]["name"] == "dagfleet-airflow-config"

    def test_airflow_cfg_exists_even_without_settings(self) -> None:
        """The airflow CLI writes a default airflow.cfg when there is none: impossible on a read-only root."""
        (config_map,) = render_chart(show_only=["templates/airflow-config.yaml"])
        assert config_map["data"]["airflow.cfg"].startswith("#")

    def test_extra_env(self) -> None:
        extra = [{"name": "AIRFLOW__CORE__PARALLELISM", "value": "4"}]
        env = env_of(container(deployment("triggerer", {"airflow": {"extraEnv": extra}}), "triggerer"))
        assert env["AIRFLOW__CORE__PARALLELISM"] == "4"

    def test_kubernetes_pod_operator_namespace(self) -> None:
        env = env_of(container(deployment("scheduler", {"podNamespace": "jobs"}), "scheduler"))
        assert '"namespace":"jobs"' in env["AIRFLOW_CONN_KUBERNETES_DEFAULT"]
        assert '"in_cluster":true' in env["AIRFLOW_CONN_KUBERNETES_DEFAULT"]


class TestApiServerDeployment:
    def test_probes_hit_the_health_endpoint(self) -> None:
        main = container(deployment("api-server"), "api-server")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["httpGet"] == {"path": "/api/v2/monitor/health", "port": "http"}
        assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]

    def test_simple_auth_manager_writes_to_an_empty_dir(self) -> None:
        doc = deployment("api-server")
        env = env_of(container(doc, "api-server"))
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith("/opt/airflow/auth/")
        assert jmespath.search("volumes[?name=='auth'].emptyDir", pod_spec(doc)) == [{}]

    def test_base_url(self) -> None:
        env = env_of(
            container(deployment("api-server", {"apiServer": {"baseUrl": "https://af.example"}}), "api-server")
        )
        assert env["AIRFLOW__API__BASE_URL"] == "https://af.example"
        assert "AIRFLOW__API__BASE_URL" not in env_of(container(deployment("api-server"), "api-server"))


class TestApiServerService:
    def test_service(self) -> None:
        (svc,) = render_chart({"apiServer": {"service": {"port": 80}}}, show_only=["templates/api-server/service.yaml"])
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "api-server"


class TestApiServerIngress:
    def test_off_by_default(self) -> None:
        docs = render_chart()
        assert not [d for d in docs if d["kind"] == "Ingress"]

    def test_hosts_paths_tls(self) -> None:
        values = {
            "apiServer": {
                "ingress": {
                    "enabled": True,
                    "className": "nginx",
                    "hosts": [{"host": "af.example.com"}, {"host": "b.example.com", "paths": [{"path": "/airflow"}]}],
                    "tls": [{"secretName": "tls", "hosts": ["af.example.com"]}],
                }
            }
        }
        (ingress,) = render_chart(values, show_only=["templates/api-server/ingress.yaml"])
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"] == [{"secretName": "tls", "hosts": ["af.example.com"]}]
        assert jmespath.search("spec.rules[].host", ingress) == ["af.example.com", "b.example.com"]
        assert jmespath.search("spec.rules[].http.paths[].[path, pathType]", ingress) == [
            ["/", "Prefix"],
            ["/airflow", "Prefix"],
        ]
        backend = jmespath.search("spec.rules[0].http.paths[0].backend.service", ingress)
        assert backend == {"name": "dagfleet-api-server", "port": {"number": 8080}}


class TestScheduler:
    def test_health_check_server_probes(self) -> None:
        main = container(deployment("scheduler"), "scheduler")
        assert main["livenessProbe"]["httpGet"] == {"path": "/health", "port": "health"}
        assert env_of(main)["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        assert ports == {"health": 8974, "task-logs": 8793}

    def test_kubernetes_executor_mounts_the_pod_template(self) -> None:
        doc = deployment("scheduler", {"executor": "KubernetesExecutor"})
        main = container(doc, "scheduler")
        env = env_of(main)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
        assert env["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == "dagfleet"
        path = env["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"]
        mount = jmespath.search("volumeMounts[?name=='pod-template'] | [0]", main)
        assert path.startswith(mount["mountPath"] + "/")
        assert jmespath.search("volumes[?name=='pod-template'].configMap.name", pod_spec(doc)) == [
            "dagfleet-pod-template"
        ]
        assert "task-logs" not in {p["name"] for p in main["ports"]}


class TestDagProcessorAndTriggerer:
    @pytest.mark.parametrize(
        ("component", "job_type"), [("dag-processor", "DagProcessorJob"), ("triggerer", "TriggererJob")]
    )
    def test_liveness_checks_the_local_job(self, component: str, job_type: str) -> None:
        main = container(deployment(component), component)
        expected = ["airflow", "jobs", "check", "--job-type", job_type, "--local"]
        assert main["livenessProbe"]["exec"]["command"] == expected
        assert main["startupProbe"]["exec"]["command"] == expected

    def test_triggerer_readiness_is_its_log_server(self) -> None:
        main = container(deployment("triggerer"), "triggerer")
        assert main["readinessProbe"]["tcpSocket"] == {"port": "trigger-logs"}
        assert main["ports"] == [{"name": "trigger-logs", "containerPort": 8794, "protocol": "TCP"}]
