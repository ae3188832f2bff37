"""A stand-in Kubernetes API server for the harness: the core/v1 calls of Airflow's cncf.kubernetes provider.

The unmodified KubernetesExecutor (its own start, sync, pod watcher, `_create_pods_sequentially`,
adoption) and KubernetesPodOperator/PodManager reach it through the official kubernetes client with
the chart's in-cluster settings: the kubelet side gives every pod KUBERNETES_SERVICE_HOST/PORT and,
unless `automountServiceAccountToken` is false, its ServiceAccount's token, ca.crt and namespace at
/var/run/secrets/kubernetes.io/serviceaccount. HTTPS (a CA made by trustme) on the host's address on
the release's Docker network; state in memory; pods run by the harness's Kubelet (tests/harness/kubelet.py).

Served (docs/harness.md, "The KubernetesExecutor and KubernetesPodOperator pods"):
* discovery: /version, /api, /apis, /api/v1 (what the provider's DynamicClient asks);
* pods: create, get, list and watch (labelSelector: =, ==, !=, in, notin, key, !key; fieldSelector:
  =, ==, != on any field path; resourceVersion, timeoutSeconds; PartialObjectMetadataList when the
  Accept header asks), patch (merge patch), delete (MODIFIED with deletionTimestamp, then DELETED);
  pods/log (container, follow, timestamps, sinceSeconds, tailLines); pods/status (get);
* events: list and watch (fieldSelector), written by the kubelet side (Scheduled, Started, Failed);
* a bearer token per ServiceAccount, every request authorized by the rendered Roles and RoleBindings.
Not served: other resources and verbs, exec/attach/port-forward, json-patch and apply, bookmarks,
410 Gone (the whole history is kept), ClusterRoles, admission other than the ServiceAccount volume.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from kubelet import Kubelet, container_status, docker, inspect, pod_phase

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
ROUTE = re.compile(
    r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<resource>pods|events)(?:/(?P<name>[^/]+))?(?:/(?P<sub>log|status))?$"
)
DISCOVERY = {
    "/version": {"major": "1", "minor": "33", "gitVersion": "v1.33.0-dagfleet-harness", "platform": "linux/amd64"},
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
             "verbs": ["create", "delete", "get", "list", "patch", "watch"]},
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "pods/status", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "events", "singularName": "event", "namespaced": True, "kind": "Event",
             "verbs": ["list", "watch"]},
        ],
    },
}  # fmt: skip
SELECTOR = re.compile(r"\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*")
FIELD = re.compile(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message, "reason": reason, "code": code}  # fmt: skip


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def requirements(selector: str | None) -> list[str]:
    """A selector's requirements: split on the commas outside `in (…)` lists."""
    parts, depth, current = [], 0, ""
    for char in selector or "":
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts, current = [*parts, current], ""
        else:
            current += char
    return [part for part in [*parts, current] if part.strip()]


def labels_match(selector: str | None, labels: dict[str, str]) -> bool:
    for requirement in requirements(selector):
        match = SELECTOR.fullmatch(requirement)
        if match is None:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {requirement!r}")
        negated, key, op, value, set_op, members = match.groups()
        if op:
            ok = (labels.get(key) == value) == (op != "!=")
        elif set_op:
            ok = (labels.get(key) in {m.strip() for m in members.split(",")}) == (set_op == "in")
        else:
            ok = (key in labels) != bool(negated)
        if not ok:
            return False
    return True


