"""One release of the chart under the harness's kubelet: render, start in dependency order, stop.

Shared by every harness test module (tests/harness/conftest.py keeps one release running at a
time and hands it to the tests of its scenario). A scenario is a values file in `values/`, layered
on `values/common.yaml` and the locally built images.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubeapi import KubeApi
from kubelet import REPO, Kubelet, docker, helm_template

from support.wait import wait_until

HERE = Path(__file__).parent
IMAGE = os.environ.get("DAGFLEET_TEST_IMAGE", "dagfleet:dev")
SERVICES_IMAGE = os.environ.get("HARNESS_SERVICES_IMAGE", "dagfleet-harness-services:bookworm")
READY_TIMEOUT = 900
RUN_TIMEOUT = 900


FLEET = HERE / "fleet"  # the harness's own workflows and templates, served beside the example workflows
TEMPLATES_CONFIG_MAP = "dagfleet-harness-templates"  # created beside the release, as a user would
# DAGFLEET_HARNESS_PREFIX: the start of every container and network name (several harness runs on one engine)
PREFIX = os.environ.get("DAGFLEET_HARNESS_PREFIX", "dfh")
# DAGFLEET_HARNESS_VALUES: more values files (os.pathsep-separated) layered on every scenario, last
EXTRA_VALUES = [Path(p) for p in os.environ.get("DAGFLEET_HARNESS_VALUES", "").split(os.pathsep) if p]


def fleet_values(workdir: Path) -> Path:
    """The config API serves the example workflows plus fleet/workflows.yaml from its ConfigMap
    (`referenceConfigApi.workflows`: edits reach it like `kubectl edit configmap`), and every
    syncing pod mounts the templates ConfigMap (`templates.configMap`, see `template_files`)."""
    examples = yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"]
    own = yaml.safe_load((FLEET / "workflows.yaml").read_text())["workflows"]
    values = {
        "referenceConfigApi": {"workflows": {**examples, **own}},
        "templates": {"configMap": TEMPLATES_CONFIG_MAP},
    }
    path = workdir / "fleet.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def template_files() -> dict[str, str]:
    """The data of the templates ConfigMap: fleet/templates/<name>.py and <name>.schema.json."""
    return {p.name: p.read_text() for p in sorted((FLEET / "templates").iterdir()) if p.is_file()}


def image_values(workdir: Path) -> Path:
    repository, tag = IMAGE.rsplit(":", 1)
    services_repository, services_tag = SERVICES_IMAGE.rsplit(":", 1)
    services = {"repository": services_repository, "tag": services_tag, "pullPolicy": "Never"}
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "postgresql": {"image": services},
        "redis": {"image": services},
        "pgbouncer": {"image": services},
    }
    path = workdir / "images.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


class Api:
    """The api-server's REST API, logged in with the password SimpleAuthManager generated."""

    def __init__(self, base: str, password_file: Path) -> None:
        self.base = base
        password = json.loads(password_file.read_text())["admin"]
        token = self.call("POST", "/auth/token", {"username": "admin", "password": password}, auth=False)
        self.token = token["access_token"]

    def call(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310 - container address
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Unpause `dag_id` and create a run; returns the run's API path."""
        self.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}"

    def wait_finished(self, run_path: str, timeout: float = RUN_TIMEOUT) -> str:
        def finished() -> str | None:
            state = self.call("GET", run_path)["state"]
            return state if state in ("success", "failed") else None

        return wait_until(f"{run_path} to finish", finished, timeout, every=5)

    def task_instances(self, run_path: str) -> list[dict[str, Any]]:
        return self.call("GET", f"{run_path}/taskInstances?limit=100")["task_instances"]


@dataclass
class Release:
    """A started release: its scenario, kubelet, work folder, REST API and (KubernetesExecutor) Kubernetes API."""

    scenario: str
    kubelet: Kubelet
    workdir: Path
    executor: str
    api: Api | None = None
    kube: KubeApi | None = None
    started: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        if self.kube:
            self.kube.close()
        print(f"harness {self.scenario}: {time.monotonic() - self.started:.0f} s")
        self.kubelet.close()


def workflow_values(own: Path, workdir: Path) -> list[Path]:
    """A scenario's own workflows (`referenceConfigApi.workflows`) beside the example ones, pods on the local image."""
    workflows = ((yaml.safe_load(own.read_text()) or {}).get("referenceConfigApi") or {}).get("workflows") or {}
    if not workflows:
        return []
    examples = yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"]
    images = {name: {"pod": {"image": IMAGE}} for name, config in workflows.items() if "pod" in config}
    path = workdir / "workflows.yaml"
    path.write_text(yaml.safe_dump({"referenceConfigApi": {"workflows": {**examples, **images}}}))
    return [path]


def render(scenario: str) -> Release:
    """`helm template` of the scenario's values, ready for the kubelet (nothing started yet)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"dagfleet-harness-{scenario}-"))
    workdir.chmod(0o755)
    own = HERE / "values" / f"{scenario}.yaml"
    executor = (yaml.safe_load(own.read_text()) or {}).get("executor", "LocalExecutor")
    values = [HERE / "values" / "common.yaml", own, image_values(workdir), fleet_values(workdir)]
    values += [*workflow_values(own, workdir), *EXTRA_VALUES]
    kubelet = Kubelet(helm_template(values), workdir / "pods", prefix=f"{PREFIX}-{scenario}")
    kubelet.add_config_map(TEMPLATES_CONFIG_MAP, template_files())
    return Release(scenario, kubelet, workdir, executor)


def start(release: Release) -> Release:
    """What `helm install` + the kubelets do, in dependency order: stores, migration Job, the rest."""
    kubelet, docs = release.kubelet, release.kubelet.docs
    if release.executor == "KubernetesExecutor":  # pods get what a kubelet gives them: the API, a token
        release.kube = KubeApi(kubelet, release.workdir / "kubeapi").start()
        release.kube.admit_workloads()
    stores = [(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] == "StatefulSet"]
    stores += [("Deployment", "dagfleet-config-api")]
    stores += [
        ("Deployment", d["metadata"]["name"])
        for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "dagfleet-pgbouncer"
    ]
    for kind, name in stores:
        kubelet.start_workload(kind, name)
    for _kind, name in stores:
        kubelet.wait_ready(name.removeprefix("dagfleet-"))
    (job,) = [d["metadata"]["name"] for d in docs if d["kind"] == "Job"]
    kubelet.run_job(job)
    rest = [
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "Deployment" and ("Deployment", d["metadata"]["name"]) not in stores
    ]
    for name in rest:
        kubelet.start_pod(name.removeprefix("dagfleet-"), kubelet.one("Deployment", name)["spec"]["template"])
    kubelet.wait_ready("api-server", READY_TIMEOUT)
    base = f"http://{kubelet.ip(kubelet.pods['api-server'])}:8080"
    passwords = kubelet.volume_path("api-server", "auth") / "simple_auth_manager_passwords.json"
    wait_until("the api-server's generated passwords", passwords.exists, 120, every=5)
    release.api = Api(base, passwords)
    return release


def psql(kubelet: Kubelet, sql: str) -> str:
    """One query on the Airflow database, as its owner, inside the PostgreSQL container."""
    name = f"{kubelet.pods['postgresql'].name}-postgresql"
    args = ("psql", "-h", "/var/run/postgresql", "-U", "airflow", "-d", "airflow", "-tAc", sql)
    return docker("exec", name, *args).stdout.strip()
