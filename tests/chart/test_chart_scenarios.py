"""Every scenario of chart/ci: renders, passes `helm lint --strict`, validates against Kubernetes'
schemas (kubernetes-validate --strict) and passes checkov with zero failures."""

from __future__ import annotations

from typing import Any

import pytest

from support.chart import CHART_DIR, KUBE_VERSIONS, SCENARIOS, helm, render_scenario, scenario_file, workloads

pytestmark = pytest.mark.helm

# The only checks a skip annotation may silence, each justified next to the object it concerns.
ALLOWED_SKIPS = {
    "CKV_K8S_43",  # image by tag (skipped only when no digest is set)
    "CKV_K8S_15",  # pull policy IfNotPresent (skipped only when it is not Always)
    "CKV_K8S_38",  # Airflow needs its ServiceAccount token to launch pods
    "CKV_K8S_40",  # the postgres image's own uid 999
    "CKV_K8S_8",  # one-shot pods (helm test, task pods): nothing to probe
    "CKV_K8S_9",
    "CKV2_K8S_6",  # NetworkPolicies are opt-in (skipped only when disabled)
    "CKV_K8S_35",  # a Secret in extraEnvFrom (skipped only when the user names one: AIRFLOW_CONN_*)
}


def test_scenarios_exist() -> None:
    assert len(SCENARIOS) >= 6, SCENARIOS


@pytest.mark.parametrize("scenario", SCENARIOS)
class TestScenario:
    def test_renders(self, scenario: str) -> None:
        docs = render_scenario(scenario)
        kinds = {d["kind"] for d in docs}
        assert {"Deployment", "Service", "ConfigMap", "Job", "ServiceAccount", "Pod"} <= kinds

    def test_helm_lint_strict(self, scenario: str) -> None:
        result = helm(
            "lint", "--strict", str(CHART_DIR), "--namespace", "dagfleet", "--values", str(scenario_file(scenario))
        )
        assert "0 chart(s) failed" in result.stdout, result.stdout

    @pytest.mark.parametrize("version", KUBE_VERSIONS)
    def test_kubernetes_validate(
        self, scenario: str, version: str, kubernetes_validate: dict[tuple[str, str], list[str]]
    ) -> None:
        assert kubernetes_validate[(scenario, version)] == []

    def test_checkov_no_failures(self, scenario: str, checkov_results: dict[str, Any]) -> None:
        failed = [f"{c['check_id']} {c['check_name']}: {c['resource']}" for c in checkov_results[scenario]["failed"]]
        assert failed == []
        assert checkov_results[scenario]["passed"], "checkov scanned nothing"

    def test_checkov_skips_are_justified(self, scenario: str, checkov_results: dict[str, Any]) -> None:
        for check in checkov_results[scenario]["skipped"]:
            assert check["check_id"] in ALLOWED_SKIPS, check["check_id"]
            reason = check.get("check_result", {}).get("suppress_comment", "")
            assert len(reason) > 20 and reason != "No comment provided", (check["check_id"], check["resource"])

    def test_every_workload_pod_is_scanned(self, scenario: str, checkov_results: dict[str, Any]) -> None:
        """The KubernetesExecutor pod template is scanned like the other pods."""
        scanned = {c["resource"].split(".")[-1] for o in ("passed", "failed") for c in checkov_results[scenario][o]}
        names = {w["metadata"]["name"] for w in workloads(render_scenario(scenario))}
        assert names <= scanned
