"""The image on a laptop, exactly as docs/image.md and the README show it, up to a task in `success`.

Every `docker run` example of "Run it on a laptop" runs as written (only its network, container
names and host port are made unique, and Airflow gets LOAD_SETTINGS: 2 shared cores), then the
page's REST example gets a token, unpauses `hello_conf`, triggers it, and the run must end in
`success`: before issue #24 every task failed with "Signature verification failed", because each
Airflow process of the container made up its own JWT secret. The multi-container example with
PostgreSQL cannot run here (no registry serves `postgres`); the page says so.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.docs import fenced_blocks, shell_commands
from support.image import Container, docker, http_ok
from support.paths import REPO
from support.proc import run
from support.wait import wait_until

pytestmark = pytest.mark.docker

PAGES = (REPO / "docs" / "image.md", REPO / "README.md")
STARTUP_TIMEOUT = 300  # standalone on 2 shared cores: migrate, then api-server, scheduler, processor
RUN_TIMEOUT = 240
LOAD_SETTINGS = "-e AIRFLOW__CORE__PARALLELISM=4 -e AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT=60"


def _laptop_blocks(page: Path) -> list[str]:
    """The laptop examples of a page: bash blocks with `docker run` or a trigger, not the PostgreSQL one."""
    blocks = ["\n".join(shell_commands(block)) for block in fenced_blocks(page, "bash")]
    return [b for b in blocks if ("docker run" in b or "dagRuns" in b) and "postgres" not in b]


def _examples() -> dict[str, list[str]]:
    """docs/image.md's laptop examples by role: the config API, the Airflow containers, the trigger."""
    found: dict[str, list[str]] = {"config-api": [], "airflow": [], "trigger": []}
    for block in _laptop_blocks(PAGES[0]):
        role = "config-api" if "serve-config" in block else "trigger" if "dagRuns" in block else "airflow"
        found[role].append(block)
    return found


EXAMPLES = _examples()


@dataclass
class Laptop:
    """Where the documented commands run: a unique prefix and network, a folder for their files."""

    image: str
    prefix: str
    cwd: Path

    def localize(self, command: str, port: int | None = None) -> str:
        rewrites = {
            "dagfleet:dev": self.image,
            "docker network create dagfleet": f"docker network create {self.prefix}",
            "--network dagfleet": f"--network {self.prefix}",
            "--name config-api": f"--name {self.prefix}-config-api --network-alias config-api",
            "--name airflow": f"--name {self.prefix}-airflow",
            "docker logs airflow": f"docker logs {self.prefix}-airflow",
            "-p 8080:8080": "-p 127.0.0.1::8080",
            "https://config.example.com": "http://config-api:8000",
            # 2 cores shared with other jobs: 4 worker slots, and workers wait up to 60 s for the API
            # server instead of 5 (Airflow's advice "under high load"; a task failed on httpx.ReadTimeout).
            "docker run ": f"docker run --label dagfleet.test=image {LOAD_SETTINGS} ",
        }
        if port is not None:
            rewrites["http://localhost:8080"] = f"http://127.0.0.1:{port}"
        for old, new in rewrites.items():
            command = command.replace(old, new)
        return command

    def sh(self, script: str, port: int | None = None, **variables: str) -> str:
        env = {**os.environ, "MY_API_KEY": "dev-key", **variables}
        command = ["bash", "-euo", "pipefail", "-c", self.localize(script, port)]
        result = run(command, timeout=300, cwd=self.cwd, env=env)
        assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def laptop(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Laptop]:
    """The network and the reference config API, from the page's first block."""
    here = Laptop(image, f"dagfleet-test-laptop-{uuid.uuid4().hex[:8]}", tmp_path_factory.mktemp("laptop"))
    try:
        here.sh(EXAMPLES["config-api"][0])
        yield here
    finally:
        names = docker("ps", "-aq", "--filter", f"name={here.prefix}", check=False).stdout.split()
        if names:
            docker("rm", "-f", "-v", *names, check=False)
        docker("network", "rm", here.prefix, check=False)


def test_the_docs_show_the_examples_this_test_runs() -> None:
    assert len(EXAMPLES["config-api"]) == 1, EXAMPLES  # the network and the reference config API
    assert len(EXAMPLES["airflow"]) == 2, EXAMPLES  # the key from a variable, then from a file
    (trigger,) = EXAMPLES["trigger"]
    assert "/auth/token" in trigger
    assert '"is_paused": false' in trigger
    assert trigger.index('"is_paused": false') < trigger.index("dagRuns")
    assert _laptop_blocks(PAGES[1]) == _laptop_blocks(PAGES[0]), "README.md repeats docs/image.md's examples"


def _get(url: str, token: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        return json.load(answer)


def _token(airflow: Container, api: str) -> str:
    password = airflow.logs().split("Password for user 'admin': ", 1)[1].split()[0]
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{api}/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
        return str(json.load(answer)["access_token"])


def _dag_shown(airflow: Container, api: str) -> bool:
    try:
        return bool(_get(f"{api}/api/v2/dags/hello_conf", _token(airflow, api)))
    except OSError:
        return False


def _finished(api: str, token: str, run_id: str) -> str | None:
    """The run's final state, or None while it runs (or while the busy API server does not answer)."""
    try:
        state = str(_get(f"{api}/api/v2/dags/hello_conf/dagRuns/{run_id}", token)["state"])  # type: ignore[index]
    except OSError:
        return None
    return state if state in ("success", "failed") else None


@pytest.mark.parametrize("example", range(2), ids=["api-key-variable", "api-key-file"])
def test_a_documented_container_runs_a_task_to_success(laptop: Laptop, example: int) -> None:
    airflow = Container(f"{laptop.prefix}-airflow")
    try:
        laptop.sh(EXAMPLES["airflow"][example].split("\ndocker logs")[0])
        port = airflow.host_port(8080)
        health = f"http://127.0.0.1:{port}/api/v2/monitor/health"
        airflow.wait_for("the UI on port 8080", lambda: http_ok(health), STARTUP_TIMEOUT, every=3)
        wait_until("the login in the logs", lambda: "Password for user 'admin'" in airflow.logs(), 60)
        wait_until("hello_conf in the UI", lambda: _dag_shown(airflow, f"http://127.0.0.1:{port}"), 120, every=3)
        script = EXAMPLES["trigger"][0]
        prologue = script.rsplit("\ncurl", 1)[0]  # everything but the last line, which reads the state
        out = laptop.sh(prologue + '\nprintf "\\n%s %s\\n" "$TOKEN" "$RUN"', port)
        token, run_id = out.strip().splitlines()[-1].split(" ", 1)
        api = f"http://127.0.0.1:{port}"
        state = wait_until("the run to finish", lambda: _finished(api, token, run_id), RUN_TIMEOUT, every=3)
        assert state == "success", airflow.tail(60)
        assert "Signature verification failed" not in airflow.logs()
        first, last = script.splitlines()[0], script.splitlines()[-1]  # AIRFLOW=..., then the state
        assert '"state":"success"' in laptop.sh(f"{first}\n{last}", port, TOKEN=token, RUN=run_id)
    finally:
        airflow.remove()
