"""PostgreSQL, the reference config API, the migration Job, the KubernetesExecutor pod template,
RBAC, PodDisruptionBudgets, NetworkPolicies and the `helm test` pod: one class per template."""

from __future__ import annotations

import jmespath
import pytest
import yaml

from support.chart import by_kind, container, env_of, one, pod_spec, pod_templates, render_chart

pytestmark = pytest.mark.helm


class TestPostgresqlStatefulSet:
    def test_official_image_with_a_claim(self) -> None:
        docs = render_chart()
        sts = one(docs, "StatefulSet", "dagfleet-postgresql")
        main = container(sts, "postgresql")
        assert main["image"] == "postgres:17.6"
        env = env_of(main)
        assert env["POSTGRES_PASSWORD_FILE"] == "/var/run/secrets/postgresql/password"  # noqa: S105 - a path
        assert "POSTGRES_PASSWORD" not in env
        assert env["PGDATA"].startswith("/var/lib/postgresql/data/")
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert sts["spec"]["serviceName"] == "dagfleet-postgresql"
        assert one(docs, "Service", "dagfleet-postgresql")["spec"]["clusterIP"] == "None"

    def test_storage_settings(self) -> None:
        values = {"postgresql": {"persistence": {"size": "20Gi", "storageClass": "fast"}}}
        (sts,) = render_chart(values, show_only=["templates/postgresql/statefulset.yaml"])
        claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
        assert claim["storageClassName"] == "fast"
        assert claim["resources"]["requests"]["storage"] == "20Gi"

    def test_without_persistence_uses_an_empty_dir(self) -> None:
        (sts,) = render_chart(
            {"postgresql": {"persistence": {"enabled": False}}}, show_only=["templates/postgresql/statefulset.yaml"]
        )
        assert "volumeClaimTemplates" not in sts["spec"]
        assert jmespath.search("volumes[?name=='data'].emptyDir", pod_spec(sts)) == [{}]

    def test_probes_use_pg_isready(self) -> None:
        (sts,) = render_chart(show_only=["templates/postgresql/statefulset.yaml"])
        main = container(sts, "postgresql")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert main[probe]["exec"]["command"][0] == "pg_isready"

    def test_runs_as_the_postgres_user_read_only(self) -> None:
        (sts,) = render_chart(show_only=["templates/postgresql/statefulset.yaml"])
        spec = pod_spec(sts)
        assert spec["securityContext"]["runAsUser"] == 999
        assert spec["securityContext"]["fsGroup"] == 999
        assert spec["automountServiceAccountToken"] is False
        mounts = {m["mountPath"] for m in container(sts, "postgresql")["volumeMounts"]}
        assert {"/var/run/postgresql", "/tmp", "/var/lib/postgresql/data"} <= mounts

    def test_external_database_has_no_postgresql(self) -> None:
        docs = render_chart({"postgresql": {"enabled": False}, "externalDatabase": {"existingSecret": "db"}})
        assert not [d for d in docs if "postgresql" in d["metadata"]["name"]]


REFERENCE_VALUES: dict = {
    "configApi": {"url": "", "apiKey": "k"},
    "referenceConfigApi": {"enabled": True, "workflows": {"acme": {"schedule": "@daily"}, "globex": {}}},
}


