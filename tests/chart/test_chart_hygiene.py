"""Production hygiene over every scenario: security contexts, resources, probes, labels, namespaces."""

from __future__ import annotations

import pytest

from support.chart import SCENARIOS, HelmFailedError, containers, pod_metadata, pod_spec, render_scenario, workloads

pytestmark = pytest.mark.helm

LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}
# Pods that run to completion: probes make no sense there.
ONE_SHOT = {"Job", "CronJob", "Pod"}


def all_workloads() -> list[tuple[str, dict]]:
    """Rendered at collection time for readable test ids; a helm problem becomes one failing case."""
    try:
        return [(s, w) for s in SCENARIOS for w in workloads(render_scenario(s))]
    except (RuntimeError, HelmFailedError) as err:
        return [("render", {"kind": "Error", "metadata": {"name": str(err).splitlines()[0]}, "error": str(err)})]


def ids(items: list[tuple[str, dict]]) -> list[str]:
    return [f"{s}:{w['kind']}/{w['metadata']['name']}" for s, w in items]


WORKLOADS = all_workloads()


@pytest.fixture(autouse=True)
def _rendered(request: pytest.FixtureRequest) -> None:
    workload = getattr(request.node, "callspec", None) and request.node.callspec.params.get("workload")
    if workload and workload.get("error"):
        pytest.fail(workload["error"], pytrace=False)


@pytest.mark.parametrize(("scenario", "workload"), WORKLOADS, ids=ids(WORKLOADS))
class TestEveryPod:
    def test_pod_security_context(self, scenario: str, workload: dict) -> None:
        context = pod_spec(workload)["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert context["runAsUser"] != 0

    def test_container_security_context(self, scenario: str, workload: dict) -> None:
        for c in containers(workload):
            context = c["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, c["name"]
            assert context["privileged"] is False, c["name"]
            assert context["readOnlyRootFilesystem"] is True, c["name"]
            assert context["capabilities"] == {"drop": ["ALL"]}, c["name"]
            assert context["runAsNonRoot"] is True, c["name"]
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]

    def test_tmp_is_writable(self, scenario: str, workload: dict) -> None:
        """A read-only root filesystem: /tmp is an emptyDir everywhere."""
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        for c in containers(workload):
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], c["name"]

    def test_resources_requests_and_limits(self, scenario: str, workload: dict) -> None:
        for c in containers(workload):
            resources = c["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), c["name"]
            assert {"cpu", "memory"} <= resources["limits"].keys(), c["name"]

    def test_no_latest_tag(self, scenario: str, workload: dict) -> None:
        for c in containers(workload):
            name = c["image"].rsplit("/", 1)[-1]
            assert "@sha256:" in name or (":" in name and not name.endswith(":latest")), c["image"]


AIRFLOW = [(s, w) for s, w in WORKLOADS if not w["metadata"]["name"].endswith(("-postgresql", "-statsd", "-redis"))]
LONG_RUNNING = [(s, w) for s, w in WORKLOADS if w["kind"] not in ONE_SHOT]


@pytest.mark.parametrize(("scenario", "workload"), AIRFLOW, ids=ids(AIRFLOW))
def test_airflow_runs_as_50000(scenario: str, workload: dict) -> None:
    """PostgreSQL excepted: it runs as the postgres image's own user."""
    assert pod_spec(workload)["securityContext"]["runAsUser"] == 50000
    assert {c["securityContext"]["runAsUser"] for c in containers(workload)} == {50000}


@pytest.mark.parametrize(("scenario", "workload"), LONG_RUNNING, ids=ids(LONG_RUNNING))
class TestEveryLongRunningPod:
    """Deployments and StatefulSets (Jobs and Pods run to completion and are created anew)."""

    def test_probes(self, scenario: str, workload: dict) -> None:
        for c in pod_spec(workload)["containers"]:
            assert {"startupProbe", "livenessProbe", "readinessProbe"} <= c.keys(), c["name"]

    def test_checksums_for_what_the_pod_reads(self, scenario: str, workload: dict) -> None:
        """One checksum/<name> per chart ConfigMap or Secret the pod mounts, and none for others."""
        annotations = workload["spec"]["template"]["metadata"].get("annotations") or {}
        volumes = pod_spec(workload)["volumes"]
        secrets = set()
        for v in volumes:
            sources = [v, *v.get("projected", {}).get("sources", [])]
            for source in sources:
                name = (source.get("secret") or {}).get("secretName") or (source.get("secret") or {}).get("name")
                if name:
                    secrets.add(name)
        config_maps = {v["configMap"]["name"] for v in volumes if "configMap" in v}
        expected = set()
        for name in secrets:
            if name.endswith(("-postgresql", "-database")) or name in {"airflow-database", "pg"}:
                expected.add("checksum/database-secret")
            elif "config-api" in name:
                expected.add("checksum/config-api-secret")
            elif name.endswith(("-airflow", "-keys")):
                expected.add("checksum/airflow-secret")
            elif "broker" in name:  # CeleryExecutor: the broker URL
                expected.add("checksum/broker-secret")
            elif "redis" in name:  # CeleryExecutor: the bundled Redis password
                expected.add("checksum/redis-secret")
        for name in config_maps:
            if name.endswith("-airflow-config"):
                expected.add("checksum/airflow-config")
            if name.endswith("-pod-template"):
                expected.add("checksum/pod-template")
            if name.endswith("-statsd"):
                expected.add("checksum/statsd-mappings")
        # The reference config API reloads its workflows ConfigMap itself: no checksum needed there.
        present = {k for k in annotations if k.startswith("checksum/")}
        assert present == expected, (sorted(secrets), sorted(config_maps))


@pytest.mark.parametrize("scenario", SCENARIOS)
class TestEveryObject:
    def test_labels(self, scenario: str) -> None:
        for doc in render_scenario(scenario):
            labels = doc["metadata"]["labels"]
            missing = (LABELS - {"app.kubernetes.io/component"}) - labels.keys()
            assert not missing, (doc["kind"], doc["metadata"]["name"], missing)

    def test_namespace_is_explicit(self, scenario: str) -> None:
        for doc in render_scenario(scenario):
            assert doc["metadata"].get("namespace"), (doc["kind"], doc["metadata"]["name"])

    def test_names_fit_dns_labels(self, scenario: str) -> None:
        for doc in render_scenario(scenario):
            assert len(doc["metadata"]["name"]) <= 63

    def test_workload_pods_carry_component_labels(self, scenario: str) -> None:
        for doc in workloads(render_scenario(scenario)):
            labels = pod_metadata(doc)["labels"]
            assert labels.keys() >= LABELS, doc["metadata"]["name"]
