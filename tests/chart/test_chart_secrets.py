"""Secrets: config API key, Airflow's keys, the database URL, workflow Secrets; NOTES never show them."""

from __future__ import annotations

import base64

import pytest
import yaml

from support.chart import by_kind, env_of, one, pod_spec, render_chart, render_install, render_notes, workloads

pytestmark = pytest.mark.helm

API_KEY = "cfg-key-5f1e2d"
WORKFLOW_VALUE = "wf-secret-9a8b7c"
SECRET_VALUES = {
    "configApi": {"url": "https://config.example.com", "apiKey": API_KEY},
    "workflowSecrets": [{"name": "tenant-a", "data": {"PASSWORD": WORKFLOW_VALUE, "port": 5432}}],
}


def secrets(values: dict | None = None) -> list[dict]:
    return by_kind(render_chart(values), "Secret")


def decoded(secret: dict) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


class TestConfigApiKeySecret:
    def test_created_from_the_value_base64_only(self) -> None:
        docs = render_chart(SECRET_VALUES)
        secret = one(docs, "Secret", "dagfleet-config-api")
        assert decoded(secret) == {"api-key": API_KEY}
        assert "stringData" not in secret
        # The plain value appears nowhere in the rendered objects (only base64-encoded).
        rendered = yaml.safe_dump_all([d for d in docs if d["metadata"]["name"] != "tenant-a"])
        assert API_KEY not in rendered

    def test_existing_secret_is_not_rendered(self) -> None:
        values = {"configApi": {"url": "https://c.example", "existingSecret": "mine"}}
        assert "dagfleet-config-api" not in {s["metadata"]["name"] for s in secrets(values)}

    def test_never_an_env_value(self) -> None:
        for doc in workloads(render_chart(SECRET_VALUES)):
            for c in [*pod_spec(doc).get("initContainers", []), *pod_spec(doc)["containers"]]:
                assert API_KEY not in str(c.get("env"))
                assert "DAGFLEET_API_KEY" not in env_of(c)


class TestAirflowSecret:
    def test_generated_keys(self) -> None:
        secret = one(render_chart(), "Secret", "dagfleet-airflow")
        data = decoded(secret)
        assert data.keys() == {"fernet-key", "jwt-secret", "api-secret-key"}
        fernet = base64.urlsafe_b64decode(data["fernet-key"])
        assert len(fernet) == 32  # a valid Fernet key: 32 url-safe base64-encoded bytes
        assert len(data["jwt-secret"]) >= 64
        assert len(data["api-secret-key"]) >= 64

    def test_kept_on_uninstall_and_across_upgrades(self) -> None:
        secret = one(render_chart(), "Secret", "dagfleet-airflow")
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"

    def test_generated_once_with_lookup(self) -> None:
        """The values come from `lookup` when the Secret exists (template source check: no cluster here)."""
        from support.chart import CHART_DIR

        source = (CHART_DIR / "templates" / "_helpers.tpl").read_text()
        assert 'lookup "v1" "Secret"' in source
        templates = (CHART_DIR / "templates" / "secrets.yaml").read_text()
        assert templates.count('include "dagfleet.generatedSecret"') == 4  # fernet, jwt, api, postgres

    def test_existing_secret(self) -> None:
        docs = render_chart({"airflow": {"existingSecret": "airflow-keys"}})
        assert "dagfleet-airflow" not in {s["metadata"]["name"] for s in by_kind(docs, "Secret")}
        volume = next(
            v
            for v in pod_spec(one(docs, "Deployment", "dagfleet-scheduler"))["volumes"]
            if v["name"] == "airflow-secrets"
        )
        assert volume["projected"]["sources"][0]["secret"]["name"] == "airflow-keys"