class TestReferenceConfigApi:
    def test_off_by_default(self) -> None:
        assert not [d for d in render_chart() if d["metadata"]["name"] == "dagfleet-config-api"]

    def test_serves_the_workflows_from_a_configmap(self) -> None:
        docs = render_chart(REFERENCE_VALUES)
        deploy = one(docs, "Deployment", "dagfleet-config-api")
        main = container(deploy, "config-api")
        assert main["command"] == [
            "dumb-init", "--", "dagfleet", "serve-config",
            "--file", "/etc/dagfleet/workflows.yaml", "--host", "0.0.0.0", "--port", "8000",
        ]  # fmt: skip
        assert env_of(main)["DAGFLEET_API_KEY_FILE"] == "/var/run/secrets/dagfleet/api-key"
        config_map = one(docs, "ConfigMap", "dagfleet-config-api")
        served = yaml.safe_load(config_map["data"]["workflows.yaml"])
        assert served == {"workflows": {"acme": {"schedule": "@daily"}, "globex": {}}}
        # Mounted as a directory (not subPath), so edits reach the file and the server reloads it.
        mount = jmespath.search("volumeMounts[?name=='workflows'] | [0]", main)
        assert mount["mountPath"] == "/etc/dagfleet" and "subPath" not in mount
        assert "checksum/workflows" not in deploy["spec"]["template"]["metadata"]["annotations"]

    def test_components_point_at_it(self) -> None:
        docs = render_chart(REFERENCE_VALUES)
        env = env_of(container(one(docs, "Deployment", "dagfleet-scheduler"), "scheduler"))
        assert env["DAGFLEET_API_URL"] == "http://dagfleet-config-api.dagfleet.svc:8000"
        svc = one(docs, "Service", "dagfleet-config-api")
        assert svc["spec"]["ports"][0]["port"] == 8000

    def test_without_workflows_serves_the_embedded_example(self) -> None:
        docs = render_chart({"configApi": {"url": ""}, "referenceConfigApi": {"enabled": True}})
        main = container(one(docs, "Deployment", "dagfleet-config-api"), "config-api")
        assert "--file" not in main["command"]
        assert "DAGFLEET_API_KEY_FILE" not in env_of(main)
        assert not [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "dagfleet-config-api"]

    def test_has_no_service_account_token(self) -> None:
        deploy = one(render_chart(REFERENCE_VALUES), "Deployment", "dagfleet-config-api")
        assert pod_spec(deploy)["automountServiceAccountToken"] is False


class TestMigrationJob:
    def test_is_a_post_install_and_post_upgrade_hook(self) -> None:
        (job,) = render_chart(show_only=["templates/migrate-job.yaml"])
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        assert job["metadata"]["name"] == "dagfleet-migrate"

    def test_waits_for_the_database_then_migrates(self) -> None:
        (job,) = render_chart(show_only=["templates/migrate-job.yaml"])
        assert container(job, "wait-for-database")["command"][:3] == ["airflow", "db", "check"]
        assert container(job, "migrate")["command"] == ["airflow", "db", "migrate"]
        env = env_of(container(job, "migrate"))
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"] == "cat /var/run/secrets/airflow/sql-alchemy-conn"
        assert not [k for k in env if k.startswith("DAGFLEET_")]  # no DAG sync for a migration

    def test_without_hooks_it_is_a_plain_job_without_ttl(self) -> None:
        (job,) = render_chart({"migrations": {"useHelmHooks": False}}, show_only=["templates/migrate-job.yaml"])
        assert job["metadata"]["name"].startswith("dagfleet-migrate-")
        assert "helm.sh/hook" not in job["metadata"]["annotations"]
        # A TTL would delete the Job; Argo CD/Flux would see it missing and run it again.
        assert "ttlSecondsAfterFinished" not in job["spec"]

    def test_with_hooks_it_keeps_its_ttl(self) -> None:
        (job,) = render_chart(show_only=["templates/migrate-job.yaml"])
        assert job["spec"]["ttlSecondsAfterFinished"] == 600

    def test_wait_timeout_reaches_the_components(self) -> None:
        (deploy,) = render_chart({"migrations": {"waitTimeout": 42}}, show_only=["templates/scheduler/deployment.yaml"])
        assert "--migration-wait-timeout=42" in container(deploy, "wait-for-migrations")["command"]


