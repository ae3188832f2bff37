"""The watch sidecar's metrics and health (dagfleet.service.metrics): port, probes, PodMonitor,
PrometheusRule, NetworkPolicy."""

from __future__ import annotations

import jmespath
import pytest

from support.chart import NAMESPACE, RELEASE, HelmFailedError, container, env_of, render_chart

pytestmark = pytest.mark.helm

TEMPLATES = "templates/dagfleet-metrics"
BASE = {"configApi": {"url": "https://cfg.example.com", "apiKey": "k"}}
ON = {"podMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}


def _values(metrics: dict | None = None, **extra: object) -> dict:
    return {**BASE, "dagfleet": {"metrics": metrics or {}}, **extra}


def sidecar(values: dict | None = None, component: str = "dag-processor") -> dict:
    docs = render_chart(values or _values(), show_only=[f"templates/{component}/deployment.yaml"])
    return container(docs[0], "dag-sync")


class TestSidecar:
    def test_serves_metrics_on_a_named_port_and_is_probed(self) -> None:
        c = sidecar()
        assert env_of(c)["DAGFLEET_METRICS_PORT"] == "9108"
        assert "DAGFLEET_STUCK_AFTER" not in env_of(c)  # derived by dagfleet from interval and timeouts
        assert c["ports"] == [{"name": "sync-metrics", "containerPort": 9108, "protocol": "TCP"}]
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "sync-metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "sync-metrics"}
        assert c["livenessProbe"]["periodSeconds"] == 30

    def test_scheduler_sidecar_too(self) -> None:
        c = sidecar(_values(), "scheduler")
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"

    def test_port_stuck_after_and_timings_are_values(self) -> None:
        values = _values({"port": 9200, "stuckAfter": 240, "livenessProbe": {"periodSeconds": 7}})
        c = sidecar(values)
        assert env_of(c)["DAGFLEET_METRICS_PORT"] == "9200"
        assert env_of(c)["DAGFLEET_STUCK_AFTER"] == "240"
        assert c["ports"][0]["containerPort"] == 9200
        assert c["livenessProbe"]["periodSeconds"] == 7

    def test_off(self) -> None:
        c = sidecar(_values({"enabled": False}))
        assert "DAGFLEET_METRICS_PORT" not in env_of(c)
        assert "ports" not in c
        assert "livenessProbe" not in c
        assert "readinessProbe" not in c

    def test_main_containers_get_no_metrics_port(self) -> None:
        docs = render_chart(_values(), show_only=["templates/dag-processor/deployment.yaml"])
        assert "DAGFLEET_METRICS_PORT" not in env_of(container(docs[0], "dag-processor"))


class TestPodMonitor:
    def test_off_by_default(self) -> None:
        with pytest.raises(HelmFailedError, match="could not find template"):
            render_chart(_values(), show_only=[f"{TEMPLATES}/podmonitor.yaml"])

    def test_scrapes_the_sidecars_named_port(self) -> None:
        values = _values({"podMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}}})
        (doc,) = render_chart(values, show_only=[f"{TEMPLATES}/podmonitor.yaml"])
        assert doc["kind"] == "PodMonitor"
        assert doc["apiVersion"] == "monitoring.coreos.com/v1"
        assert doc["metadata"]["labels"]["release"] == "kps"
        assert doc["spec"]["podMetricsEndpoints"] == [{"port": "sync-metrics", "path": "/metrics", "interval": "15s"}]
        selector = doc["spec"]["selector"]
        assert selector["matchLabels"]["app.kubernetes.io/instance"] == RELEASE
        assert jmespath.search("matchExpressions[0].values", selector) == ["dag-processor", "scheduler"]

    def test_selects_the_pods_that_carry_the_port(self) -> None:
        (monitor,) = render_chart(_values(ON), show_only=[f"{TEMPLATES}/podmonitor.yaml"])
        wanted = set(jmespath.search("spec.selector.matchExpressions[0].values", monitor))
        docs = render_chart(_values(ON), show_only=["templates/dag-processor/deployment.yaml"])
        labels = docs[0]["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] in wanted
        assert labels.items() >= monitor["spec"]["selector"]["matchLabels"].items()

    @pytest.mark.parametrize("off", [{"dagfleet": {"watch": {"enabled": False}}}, {"metrics": {"enabled": False}}])
    def test_needs_the_sidecar_metrics(self, off: dict) -> None:
        values = _values({**ON, **off.get("metrics", {})})
        if "dagfleet" in off:
            values["dagfleet"]["watch"] = off["dagfleet"]["watch"]
        with pytest.raises(HelmFailedError, match="need the watch sidecar's metrics"):
            render_chart(values)


class TestPrometheusRule:
    def rules(self, metrics: dict | None = None) -> dict[str, dict]:
        (doc,) = render_chart(_values({**ON, **(metrics or {})}), show_only=[f"{TEMPLATES}/prometheusrule.yaml"])
        assert doc["kind"] == "PrometheusRule"
        return {r["alert"]: r for group in doc["spec"]["groups"] for r in group["rules"]}

    def test_the_three_alerts(self) -> None:
        rules = self.rules()
        assert set(rules) == {"DagfleetSyncFailing", "DagfleetWorkflowRejected", "DagfleetNoSuccessfulSync"}
        failing = rules["DagfleetSyncFailing"]
        assert failing["expr"] == f'dagfleet_sync_last_outcome{{namespace="{NAMESPACE}", outcome="synced"}} == 0'
        assert failing["for"] == "15m"
        assert rules["DagfleetWorkflowRejected"]["expr"] == (
            f'dagfleet_workflows{{namespace="{NAMESPACE}", state="rejected"}} > 0'
        )
        assert rules["DagfleetNoSuccessfulSync"]["expr"] == (
            f'dagfleet_sync_seconds_since_success{{namespace="{NAMESPACE}"}} > 3600'
        )
        for rule in rules.values():
            assert rule["labels"] == {"severity": "warning"}
            assert rule["annotations"]["summary"]
            assert "{{ $labels.pod }}" in rule["annotations"]["summary"]  # left for Prometheus to fill

    def test_thresholds_are_values(self) -> None:
        metrics = {"prometheusRule": {"enabled": True, "syncFailingFor": "30m", "noSuccessSeconds": 7200,
                                      "alertLabels": {"severity": "page"}}}  # fmt: skip
        rules = self.rules(metrics)
        assert rules["DagfleetSyncFailing"]["for"] == "30m"
        assert rules["DagfleetNoSuccessfulSync"]["expr"].endswith("> 7200")
        assert rules["DagfleetWorkflowRejected"]["labels"] == {"severity": "page"}

    def test_every_metric_it_uses_is_exported(self) -> None:
        """The rule only names metrics `dagfleet watch` exports (docs/operations.md lists them)."""
        from dagfleet.service.metrics import FleetMetrics

        exported = {m.name for m in FleetMetrics().registry.collect()}
        for rule in self.rules().values():
            name = rule["expr"].split("{")[0]
            assert name in exported, name

    def test_bad_duration_is_rejected_by_the_schema(self) -> None:
        with pytest.raises(HelmFailedError, match="syncFailingFor"):
            render_chart(_values({"prometheusRule": {"enabled": True, "syncFailingFor": "15 minutes"}}))


class TestNetworkPolicy:
    def test_opens_the_metrics_port_when_policies_are_on(self) -> None:
        scrape_from = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
        values = _values({"scrapeFrom": scrape_from}, networkPolicy={"enabled": True})
        docs = render_chart(values, show_only=[f"{TEMPLATES}/networkpolicy.yaml"])
        (doc,) = [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-dag-sync-metrics"]
        (rule,) = doc["spec"]["ingress"]
        assert rule["ports"] == [{"port": "sync-metrics", "protocol": "TCP"}]
        assert rule["from"] == scrape_from

    def test_none_without_policies(self) -> None:
        with pytest.raises(HelmFailedError, match="could not find template"):
            render_chart(_values(), show_only=[f"{TEMPLATES}/networkpolicy.yaml"])


class TestFleetStatus:
    """The api-server's Fleet page reads /status.json from the dag-processor's sidecar."""

    URL = f"http://{RELEASE}-fleet-status.{NAMESPACE}.svc:9108/status.json"

    def api_server_env(self, values: dict) -> dict:
        (doc,) = render_chart(values, show_only=["templates/api-server/deployment.yaml"])
        return env_of(container(doc, "api-server"))

    def test_service_selects_the_dag_processor_sidecar_port(self) -> None:
        (svc,) = render_chart(_values(), show_only=[f"{TEMPLATES}/fleet-status-service.yaml"])
        assert svc["metadata"]["name"] == f"{RELEASE}-fleet-status"
        assert svc["spec"]["type"] == "ClusterIP"
        assert svc["spec"]["ports"] == [
            {"name": "sync-metrics", "port": 9108, "targetPort": "sync-metrics", "protocol": "TCP"}
        ]
        assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "dag-processor"
        (deploy,) = render_chart(_values(), show_only=["templates/dag-processor/deployment.yaml"])
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= labels.items()

    def test_api_server_reads_the_status_url(self) -> None:
        assert self.api_server_env(_values())["DAGFLEET_STATUS_URL"] == self.URL
        custom = self.api_server_env(_values({"port": 9200}))["DAGFLEET_STATUS_URL"]
        assert custom == self.URL.replace("9108", "9200")

    @pytest.mark.parametrize(
        "off", [{"dagfleet": {"metrics": {"enabled": False}}}, {"dagfleet": {"watch": {"enabled": False}}}]
    )
    def test_none_without_the_sidecars_metrics(self, off: dict) -> None:
        values = {**BASE, **off}
        assert "DAGFLEET_STATUS_URL" not in self.api_server_env(values)
        with pytest.raises(HelmFailedError, match="could not find template"):
            render_chart(values, show_only=[f"{TEMPLATES}/fleet-status-service.yaml"])

    def test_network_policy_lets_the_api_server_in(self) -> None:
        scrape_from = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
        values = _values({"scrapeFrom": scrape_from}, networkPolicy={"enabled": True})
        docs = render_chart(values, show_only=[f"{TEMPLATES}/networkpolicy.yaml"])
        (doc,) = [d for d in docs if d["metadata"]["name"] == f"{RELEASE}-fleet-status"]
        assert jmespath.search('spec.podSelector.matchLabels."app.kubernetes.io/component"', doc) == "dag-processor"
        (rule,) = doc["spec"]["ingress"]
        assert rule["ports"] == [{"port": "sync-metrics", "protocol": "TCP"}]
        (peer,) = rule["from"]
        assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "api-server"