class TestDatabaseSecret:
    def test_bundled_postgresql_url_matches_its_password(self) -> None:
        data = decoded(one(render_chart(), "Secret", "dagfleet-postgresql"))
        assert data["connection"] == (
            f"postgresql+psycopg2://airflow:{data['password']}@dagfleet-postgresql.dagfleet.svc:5432/airflow"
        )
        assert len(data["password"]) == 32

    def test_external_database_secret_and_key(self) -> None:
        docs = render_chart(
            {"postgresql": {"enabled": False}, "externalDatabase": {"existingSecret": "db", "existingSecretKey": "url"}}
        )
        assert "dagfleet-postgresql" not in {s["metadata"]["name"] for s in by_kind(docs, "Secret")}
        volume = next(
            v
            for v in pod_spec(one(docs, "Deployment", "dagfleet-scheduler"))["volumes"]
            if v["name"] == "airflow-secrets"
        )
        assert volume["projected"]["sources"][1]["secret"] == {
            "name": "db",
            "items": [{"key": "url", "path": "sql-alchemy-conn"}],
        }

    def test_bundled_postgresql_with_existing_secret(self) -> None:
        docs = render_chart({"postgresql": {"existingSecret": "pg"}})
        assert "dagfleet-postgresql" not in {s["metadata"]["name"] for s in by_kind(docs, "Secret")}
        sts = one(docs, "StatefulSet", "dagfleet-postgresql")
        assert next(v for v in pod_spec(sts)["volumes"] if v["name"] == "password")["secret"]["secretName"] == "pg"


class TestWorkflowSecrets:
    def test_created_in_the_pod_namespace_as_string_data(self) -> None:
        values = {**SECRET_VALUES, "podNamespace": "jobs"}
        secret = one(render_chart(values), "Secret", "tenant-a")
        assert secret["metadata"]["namespace"] == "jobs"
        assert secret["stringData"] == {"PASSWORD": WORKFLOW_VALUE, "port": "5432"}
        assert "data" not in secret

    def test_default_namespace_is_the_release_one(self) -> None:
        assert one(render_chart(SECRET_VALUES), "Secret", "tenant-a")["metadata"]["namespace"] == "dagfleet"

    def test_not_mounted_into_airflow(self) -> None:
        """Airflow never reads them: the kubelet mounts them into the workflow pods."""
        for doc in workloads(render_chart(SECRET_VALUES)):
            assert "tenant-a" not in yaml.safe_dump(pod_spec(doc))


class TestNotesShowNoSecret:
    @pytest.mark.parametrize(
        "extra",
        [
            {},
            {"executor": "KubernetesExecutor", "podNamespace": "jobs", "existingWorkflowSecrets": ["shared"]},
            {
                "configApi": {"url": "", "apiKey": API_KEY},
                "referenceConfigApi": {"enabled": True, "workflows": {"a": {}}},
            },
        ],
    )
    def test_notes_never_contain_secret_values(self, extra: dict) -> None:
        values = {**SECRET_VALUES, **extra}
        notes = render_notes(values)
        assert "dagfleet" in notes
        for value in (API_KEY, WORKFLOW_VALUE, base64.b64encode(API_KEY.encode()).decode()):
            assert value not in notes

    def test_notes_never_contain_generated_values(self) -> None:
        docs, notes = render_install(SECRET_VALUES)  # one render: the same random values in both
        values = [v for s in by_kind(docs, "Secret") for v in decoded(s).values()]
        values += [str(v) for s in by_kind(docs, "Secret") for v in (s.get("stringData") or {}).values()]
        secret_like = [v for v in values if len(v) >= 8]  # skips e.g. the port "5432"
        assert len(secret_like) >= 6
        for value in secret_like:
            assert value not in notes

    def test_notes_name_users_and_roles_not_a_password(self) -> None:
        """Issue #24: "SimpleAuthManager users: admin:admin" read like user admin, password admin."""
        notes = render_notes({"airflow": {"simpleAuthManagerUsers": "admin:admin,viewer:viewer"}})
        assert "admin:admin" not in notes
        assert "users: admin (role: admin), viewer (role: viewer). Their passwords are\ngenerated" in notes

    def test_notes_hide_credentials_in_the_url(self) -> None:
        notes = render_notes({"configApi": {"url": "https://user:pa55word@config.example.com/api"}})
        assert "pa55word" not in notes
        assert "https://config.example.com/api" in notes