class TestKubernetesExecutorPodTemplate:
    def pod(self, values: dict | None = None) -> dict:
        docs = render_chart({"executor": "KubernetesExecutor", **(values or {})})
        (template,) = list(pod_templates(docs))
        return yaml.safe_load(template)

    def test_only_with_kubernetes_executor(self) -> None:
        assert list(pod_templates(render_chart())) == []

    def test_base_container_starts_with_dagfleet_task(self) -> None:
        """Airflow sets only the args; `dagfleet task` writes the task's DAG, then /entrypoint runs it."""
        pod = self.pod()
        base = container(pod, "base")
        assert base["command"] == ["dumb-init", "--", "dagfleet", "task", "--"]
        assert "args" not in base
        env = env_of(base)
        assert env["DAGFLEET_DAGS_FOLDER"] == "/opt/airflow/dags"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith(":8080/execution/")
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["spec"]["serviceAccountName"] == "dagfleet-worker"

    def test_no_database_wait_in_task_pods(self) -> None:
        """The official /entrypoint would wait for a database task pods do not have (issue 16)."""
        assert env_of(container(self.pod(), "base"))["CONNECTION_CHECK_MAX_COUNT"] == "0"

    def test_no_config_api_in_task_pods_by_default(self) -> None:
        pod = self.pod({"configApi": {"url": "https://config.example.com", "apiKey": "k"}})
        env = env_of(container(pod, "base"))
        assert not {"DAGFLEET_API_URL", "DAGFLEET_API_KEY_FILE", "DAGFLEET_API_KEY"} & env.keys()
        assert "config-api-key" not in {v["name"] for v in pod["spec"]["volumes"]}
        assert {v["name"] for v in pod["spec"]["volumes"]} >= {"dags", "logs", "tmp", "airflow-config"}

    def test_sync_fallback_gives_the_config_api(self) -> None:
        values = {"configApi": {"url": "https://config.example.com", "apiKey": "k"}, "workers": {"syncFallback": True}}
        pod = self.pod(values)
        env = env_of(container(pod, "base"))
        assert env["DAGFLEET_API_URL"] == "https://config.example.com"
        assert env["DAGFLEET_API_KEY_FILE"] == "/var/run/secrets/dagfleet/api-key"
        assert "config-api-key" in {v["name"] for v in pod["spec"]["volumes"]}

    def test_task_pods_get_no_airflow_secrets(self) -> None:
        """Tasks talk to the execution API only: no database URL, no Fernet key in task pods."""
        pod = self.pod()
        assert not [k for k in env_of(container(pod, "base")) if k.endswith("_CMD")]
        assert "airflow-secrets" not in {v["name"] for v in pod["spec"]["volumes"]}

    def test_resources(self) -> None:
        limits = {"cpu": "2", "memory": "3Gi"}
        assert (
            container(self.pod({"workers": {"resources": {"limits": limits}}}), "base")["resources"]["limits"] == limits
        )


class TestRbac:
    def rules(self, values: dict | None = None) -> dict[str, dict]:
        docs = render_chart(values, show_only=["templates/rbac.yaml"])
        return {r["metadata"]["namespace"]: r for r in by_kind(docs, "Role")}

    def test_least_privilege_in_the_pod_namespace(self) -> None:
        roles = self.rules({"podNamespace": "jobs"})
        assert list(roles) == ["jobs"]
        rules = {tuple(r["resources"]): r["verbs"] for r in roles["jobs"]["rules"]}
        assert rules == {
            ("pods",): ["create", "get", "list", "watch", "patch", "delete"],
            ("pods/log",): ["get"],
            ("events",): ["list", "watch"],
        }
        for role in roles.values():
            for rule in role["rules"]:
                assert "*" not in rule["verbs"] and "*" not in rule["resources"]
                assert "secrets" not in rule["resources"]

    def test_pod_exec_only_on_request(self) -> None:
        rules = self.rules({"rbac": {"podExec": True}})["dagfleet"]["rules"]
        assert {"resources": ["pods/exec"], "verbs": ["create", "get"], "apiGroups": [""]} in rules

    def test_kubernetes_executor_also_gets_the_release_namespace(self) -> None:
        assert sorted(self.rules({"executor": "KubernetesExecutor", "podNamespace": "jobs"})) == ["dagfleet", "jobs"]
        assert list(self.rules({"executor": "KubernetesExecutor"})) == ["dagfleet"]

    def test_binding_names_only_the_pod_launchers(self) -> None:
        docs = render_chart({"podNamespace": "jobs"}, show_only=["templates/rbac.yaml"])
        (binding,) = by_kind(docs, "RoleBinding")
        assert binding["metadata"]["namespace"] == "jobs"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "dagfleet-scheduler", "namespace": "dagfleet"},
            {"kind": "ServiceAccount", "name": "dagfleet-triggerer", "namespace": "dagfleet"},
        ]
        assert one(docs, "ServiceAccount", "dagfleet-scheduler")["metadata"]["namespace"] == "dagfleet"

    def test_existing_service_account(self) -> None:
        docs = render_chart({"scheduler": {"serviceAccount": {"create": False, "name": "airflow"}}})
        assert "dagfleet-scheduler" not in {d["metadata"]["name"] for d in by_kind(docs, "ServiceAccount")}
        assert pod_spec(one(docs, "Deployment", "dagfleet-scheduler"))["serviceAccountName"] == "airflow"
        (binding,) = by_kind(docs, "RoleBinding")
        assert {"kind": "ServiceAccount", "name": "airflow", "namespace": "dagfleet"} in binding["subjects"]

    def test_can_be_disabled(self) -> None:
        assert not by_kind(render_chart({"rbac": {"create": False}}), "Role")