def fields_match(selector: str | None, obj: dict[str, Any]) -> bool:
    for requirement in requirements(selector):
        match = FIELD.fullmatch(requirement)
        if match is None:
            raise ApiError(400, "BadRequest", f"invalid field selector: {requirement!r}")
        path, op, value = match.groups()
        found: Any = obj
        for part in path.split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if (("" if found is None else str(found)) == value) != (op != "!="):
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (for the maps the provider patches, the same as a strategic merge)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Store:
    """Objects by (kind, namespace, name), one resourceVersion counter, every change kept for watches."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.history: list[tuple[str, str, dict[str, Any]]] = []  # (kind, event, object); index = version - 1
        self.changed = threading.Condition()
        self.closed = False

    @property
    def version(self) -> int:
        return len(self.history)

    def put(self, kind: str, obj: dict[str, Any], event: str) -> dict[str, Any]:
        with self.changed:
            obj["metadata"]["resourceVersion"] = str(self.version + 1)
            key = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            if event == "DELETED":
                self.objects.pop(key, None)
            else:
                self.objects[key] = obj
            self.history.append((kind, event, copy.deepcopy(obj)))
            self.changed.notify_all()
            return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        with self.changed:
            found = self.objects.get((kind, namespace, name))
            return copy.deepcopy(found) if found else None

    def update(self, kind: str, namespace: str, name: str, change: Callable[[dict], None]) -> dict[str, Any] | None:
        with self.changed:
            current = self.get(kind, namespace, name)
            if current is None:
                return None
            before = copy.deepcopy(current)
            change(current)
            return self.put(kind, current, "MODIFIED") if current != before else current

    def select(self, kind: str, namespace: str | None, selects: Callable[[dict], bool]) -> list[dict[str, Any]]:
        with self.changed:
            found = [o for (k, ns, _), o in self.objects.items() if k == kind and namespace in (None, ns)]
            return [copy.deepcopy(o) for o in found if selects(o)]

    def objects_at(self, version: int) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The objects as they were at `version` (replayed from the history)."""
        objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind, event, obj in self.history[:version]:
            key = (kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            if event == "DELETED":
                objects.pop(key, None)
            else:
                objects[key] = obj
        return objects

    def watch(self, kind: str, namespace: str | None, selects: Callable[[dict], bool], since: int | None,
              timeout: float) -> Iterator[tuple[str, dict[str, Any]]]:  # fmt: skip
        """Events after `since` (None: ADDED for every object now, then changes), as a watch sees them."""
        deadline = time.monotonic() + timeout
        with self.changed:
            cursor = self.version if since is None else min(since, self.version)
            then = self.objects_at(cursor)
        current = [o for (k, ns, _), o in then.items() if k == kind and namespace in (None, ns) and selects(o)]
        for obj in current if since is None else []:
            yield "ADDED", obj
        matched = {o["metadata"]["name"] for o in current}
        while not self.closed and time.monotonic() < deadline:
            with self.changed:
                self.changed.wait_for(lambda after=cursor: self.version > after or self.closed, timeout=1)
                batch, cursor = self.history[cursor:], self.version
            for event_kind, event, obj in batch:
                if event_kind != kind or namespace not in (None, obj["metadata"]["namespace"]):
                    continue
                name, was, now_in = obj["metadata"]["name"], obj["metadata"]["name"] in matched, selects(obj)
                if event == "DELETED" or (was and not now_in):
                    matched.discard(name)
                    if was:
                        yield "DELETED", obj
                elif now_in:
                    matched.add(name)
                    yield ("MODIFIED" if was else "ADDED"), obj


def reached(info: dict[str, Any]) -> dict[str, Any]:
    """What reached a container: its environment and the top-level files of each mounted folder."""
    files = {
        mount["Destination"]: {p.name: p.read_text(errors="replace") for p in Path(mount["Source"]).iterdir()
                               if p.is_file() and p.stat().st_size < 65536}
        for mount in info["Mounts"]
        if Path(mount["Source"]).is_dir()
    }  # fmt: skip
    return {"env": info["Config"]["Env"], "mounts": info["Mounts"], "files": files}


def condition(kind: str, true: bool = True) -> dict[str, str]:
    return {"type": kind, "status": "True" if true else "False", "lastTransitionTime": now()}


def object_list(kind: str, items: list[dict[str, Any]], version: int, partial: bool) -> dict[str, Any]:
    meta = {"resourceVersion": str(version)}
    if partial:  # what `Accept: application/json;as=PartialObjectMetadataList;…` asks for
        items = [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": i["metadata"]}
                 for i in items]  # fmt: skip
        return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}
    return {"kind": f"{kind}List", "apiVersion": "v1", "metadata": meta, "items": items}


