"""The task pod Airflow's own KubernetesExecutor code builds from the chart's pod template.

`PodGenerator.construct_pod` (what the executor calls) merges the rendered pod template, the
dynamic part (the workload's args) and the task's pod override (dagfleet.service.taskpod). The result must
start `dagfleet task --` with Airflow's args, carry the parsed config, skip the database wait and
hold no secret of Airflow or the config API.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dagfleet.authoring.podoverride import ENV_VAR, task_defaults
from dagfleet.fleet.store import Record
from support.chart import render_chart

ARGS = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", '{"kind": "ExecuteTask"}']


def built_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict | None = None) -> dict:
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient

    docs = render_chart({"executor": "KubernetesExecutor", "configApi": {"url": "https://c.example", "apiKey": "k"},
                         **(values or {})})  # fmt: skip
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-pod-template")]
    template = tmp_path / "pod_template_file.yaml"
    template.write_text(config_map["data"]["pod_template_file.yaml"])

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "KubernetesExecutor")
    raw = {"tags": ["t"], "items": ["a"]}
    override = task_defaults("wf", Record("wf", raw, "demo"), b"# the generated DAG file\n")["executor_config"][
        "pod_override"
    ]

    pod = PodGenerator.construct_pod(
        dag_id="wf", task_id="summarize", pod_id="wf-summarize-x", try_number=1, kube_image="dagfleet:test",
        date=None, args=ARGS, pod_override_object=override,
        base_worker_pod=PodGenerator.deserialize_model_file(str(template)), namespace="dagfleet",
        scheduler_job_id="1", run_id="manual__1", map_index=-1,
    )  # fmt: skip
    return ApiClient().sanitize_for_serialization(pod)


def test_airflow_builds_a_task_pod_that_runs_dagfleet_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = built_pod(tmp_path, monkeypatch)
    (base,) = pod["spec"]["containers"]
    assert base["command"] == ["dumb-init", "--", "dagfleet", "task", "--"]
    assert base["args"] == ARGS
    env = {e["name"]: e.get("value") for e in base["env"]}
    payload = json.loads(env[ENV_VAR])
    assert (payload["workflow_id"], payload["record"]["config"]) == ("wf", {"tags": ["t"], "items": ["a"]})
    assert env["CONNECTION_CHECK_MAX_COUNT"] == "0"
    assert not {"DAGFLEET_API_URL", "DAGFLEET_API_KEY_FILE"} & env.keys()
    assert not [name for name in env if name.endswith("_CMD")]
    assert {v["name"] for v in pod["spec"]["volumes"]} == {"dags", "logs", "tmp", "airflow-config"}
    assert yaml.safe_dump(pod)  # a plain, serializable Pod


def test_sync_fallback_keeps_the_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = built_pod(tmp_path, monkeypatch, {"workers": {"syncFallback": True}})
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert ENV_VAR in env
    assert env["DAGFLEET_API_KEY_FILE"] == "/var/run/secrets/dagfleet/api-key"