class TestPodDisruptionBudgets:
    def test_one_per_deployment(self) -> None:
        docs = render_chart({"configApi": {"url": ""}, "referenceConfigApi": {"enabled": True}})
        pdbs = {p["metadata"]["name"]: p for p in by_kind(docs, "PodDisruptionBudget")}
        deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
        assert pdbs.keys() == deployments.keys()
        for name, pdb in pdbs.items():
            assert pdb["spec"]["maxUnavailable"] == 1
            assert pdb["spec"]["selector"]["matchLabels"] == deployments[name]["spec"]["selector"]["matchLabels"]

    def test_can_be_disabled(self) -> None:
        assert not by_kind(render_chart({"podDisruptionBudget": {"enabled": False}}), "PodDisruptionBudget")


class TestNetworkPolicies:
    def policies(self, values: dict | None = None) -> dict[str, dict]:
        docs = render_chart({"networkPolicy": {"enabled": True}, **(values or {})})
        return {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}

    def test_off_by_default(self) -> None:
        assert not by_kind(render_chart(), "NetworkPolicy")

    def test_default_deny_for_the_release(self) -> None:
        deny = self.policies()["dagfleet-default-deny"]
        assert deny["spec"]["podSelector"]["matchLabels"] == {
            "app.kubernetes.io/name": "dagfleet",
            "app.kubernetes.io/instance": "dagfleet",
        }
        assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]

    def test_api_server_open_or_restricted(self) -> None:
        open_rule = self.policies()["dagfleet-api-server"]["spec"]["ingress"]
        assert open_rule == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
        peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        (rule,) = self.policies({"networkPolicy": {"enabled": True, "apiServerFrom": [peer]}})["dagfleet-api-server"][
            "spec"
        ]["ingress"]
        assert peer in rule["from"]
        # The release's own pods (task pods calling the execution API, helm test) stay allowed.
        assert {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "dagfleet", "app.kubernetes.io/instance": "dagfleet"}
            }
        } in rule["from"]

    def test_database_and_config_api_only_from_the_release(self) -> None:
        policies = self.policies({"configApi": {"url": ""}, "referenceConfigApi": {"enabled": True}})
        for name, port in (("dagfleet-postgresql", 5432), ("dagfleet-config-api", 8000)):
            (rule,) = policies[name]["spec"]["ingress"]
            assert rule["ports"] == [{"port": port, "protocol": "TCP"}]
            assert rule["from"] == [
                {
                    "podSelector": {
                        "matchLabels": {"app.kubernetes.io/name": "dagfleet", "app.kubernetes.io/instance": "dagfleet"}
                    }
                }
            ]

    def test_task_logs_only_from_the_api_server(self) -> None:
        (rule,) = self.policies()["dagfleet-task-logs"]["spec"]["ingress"]
        assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api-server"
        assert {p["port"] for p in rule["ports"]} == {8793, 8794}

    def test_task_logs_of_kubernetes_executor_task_pods(self) -> None:
        """Task pods serve their logs on 8793 too: the default deny must not cut the api-server off."""
        policy = self.policies()["dagfleet-task-logs"]
        (expression,) = policy["spec"]["podSelector"]["matchExpressions"]
        assert set(expression["values"]) == {"scheduler", "triggerer", "worker"}


class TestHelmTestPod:
    def test_is_a_test_hook_that_syncs_and_checks_health(self) -> None:
        (pod,) = render_chart(show_only=["templates/tests/test-release.yaml"])
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        check = container(pod, "check")
        script = check["args"][0]
        assert check["command"] == ["bash", "-c"]
        assert "dagfleet sync" in script
        assert "http://dagfleet-api-server.dagfleet.svc:8080/api/v2/monitor/health" in script
        assert env_of(check)["DAGFLEET_API_URL"] == "https://config.example.com"
        assert pod["spec"]["restartPolicy"] == "Never"