def granted_rules(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(account namespace, account name, namespace) -> the rules the rendered RoleBindings grant it there."""
    roles = {(d["metadata"]["namespace"], d["metadata"]["name"]): d.get("rules") or [] for d in docs
             if d["kind"] == "Role"}  # fmt: skip
    granted: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for binding in (d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "Role"):
        namespace = binding["metadata"]["namespace"]
        for subject in binding.get("subjects") or []:
            if subject["kind"] == "ServiceAccount":
                key = (subject.get("namespace", namespace), subject["name"], namespace)
                granted[key] = granted.get(key, []) + roles.get((namespace, binding["roleRef"]["name"]), [])
    return granted


def allows(rule: dict[str, Any], resource: str, verb: str) -> bool:
    return (
        bool({"", "*"} & set(rule.get("apiGroups") or []))
        and bool({resource, "*"} & set(rule.get("resources") or []))
        and bool({verb, "*"} & set(rule.get("verbs") or []))
    )


def gateway(network: str) -> str:
    """The host's address on a Docker network: where the network's containers reach the host."""
    return docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", network).stdout.strip()


def flag(query: dict[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")  # the client sends Python's True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    api: KubeApi

    def do_GET(self) -> None:
        self.api.serve(self, "GET")

    def do_POST(self) -> None:
        self.api.serve(self, "POST")

    def do_PATCH(self) -> None:
        self.api.serve(self, "PATCH")

    def do_DELETE(self) -> None:
        self.api.serve(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: KubeApi.calls records who called what

    def json_body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw) if raw else None
        except ValueError as err:
            raise ApiError(400, "BadRequest", f"the body is not JSON: {err}") from err

    def send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def stream(self, chunks: Iterator[bytes], content_type: str) -> None:
        """A chunked response, one chunk per item, for watches and followed logs."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away
            self.close_connection = True


class KubeApi:
    """The API server of one release: accounts and RBAC from its rendered objects, pods run by its Kubelet."""

    MAX_WATCH = 120.0  # seconds a watch stays open at most (a real server: --min-request-timeout, 30-60 min)

    def __init__(self, kubelet: Kubelet, root: Path) -> None:
        self.kubelet, self.root, self.namespace = kubelet, root, kubelet.namespace
        self.store = Store()
        self.host = gateway(kubelet.network)
        self.port = 0
        self.ca = trustme.CA()
        accounts = [(d["metadata"].get("namespace", self.namespace), d["metadata"]["name"], d)
                    for d in kubelet.docs if d["kind"] == "ServiceAccount"]  # fmt: skip
        self.accounts = {(ns, name): doc for ns, name, doc in accounts}
        self.accounts.setdefault((self.namespace, "default"), {"metadata": {"name": "default"}})
        self.tokens = {secrets.token_urlsafe(32): account for account in self.accounts}
        self.rules = granted_rules(kubelet.docs)
        self.calls: list[tuple[str, str, str]] = []  # (service account, verb, resource), in order
        self.seen: dict[str, dict[str, dict[str, Any]]] = {}  # pod -> container -> its Docker Env and Mounts
        self.addresses: dict[str, str] = {}  # pod -> its IP address on the network
        self.created: set[str] = set()  # the names of the pods created through the API
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    # ---------- the server ----------
    def start(self) -> KubeApi:
        cert = self.ca.issue_cert(self.host, "kubernetes", "kubernetes.default", "kubernetes.default.svc")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.server = ThreadingHTTPServer((self.host, 0), type("KubeApiHandler", (Handler,), {"api": self}))
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, name="kubeapi", daemon=True).start()
        return self

    def close(self) -> None:
        """Stop serving; remove the API's pods (so no pod thread is left waiting on a container)."""
        for name in [name for name in list(self.kubelet.pods) if name in self.created]:
            self.kubelet.remove_pod(name)
        with self.store.changed:
            self.store.closed = True
            self.store.changed.notify_all()
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def serve(self, request: Handler, method: str) -> None:
        url = urlsplit(request.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            body = request.json_body()
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            account = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
            if account is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if method == "GET" and url.path in DISCOVERY:
                request.send_json(200, DISCOVERY[url.path])
                return
            route = ROUTE.match(url.path)
            if route is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self.dispatch(request, method, account, route, query, body)
        except ApiError as err:
            request.send_json(err.body["code"], err.body)

    def authorize(self, account: tuple[str, str], namespace: str | None, resource: str, verb: str) -> None:
        rules = self.rules.get((*account, namespace or ""), [])
        if not any(allows(rule, resource, verb) for rule in rules):
            where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
            user = f"system:serviceaccount:{account[0]}:{account[1]}"
            message = (
                f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group ""{where}'
            )
            raise ApiError(403, "Forbidden", message)

    def dispatch(self, request: Handler, method: str, account: tuple[str, str], route: re.Match[str],
                 query: dict[str, str], body: Any) -> None:  # fmt: skip
        namespace, resource, name, sub = route.group("ns", "resource", "name", "sub")
        collection = "watch" if flag(query, "watch") else "list"
        verb = {"POST": "create", "PATCH": "patch", "DELETE": "delete"}.get(method) or ("get" if name else collection)
        full = f"{resource}/{sub}" if sub else resource
        self.authorize(account, namespace, full, verb)
        self.calls.append((account[1], verb, full))
        kind = "Pod" if resource == "pods" else "Event"
        if verb in ("list", "watch"):
            self.list_or_watch(request, kind, namespace, query, verb == "watch")
            return
        if kind != "Pod" or (verb == "create") != (name is None):
            raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {full} here")
        if verb == "create":
            request.send_json(201, self.create_pod(namespace, body or {}))
            return
        pod = self.store.get("Pod", namespace, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found')
        if sub == "log":
            self.stream_log(request, pod, query)
        elif verb == "get":
            request.send_json(200, pod)
        elif verb == "patch":
            request.send_json(200, self.patch_pod(pod, body, request.headers.get("Content-Type", "")))
        else:
            request.send_json(200, self.delete_pod(pod))

    def list_or_watch(self, request: Handler, kind: str, namespace: str | None, query: dict[str, str],
                      watching: bool) -> None:  # fmt: skip
        def selects(obj: dict[str, Any]) -> bool:
            labels = obj["metadata"].get("labels") or {}
            return labels_match(query.get("labelSelector"), labels) and fields_match(query.get("fieldSelector"), obj)

        selects({"metadata": {}})  # a selector that does not parse fails here, before any answer
        if not watching:
            partial = "as=PartialObjectMetadataList" in request.headers.get("Accept", "")
            items = self.store.select(kind, namespace, selects)
            request.send_json(200, object_list(kind, items, self.store.version, partial))
            return
        version = query.get("resourceVersion") or "0"
        since = int(version) if version.isdigit() and version != "0" else None
        timeout = min(float(query.get("timeoutSeconds") or self.MAX_WATCH), self.MAX_WATCH)
        events = self.store.watch(kind, namespace, selects, since, timeout)
        request.stream((json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in events), "application/json")

    # ---------- pods ----------
    def create_pod(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or f"{meta.get('generateName', 'pod-')}{secrets.token_hex(3)}"
        if len(name) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name):
            raise ApiError(422, "Invalid", f'Pod "{name}" is invalid: metadata.name: Invalid value: "{name}"')
        if self.store.get("Pod", namespace, name):
            raise ApiError(409, "AlreadyExists", f'pods "{name}" already exists')
        spec = body.get("spec") or {}
        account = (namespace, spec.setdefault("serviceAccountName", "default"))
        if account not in self.accounts:
            message = f'serviceaccount "{account[1]}" not found'
            raise ApiError(403, "Forbidden", f'pods "{name}" is forbidden: error looking up service account: {message}')
        spec.setdefault("restartPolicy", "Always")
        spec["nodeName"] = "harness"
        meta.update(name=name, namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now())
        meta.setdefault("labels", {})
        meta.setdefault("annotations", {})
        status = {"phase": "Pending", "conditions": [condition("PodScheduled")]}
        body.update(kind="Pod", apiVersion="v1", spec=self.admit(spec, account), status=status)
        created = self.store.put("Pod", body, "ADDED")
        self.created.add(name)
        threading.Thread(target=self.run_pod, args=(created,), name=f"pod-{name}", daemon=True).start()
        return created

    def patch_pod(self, pod: dict[str, Any], patch: Any, content_type: str) -> dict[str, Any] | None:
        if not isinstance(patch, dict) or "merge-patch" not in content_type:
            raise ApiError(415, "UnsupportedMediaType", f"only merge patches are served here, not {content_type}")
        meta = pod["metadata"]
        return self.store.update("Pod", meta["namespace"], meta["name"], lambda p: p.update(merge_patch(p, patch)))

    def delete_pod(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        """Graceful in form (MODIFIED with deletionTimestamp, then DELETED); the containers are killed at once."""
        meta = pod["metadata"]
        marked = self.store.update(
            "Pod", meta["namespace"], meta["name"],
            lambda p: p["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=0),
        )  # fmt: skip
        threading.Thread(target=self.finish_deletion, args=(meta["namespace"], meta["name"]), daemon=True).start()
        return marked

    def finish_deletion(self, namespace: str, name: str) -> None:
        self.kubelet.remove_pod(name)
        with self.store.changed:
            current = self.store.get("Pod", namespace, name)
            if current is not None:
                self.store.put("Pod", current, "DELETED")

    def stream_log(self, request: Handler, pod: dict[str, Any], query: dict[str, str]) -> None:
        spec, name = pod["spec"], pod["metadata"]["name"]
        containers = [c["name"] for c in [*(spec.get("initContainers") or []), *spec["containers"]]]
        container = query.get("container") or (containers[0] if len(spec["containers"]) == 1 else "")
        if container not in containers:
            raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}: {containers}")
        started = self.kubelet.pods.get(name)
        docker_name = f"{started.name}-{container}" if started else ""
        if not started or inspect(docker_name) is None:
            message = f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            raise ApiError(400, "BadRequest", message)
        args = ["docker", "logs", *(["--follow"] if flag(query, "follow") else [])]
        args += ["--timestamps"] if flag(query, "timestamps") else []
        args += ["--since", f"{query['sinceSeconds']}s"] if query.get("sinceSeconds") else []
        args += ["--tail", query["tailLines"]] if query.get("tailLines") else []
        process = subprocess.Popen([*args, docker_name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def chunks() -> Iterator[bytes]:
            assert process.stdout is not None
            yield from iter(lambda: process.stdout.read1(65536), b"")  # type: ignore[union-attr]
            if flag(query, "follow"):  # the container ended: say so before the log does (as a kubelet would)
                self.refresh(pod)

        try:
            request.stream(chunks(), "text/plain")
        finally:
            process.kill()
            process.wait()

    # ---------- what the ServiceAccount admission and the kubelet add ----------
    def admit(self, spec: dict[str, Any], account: tuple[str, str]) -> dict[str, Any]:
        """The ServiceAccount admission: the projected token volume, mounted in every container."""
        own = spec.get("automountServiceAccountToken")
        default = (self.accounts.get(account) or {}).get("automountServiceAccountToken")
        if (own if own is not None else default) is False:
            return spec
        volume = f"kube-api-access-{secrets.token_hex(3)[:5]}"
        sources = [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
        ]
        projected = {"name": volume, "projected": {"defaultMode": 0o644, "sources": sources}}
        spec["volumes"] = [*(spec.get("volumes") or []), projected]
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            mounts = container.setdefault("volumeMounts", [])
            if not any(m["mountPath"] == SA_MOUNT for m in mounts):
                mounts.append({"name": volume, "mountPath": SA_MOUNT, "readOnly": True})
        return spec

    def kubelet_spec(self, spec: dict[str, Any], namespace: str) -> dict[str, Any]:
        """What the kubelet makes of a pod spec: the token volume as files, claims as shared folders, the API's env."""
        spec = copy.deepcopy(spec)
        account = (namespace, spec.get("serviceAccountName") or "default")
        volumes = []
        for volume in spec.get("volumes") or []:
            sources = (volume.get("projected") or {}).get("sources") or []
            if any("serviceAccountToken" in source for source in sources):
                volume = {"name": volume["name"], "hostPath": str(self.token_folder(account))}
            elif "persistentVolumeClaim" in volume:
                folder = self.folder("claims", volume["persistentVolumeClaim"]["claimName"], 0o777)
                volume = {"name": volume["name"], "hostPath": str(folder)}
            volumes.append(volume)
        spec["volumes"] = volumes
        env = [{"name": "KUBERNETES_SERVICE_HOST", "value": self.host},
               {"name": "KUBERNETES_SERVICE_PORT", "value": str(self.port)}]  # fmt: skip
        for container in [*(spec.get("initContainers") or []), *spec["containers"]]:
            container["env"] = [*env, *(container.get("env") or [])]
        return spec

    def folder(self, kind: str, name: str, mode: int) -> Path:
        path = self.root / kind / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        return path

    def token_folder(self, account: tuple[str, str]) -> Path:
        """The files of the projected token volume: token, ca.crt, namespace (readable by the pod's user)."""
        with self.lock:
            path = self.folder("serviceaccounts", f"{account[0]}.{account[1]}", 0o755)
            token = next(token for token, owner in self.tokens.items() if owner == account)
            for name, text in (
                ("token", token),
                ("ca.crt", self.ca.cert_pem.bytes().decode()),
                ("namespace", account[0]),
            ):
                (path / name).write_text(text)
                (path / name).chmod(0o644)
            return path

    def admit_workloads(self) -> None:
        """Admission and kubelet additions for the rendered workloads' pods (started by the harness, not the API)."""
        for doc in self.kubelet.docs:
            holder = doc if doc["kind"] == "Pod" else (doc.get("spec") or {}).get("template")
            if doc["kind"] not in ("Pod", "Deployment", "StatefulSet", "Job", "DaemonSet") or not holder:
                continue
            namespace = doc["metadata"].get("namespace", self.namespace)
            account = (namespace, holder["spec"].get("serviceAccountName") or "default")
            holder["spec"] = self.kubelet_spec(self.admit(copy.deepcopy(holder["spec"]), account), namespace)

    # ---------- the kubelet side of API pods ----------
    def run_pod(self, pod: dict[str, Any]) -> None:
        """Start the pod's containers with the harness's Kubelet and report their state, until they end."""
        meta, spec = pod["metadata"], pod["spec"]
        self.event(pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to harness")
        problem = self.kubelet.missing_reference(spec)
        if problem:
            statuses = [container_status(c, None) for c in spec["containers"]]
            for status in statuses:
                status["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": problem}}
            self.store.update("Pod", meta["namespace"], meta["name"], lambda p: p["status"].update(
                containerStatuses=statuses))  # fmt: skip
            self.event(pod, "Warning", "Failed", f"Error: {problem}")
            return
        try:
            started = self.kubelet.start_pod(
                meta["name"], {"metadata": meta, "spec": self.kubelet_spec(spec, meta["namespace"])}
            )
            self.addresses[meta["name"]] = self.kubelet.ip(started)
        except Exception as err:  # noqa: BLE001 - an init container failed or Docker refused: the pod failed
            message = str(err)[-1000:]
            self.store.update("Pod", meta["namespace"], meta["name"], lambda p: p["status"].update(
                phase="Failed", reason="Error", message=message))  # fmt: skip
            self.event(pod, "Warning", "Failed", message)
            return
        self.refresh(pod)
        self.event(pod, "Normal", "Started", f"Started containers {[c['name'] for c in spec['containers']]}")
        for container in spec["containers"]:
            docker("wait", f"{started.name}-{container['name']}", timeout=24 * 3600, check=False)
        self.refresh(pod)

    def refresh(self, pod: dict[str, Any]) -> None:
        """The pod's status from its containers' Docker state; what each container saw is kept in `seen`."""
        meta, spec = pod["metadata"], pod["spec"]
        started = self.kubelet.pods.get(meta["name"])
        infos = {c["name"]: inspect(f"{started.name}-{c['name']}") if started else None for c in spec["containers"]}
        self.seen.setdefault(meta["name"], {}).update({name: reached(i) for name, i in infos.items() if i})
        statuses = [container_status(c, infos[c["name"]]) for c in spec["containers"]]
        ready = all(s["ready"] for s in statuses)
        conditions = [condition("PodScheduled"), condition("Initialized"), condition("ContainersReady", ready),
                      condition("Ready", ready)]  # fmt: skip

        def change(current: dict[str, Any]) -> None:
            if current["metadata"].get("deletionTimestamp"):
                return  # being deleted: its containers are going away, the last status stays
            address = self.addresses.get(meta["name"])
            current["status"].update(phase=pod_phase(statuses), podIP=address, hostIP=self.host,
                                     containerStatuses=statuses, conditions=conditions)  # fmt: skip
            current["status"].setdefault("startTime", now())

        self.store.update("Pod", meta["namespace"], meta["name"], change)

    def event(self, pod: dict[str, Any], kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        involved = {"kind": "Pod", "apiVersion": "v1", "namespace": meta["namespace"], "name": meta["name"],
                    "uid": meta["uid"]}  # fmt: skip
        event = {"kind": "Event", "apiVersion": "v1", "involvedObject": involved, "reason": reason,
                 "message": message, "type": kind, "count": 1, "firstTimestamp": now(), "lastTimestamp": now(),
                 "source": {"component": "kubelet", "host": "harness"},
                 "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"],
                              "uid": str(uuid.uuid4()), "creationTimestamp": now()}}  # fmt: skip
        self.store.put("Event", event, "ADDED")

    # ---------- for the tests ----------
    def pods_since(self, version: int, selector: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Each pod created after resourceVersion `version` whose labels match, with every event it had."""
        with self.store.changed:
            history = self.store.history[version:]
        pods: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for kind, event, obj in history:
            name, labels = obj["metadata"]["name"], obj["metadata"].get("labels") or {}
            if kind == "Pod" and (name in pods or (event == "ADDED" and labels_match(selector, labels))):
                pods.setdefault(name, []).append((event, obj))
        return pods
