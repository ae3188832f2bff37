"""The chart, run like a cluster would run it: each scenario's `helm template` output under Docker.

For LocalExecutor (the default install), CeleryExecutor, KubernetesExecutor and LocalExecutor
behind PgBouncer (issue 32: afterwards PostgreSQL's only clients are PgBouncer's): the migration Job
completes, the api-server is healthy, the reference config API's workflows are all visible with
zero import errors, and a triggered run of the mapped workflow `hello_conf` succeeds. For the
KubernetesExecutor every task runs in the pod Airflow's own code built from the chart's pod
template (tests/harness/harness_executor.py), started here as a kubelet would start it.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubelet import REPO, Kubelet, docker, helm_template

from support.wait import wait_until

pytestmark = pytest.mark.harness

HERE = Path(__file__).parent
IMAGE = os.environ.get("DAGFLEET_TEST_IMAGE", "dagfleet:dev")
SERVICES_IMAGE = os.environ.get("HARNESS_SERVICES_IMAGE", "dagfleet-harness-services:bookworm")
WORKFLOWS = set(yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"])
MAPPED = "hello_conf"
ITEMS = ["north", "south", "east"]
READY_TIMEOUT = 900
RUN_TIMEOUT = 900


def image_values(workdir: Path) -> Path:
    repository, tag = IMAGE.rsplit(":", 1)
    services_repository, services_tag = SERVICES_IMAGE.rsplit(":", 1)
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "postgresql": {"image": {"repository": services_repository, "tag": services_tag, "pullPolicy": "Never"}},
        "redis": {"image": {"repository": services_repository, "tag": services_tag, "pullPolicy": "Never"}},
        "pgbouncer": {"image": {"repository": services_repository, "tag": services_tag, "pullPolicy": "Never"}},
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


@pytest.fixture(params=["local", "celery", "kubernetes", "pgbouncer"])
def release(request: pytest.FixtureRequest) -> Iterator[tuple[str, Kubelet, Path]]:
    scenario = request.param
    workdir = Path(tempfile.mkdtemp(prefix=f"dagfleet-harness-{scenario}-"))
    workdir.chmod(0o755)
    docs = helm_template([HERE / "values" / "common.yaml", HERE / "values" / f"{scenario}.yaml", image_values(workdir)])
    kubelet = Kubelet(docs, workdir / "pods", prefix=f"dfh-{scenario}")
    started = time.monotonic()
    try:
        yield scenario, kubelet, workdir
    finally:
        print(f"harness {scenario}: {time.monotonic() - started:.0f} s")
        kubelet.close()


def start_release(scenario: str, kubelet: Kubelet, workdir: Path) -> Api:
    """What `helm install` + the kubelets do, in dependency order: stores, migration Job, the rest."""
    docs = kubelet.docs
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
        template = kubelet.one("Deployment", name)["spec"]["template"]
        if scenario == "kubernetes" and name == "dagfleet-scheduler":
            template = harness_scheduler(template, workdir)
        kubelet.start_pod(name.removeprefix("dagfleet-"), template)
    kubelet.wait_ready("api-server", READY_TIMEOUT)
    base = f"http://{kubelet.ip(kubelet.pods['api-server'])}:8080"
    passwords = kubelet.volume_path("api-server", "auth") / "simple_auth_manager_passwords.json"
    wait_until("the api-server's generated passwords", passwords.exists, 120, every=5)
    return Api(base, passwords)


def psql(kubelet: Kubelet, sql: str) -> str:
    """One query on the Airflow database, as its owner, inside the PostgreSQL container."""
    name = f"{kubelet.pods['postgresql'].name}-postgresql"
    args = ("psql", "-h", "/var/run/postgresql", "-U", "airflow", "-d", "airflow", "-tAc", sql)
    return docker("exec", name, *args).stdout.strip()


def database_clients(kubelet: Kubelet) -> set[str]:
    """The addresses of PostgreSQL's network clients of the Airflow database, as PostgreSQL sees them."""
    sql = (
        "SELECT DISTINCT host(client_addr) FROM pg_stat_activity WHERE datname = 'airflow' AND client_addr IS NOT NULL"
    )
    return set(psql(kubelet, sql).split())


