"""The Kubernetes API stand-in over HTTPS, through the official kubernetes client (no release needed).

Its answers the scenarios do not reach: discovery for the DynamicClient, 401 without a token, 403 from
the rendered RBAC and for an unknown ServiceAccount, 409 for a taken name, `generateName`, a pod
whose Secret key is missing (Pending, CreateContainerConfigError, a Warning event, logs refused),
pods/status, 415 for a JSON patch, and a watch replaying a deletion from a resourceVersion. The
pods here never start a container (their Secret key is missing), so it takes seconds.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi import KubeApi
from kubelet import Kubelet
from kubernetes import client, watch
from kubernetes.dynamic import DynamicClient

from support.wait import wait_until

pytestmark = pytest.mark.harness

NS = "dagfleet"
POD_VERBS = ["create", "get", "list", "watch", "patch", "delete"]
RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": POD_VERBS},
    {"apiGroups": [""], "resources": ["pods/log", "pods/status"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
]
DOCS = [
    {"kind": "ServiceAccount", "metadata": {"name": "launcher", "namespace": NS}},
    {"kind": "Role", "metadata": {"name": "launcher", "namespace": NS}, "rules": RULES},
    {"kind": "RoleBinding", "metadata": {"name": "launcher", "namespace": NS},
     "roleRef": {"kind": "Role", "name": "launcher"},
     "subjects": [{"kind": "ServiceAccount", "name": "launcher", "namespace": NS}]},
    {"kind": "Secret", "metadata": {"name": "creds", "namespace": NS}, "stringData": {"user": "u"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def api() -> Iterator[KubeApi]:
    workdir = Path(tempfile.mkdtemp(prefix="dagfleet-kubeapi-"))
    kubelet = Kubelet(DOCS, workdir / "pods", prefix=f"dfh-kubeapi-{os.getpid()}")
    server = KubeApi(kubelet, workdir / "kubeapi").start()
    try:
        yield server
    finally:
        server.close()
        kubelet.close()


def core(api: KubeApi, account: str | None = "launcher") -> client.CoreV1Api:
    configuration = client.Configuration(host=f"https://{api.host}:{api.port}")
    ca = api.root / "ca.crt"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_bytes(api.ca.cert_pem.bytes())
    configuration.ssl_ca_cert = str(ca)
    token = next((t for t, owner in api.tokens.items() if owner == (NS, account)), "not-a-token")
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.CoreV1Api(client.ApiClient(configuration))


def unstartable(name: str = "", generate: str = "", account: str = "launcher") -> dict:
    """A pod whose env names a key its Secret does not have: it stays Pending, no container runs."""
    env = [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}]
    meta = {"name": name} if name else {"generateName": generate}
    return {"metadata": {**meta, "labels": {"app": "t"}},
            "spec": {"serviceAccountName": account, "restartPolicy": "Never",
                     "containers": [{"name": "base", "image": "never-pulled:1", "env": env}]}}  # fmt: skip


def status(call: object) -> int:
    with pytest.raises(client.ApiException) as raised:
        call()  # type: ignore[operator]
    return int(raised.value.status)


def test_discovery_finds_pods_for_the_dynamic_client(api: KubeApi) -> None:
    pods = DynamicClient(core(api).api_client).resources.get(api_version="v1", kind="Pod")
    assert (pods.kind, pods.namespaced) == ("Pod", True)


def test_who_may_do_what(api: KubeApi) -> None:
    assert status(lambda: core(api, None).list_namespaced_pod(NS)) == 401
    assert status(lambda: core(api).list_namespaced_pod("elsewhere")) == 403
    assert status(lambda: core(api).list_namespaced_secret(NS)) == 404  # no such resource here
    assert status(lambda: core(api, "default").list_namespaced_pod(NS)) == 403  # nothing bound to it
    assert status(lambda: core(api).create_namespaced_pod(NS, unstartable("x", account="nobody"))) == 403


def test_a_pod_with_a_missing_key_stays_pending_and_says_why(api: KubeApi) -> None:
    v1 = core(api)
    v1.create_namespaced_pod(NS, unstartable("missing-key"))
    assert status(lambda: v1.create_namespaced_pod(NS, unstartable("missing-key"))) == 409
    generated = v1.create_namespaced_pod(NS, unstartable(generate="gen-"))
    assert generated.metadata.name.startswith("gen-")

    def waiting() -> client.V1ContainerStateWaiting | None:
        statuses = v1.read_namespaced_pod_status("missing-key", NS).status.container_statuses
        return statuses[0].state.waiting if statuses else None

    state = wait_until("the kubelet side to report the pod", waiting, 30, every=0.5)
    assert state.reason == "CreateContainerConfigError"
    assert state.message == f"couldn't find key password in Secret {NS}/creds"
    assert v1.read_namespaced_pod("missing-key", NS).status.phase == "Pending"
    events = v1.list_namespaced_event(NS, field_selector="involvedObject.name=missing-key").items
    assert ("Warning", "Failed") in {(e.type, e.reason) for e in events}
    assert status(lambda: v1.read_namespaced_pod_log("missing-key", NS)) == 400
    assert status(lambda: v1.patch_namespaced_pod("missing-key", NS, [{"op": "add", "path": "/x", "value": 1}])) == 415


def test_a_watch_from_a_resource_version_sees_the_deletion(api: KubeApi) -> None:
    v1 = core(api)
    created = v1.create_namespaced_pod(NS, unstartable("doomed"))
    v1.patch_namespaced_pod("doomed", NS, {"metadata": {"labels": {"checked": "True"}}})
    v1.delete_namespaced_pod("doomed", NS)
    events = watch.Watch().stream(
        v1.list_namespaced_pod, NS, label_selector="app=t,checked",
        resource_version=created.metadata.resource_version, timeout_seconds=10,
    )  # fmt: skip
    seen = []
    for event in events:
        seen.append((event["type"], event["object"].metadata.name, bool(event["object"].metadata.deletion_timestamp)))
        if event["type"] == "DELETED":
            break
    assert seen[0] == ("ADDED", "doomed", False)  # the patch brought it into the selector
    assert seen[-1] == ("DELETED", "doomed", True)
    assert status(lambda: v1.read_namespaced_pod("doomed", NS)) == 404
