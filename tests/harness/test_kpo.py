"""KubernetesPodOperator pods through the real provider code: one pod per item, each with its own secret set.

The workflow `kpo_items` (values/kubernetes.yaml: the demo template's `pod_per_item`, three items and
their secret sets, Secrets rendered by the chart's `workflowSecrets`) runs under the unmodified
KubernetesExecutor; each task pod's KubernetesPodOperator creates, follows (logs) and deletes its pod
through the harness's Kubernetes API (tests/harness/kubeapi.py). What reached each pod is read twice:
the container's environment and mounted files as Docker ran them, and the line the pod printed
(digests only) in Airflow's task log, read through the REST API. Then one item's key is removed from
its Secret: exactly that item's task fails, its pod left Pending with CreateContainerConfigError.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import yaml
from kubeapi import KubeApi
from release import HERE, Release

from support.wait import wait_until

pytestmark = [pytest.mark.harness, pytest.mark.scenarios("kubernetes")]

WORKFLOW = "kpo_items"
VALUES = yaml.safe_load((HERE / "values" / "kubernetes.yaml").read_text())
CONFIG = VALUES["referenceConfigApi"]["workflows"][WORKFLOW]
SECRETS = {s["name"]: {k: str(v) for k, v in s["data"].items()} for s in VALUES["workflowSecrets"]}
ITEMS = [item["name"] if isinstance(item, dict) else item for item in CONFIG["items"]]


def secret_set(item: str) -> list[dict[str, str]]:
    """The secret specs the config gives an item: its own set, else the default set."""
    named = {i["name"]: i.get("secret_set") for i in CONFIG["items"] if isinstance(i, dict)}
    return CONFIG["pod"]["secret_sets"][named.get(item) or CONFIG["pod"]["default_secret_set"]]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def expected_line(item: str) -> str:
    """What the item's pod prints about what reached it (values/kubernetes.yaml's command)."""
    specs = secret_set(item)
    (env,) = [SECRETS[s["secret"]][s["key"]] for s in specs if s["deploy_type"] == "env"]
    files = [SECRETS[s["secret"]] for s in specs if s["deploy_type"] == "volume"]
    listed = "".join(f"{name}:{digest(value)}," for data in files for name, value in sorted(data.items()))
    return f"kpo-seen item={item} password-sha256={digest(env)} files={listed} end"


def item_pods(kube: KubeApi, version: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The KubernetesPodOperator pods of pod_per_item created since `version`, by map index, once all are gone."""
    selector = f"kubernetes_pod_operator=True,dag_id={WORKFLOW},task_id=pod_per_item"

    def deleted() -> dict[str, list[tuple[str, dict[str, Any]]]] | None:  # on_finish_action=delete_pod
        pods = kube.pods_since(version, selector)
        return pods if pods and all(events[-1][0] == "DELETED" for events in pods.values()) else None

    pods = wait_until("the operator to delete its pods through the API", deleted, 120, every=2)
    return {events[0][1]["metadata"]["labels"]["map_index"]: events for events in pods.values()}


def what_reached(kube: KubeApi, pod: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The base container's environment and mounted files, as Docker ran it."""
    seen = kube.seen[pod["metadata"]["name"]]["base"]
    env = dict(entry.split("=", 1) for entry in seen["env"])
    return env, {path: files for path, files in seen["files"].items() if path == "/var/run/tenant"}


def task_log(release: Release, run_path: str, map_index: int) -> str:
    assert release.api is not None
    log = release.api.call("GET", f"{run_path}/taskInstances/pod_per_item/logs/1?map_index={map_index}")
    return json.dumps(log)


def run(release: Release) -> tuple[str, list[dict[str, Any]], int]:
    api, kube = release.api, release.kube
    assert api is not None and kube is not None

    def listed() -> bool:
        return WORKFLOW in {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}

    wait_until(f"the DAG {WORKFLOW}", listed, 600, every=5)
    version = kube.store.version
    path = api.trigger(WORKFLOW)
    api.wait_finished(path)
    return path, api.task_instances(path), version


@pytest.mark.timeout(1200)
def test_each_item_pod_gets_exactly_its_secret_set(release: Release) -> None:
    kube = release.kube
    assert kube is not None
    path, tis, version = run(release)
    summary = sorted((t["task_id"], t["map_index"], t["state"]) for t in tis)
    assert {t["state"] for t in tis} == {"success"}, summary
    pods = item_pods(kube, version)
    assert sorted(pods) == [str(i) for i in range(len(ITEMS))], summary
    everything = {value for data in SECRETS.values() for value in data.values()}
    for index, item in enumerate(ITEMS):
        events = pods[str(index)]
        env, files = what_reached(kube, events[0][1])
        specs = secret_set(item)
        assert env["DAGFLEET_ITEM"] == item
        (password,) = [SECRETS[s["secret"]][s["key"]] for s in specs if s["deploy_type"] == "env"]
        assert env["TENANT_PASSWORD"] == password
        assert everything & set(env.values()) == {password}, item  # no other item's secret
        volumes = {s["deploy_target"]: SECRETS[s["secret"]] for s in specs if s["deploy_type"] == "volume"}
        assert files == volumes, item
        assert expected_line(item) in task_log(release, path, index), item
    calls = {(account, verb, resource) for account, verb, resource in kube.calls}
    assert {("dagfleet-worker", verb, r) for verb, r in [("create", "pods"), ("get", "pods/log")]} <= calls


@pytest.mark.timeout(1200)
def test_an_item_whose_secret_key_is_gone_fails_alone(release: Release) -> None:
    kube = release.kube
    assert kube is not None
    blue = ITEMS.index("blue")
    (spec,) = [s for s in secret_set("blue") if s["deploy_type"] == "env"]
    removed = release.kubelet.secrets[spec["secret"]].pop(spec["key"])
    try:
        _path, tis, version = run(release)
    finally:
        release.kubelet.secrets[spec["secret"]][spec["key"]] = removed
    failed = {(t["task_id"], t["map_index"]) for t in tis if t["state"] != "success"}
    assert failed == {("pod_per_item", blue)}, sorted((t["task_id"], t["map_index"], t["state"]) for t in tis)
    pods = item_pods(kube, version)
    statuses = [obj["status"] for _, obj in pods[str(blue)]]
    assert {s["phase"] for s in statuses} == {"Pending"}
    waiting = [c["state"].get("waiting", {}) for s in statuses for c in s.get("containerStatuses") or []]
    reason = f"couldn't find key {spec['key']} in Secret dagfleet/{spec['secret']}"
    assert {"reason": "CreateContainerConfigError", "message": reason} in waiting
