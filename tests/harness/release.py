"""One release of the chart under the harness's kubelet: render, start in dependency order, stop.

Shared by every harness test module (tests/harness/conftest.py keeps one release running at a
time and hands it to the tests of its scenario). A scenario is a values file in `values/`, layered
on `values/common.yaml` and the locally built images.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubelet import REPO, Kubelet, docker, helm_template

from support.wait import wait_until

HERE = Path(__file__).parent
IMAGE = os.environ.get("DAGFLEET_TEST_IMAGE", "dagfleet:dev")
SERVICES_IMAGE = os.environ.get("HARNESS_SERVICES_IMAGE", "dagfleet-harness-services:bookworm")
READY_TIMEOUT = 900
RUN_TIMEOUT = 900


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
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
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


class TaskPodRunner(threading.Thread):
    """A kubelet for the pods the harness executor writes: run each, answer with its exit code."""

    def __init__(self, kubelet: Kubelet, outbox: Path) -> None:
        super().__init__(daemon=True)
        self.kubelet = kubelet
        self.outbox = outbox
        self.stop = threading.Event()
        self.ran: dict[str, int] = {}
        self.pods: dict[str, dict] = {}
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for path in sorted(self.outbox.glob("*.json")):
                pod = json.loads(path.read_text())
                name = pod["metadata"]["name"]
                path.unlink()
                self.pods[name] = pod
                try:
                    started = self.kubelet.start_pod(f"task-{len(self.ran)}", pod)
                    code = docker("wait", started.started[-1], timeout=RUN_TIMEOUT).stdout.strip()
                except Exception as err:  # noqa: BLE001 - reported by the test
                    self.errors.append(f"{name}: {err}")
                    code = "1"
                self.ran[name] = int(code)
                (self.outbox / f"{name}.exit").write_text(code)
            self.stop.wait(2)


@dataclass
class Release:
    """A started release: its scenario, kubelet, work folder, API and (KubernetesExecutor) pod runner."""

    scenario: str
    kubelet: Kubelet
    workdir: Path
    executor: str
    api: Api | None = None
    runner: TaskPodRunner | None = None
    started: float = field(default_factory=time.monotonic)

    def close(self) -> None:
        if self.runner:
            self.runner.stop.set()
        print(f"harness {self.scenario}: {time.monotonic() - self.started:.0f} s")
        self.kubelet.close()


def example_values(workdir: Path, own: dict[str, Any]) -> list[Path]:
    """A scenario that serves workflows of its own (`referenceConfigApi.workflows`) serves them next
    to the example workflows every scenario checks (values maps merge: the scenario's win)."""
    if not (own.get("referenceConfigApi") or {}).get("workflows"):
        return []  # the examples embedded in the image
    examples = yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"]
    path = workdir / "examples.yaml"
    path.write_text(yaml.safe_dump({"referenceConfigApi": {"workflows": examples}}))
    return [path]


def render(scenario: str) -> Release:
    """`helm template` of the scenario's values, ready for the kubelet (nothing started yet)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"dagfleet-harness-{scenario}-"))
    workdir.chmod(0o755)
    own = HERE / "values" / f"{scenario}.yaml"
    own_values = yaml.safe_load(own.read_text()) or {}
    executor = own_values.get("executor", "LocalExecutor")
    common = HERE / "values" / "common.yaml"
    values = [common, *example_values(workdir, own_values), own, image_values(workdir)]
    prefix = f"dfh-{scenario}-{os.getpid()}"  # parallel runs on one Docker engine never share names
    kubelet = Kubelet(helm_template(values), workdir / "pods", prefix=prefix)
    return Release(scenario, kubelet, workdir, executor)


def start(release: Release) -> Release:
    """What `helm install` + the kubelets do, in dependency order: stores, migration Job, the rest."""
    kubelet, docs = release.kubelet, release.kubelet.docs
    stores = [(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] == "StatefulSet"]
    stores += [("Deployment", "dagfleet-config-api")]
    stores += [("Deployment", d["metadata"]["name"]) for d in docs if d["metadata"]["name"] == "dagfleet-pgbouncer"]
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
    kubernetes = release.executor == "KubernetesExecutor"
    for name in rest:
        template = kubelet.one("Deployment", name)["spec"]["template"]
        if kubernetes and name == "dagfleet-scheduler":
            template = harness_scheduler(template, release.workdir)
        kubelet.start_pod(name.removeprefix("dagfleet-"), template)
    kubelet.wait_ready("api-server", READY_TIMEOUT)
    base = f"http://{kubelet.ip(kubelet.pods['api-server'])}:8080"
    passwords = kubelet.volume_path("api-server", "auth") / "simple_auth_manager_passwords.json"
    wait_until("the api-server's generated passwords", passwords.exists, 120, every=5)
    release.api = Api(base, passwords)
    if kubernetes:
        release.runner = TaskPodRunner(kubelet, release.workdir / "harness" / "outbox")
        release.runner.start()
    return release


def harness_scheduler(template: dict, workdir: Path) -> dict:
    """The scheduler, with the harness's KubernetesExecutor subclass (pods go to the outbox)."""
    harness_dir = workdir / "harness"  # the executor module, and its outbox folder for pods
    (harness_dir / "outbox").mkdir(parents=True, exist_ok=True)
    harness_dir.chmod(0o755)
    (harness_dir / "outbox").chmod(0o777)
    (harness_dir / "harness_executor.py").write_text((HERE / "harness_executor.py").read_text())
    template = json.loads(json.dumps(template))
    spec = template["spec"]
    spec["volumes"] = [*spec["volumes"], {"name": "harness", "hostPath": str(harness_dir)}]
    (main,) = [c for c in spec["containers"] if c["name"] == "scheduler"]
    main["env"] = [e for e in main["env"] if e["name"] != "AIRFLOW__CORE__EXECUTOR"] + [
        {"name": "AIRFLOW__CORE__EXECUTOR", "value": "harness_executor.HarnessKubernetesExecutor"},
        {"name": "PYTHONPATH", "value": "/opt/harness"},
        {"name": "HARNESS_POD_OUTBOX", "value": "/opt/harness/outbox"},
    ]
    main["volumeMounts"] = [*main["volumeMounts"], {"name": "harness", "mountPath": "/opt/harness"}]
    return template


def psql(kubelet: Kubelet, sql: str) -> str:
    """One query on the Airflow database, as its owner, inside the PostgreSQL container."""
    name = f"{kubelet.pods['postgresql'].name}-postgresql"
    args = ("psql", "-h", "/var/run/postgresql", "-U", "airflow", "-d", "airflow", "-tAc", sql)
    return docker("exec", name, *args).stdout.strip()