def connections_by_pod(kubelet: Kubelet) -> dict[str, int]:
    """How many connections each pod holds to the Airflow database now (printed: docs/helm.md)."""
    sql = (
        "SELECT host(client_addr), count(*) FROM pg_stat_activity"
        " WHERE datname = 'airflow' AND client_addr IS NOT NULL GROUP BY 1"
    )
    pods = {kubelet.ip(pod): name for name, pod in kubelet.pods.items()}
    rows = [line.split("|") for line in psql(kubelet, sql).splitlines()]
    return {pods.get(address, address): int(count) for address, count in rows}


def keda_query(workdir: Path) -> str:
    """The query of the KEDA ScaledObject the chart renders for autoscaled Celery workers."""
    values = workdir / "keda.yaml"
    values.write_text(yaml.safe_dump({"executor": "CeleryExecutor", "workers": {"autoscaling": {"enabled": True}}}))
    (scaled,) = [d for d in helm_template([values]) if d["kind"] == "ScaledObject"]
    return scaled["spec"]["triggers"][0]["metadata"]["query"]


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


def test_release(release: tuple[str, Kubelet, Path]) -> None:
    scenario, kubelet, workdir = release
    api = start_release(scenario, kubelet, workdir)
    assert api.call("GET", "/api/v2/monitor/health", auth=False)["metadatabase"]["status"] == "healthy"

    def all_visible() -> set[str] | None:
        ids = {d["dag_id"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}
        return ids if ids >= WORKFLOWS else None

    assert wait_until("every workflow of the config API as a DAG", all_visible, READY_TIMEOUT, every=5) >= WORKFLOWS
    assert api.call("GET", "/api/v2/importErrors")["total_entries"] == 0

    runner = None
    if scenario == "kubernetes":
        runner = TaskPodRunner(kubelet, workdir / "harness" / "outbox")
        runner.start()
    try:
        api.call("PATCH", f"/api/v2/dags/{MAPPED}", {"is_paused": False})
        run = api.call("POST", f"/api/v2/dags/{MAPPED}/dagRuns", {"logical_date": None, "conf": {"items": ITEMS}})
        path = f"/api/v2/dags/{MAPPED}/dagRuns/{run['dag_run_id']}"

        def finished() -> str | None:
            state = api.call("GET", path)["state"]
            return state if state in ("success", "failed") else None

        state = wait_until("the run to finish", finished, RUN_TIMEOUT, every=5)
        tis = api.call("GET", f"{path}/taskInstances?limit=100")["task_instances"]
        summary = sorted((t["task_id"], t["map_index"], t["state"]) for t in tis)
        assert state == "success", summary
        mapped = [t for t in tis if t["task_id"] == "process_item"]
        assert sorted(t["map_index"] for t in mapped) == list(range(len(ITEMS)))
        assert {t["state"] for t in tis} == {"success"}
        print(f"harness {scenario}: database connections by pod after the run: {connections_by_pod(kubelet)}")
        if scenario == "pgbouncer":
            assert database_clients(kubelet) == {kubelet.ip(kubelet.pods["pgbouncer"])}
            # KEDA's worker query runs on Airflow 3.3.2's schema: nothing queued or running now.
            assert psql(kubelet, keda_query(workdir)) == "0"
        if runner:  # a task reports success before its container exits: wait for the last exits
            wait_until("every task pod to exit", lambda: len(runner.ran) >= len(tis), 300, every=2)
    finally:
        if runner:
            runner.stop.set()
    if runner:
        assert not runner.errors, runner.errors
        # Every task ran in a pod built by Airflow's code from the chart's pod template.
        assert len(runner.ran) == len(tis), (runner.ran, summary)
        assert set(runner.ran.values()) == {0}
        for pod in runner.pods.values():
            (base,) = pod["spec"]["containers"]
            assert base["command"] == ["dumb-init", "--", "dagfleet", "task", "--"]
            assert base["args"][:3] == ["python", "-m", "airflow.sdk.execution_time.execute_workload"]
            env = {e["name"] for e in base["env"]}
            assert "DAGFLEET_TASK_WORKFLOW" in env
            assert not {"DAGFLEET_API_URL", "DAGFLEET_API_KEY_FILE"} & env
