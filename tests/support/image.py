"""The image tests' helpers: `make image`, the docker CLI, containers, the host's address on the bridge."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from support.paths import REPO

IMAGE_TAG = os.environ.get("DAGFLEET_TEST_IMAGE", "dagfleet:dev")
# Building the stand-in base from nothing takes minutes: more than the suite's per-test timeout.
BUILD_TIMEOUT = 1800
DAG_FOLDER = "/opt/airflow/dags"


def make_image(tag: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `make image IMAGE=<tag>`; fail the test with the last lines of its output if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    result = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "image", f"IMAGE={tag}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        pytest.fail(f"make image failed ({result.returncode}):\n{tail}", pytrace=False)
    return result


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure raise with its stderr in the message."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


@functools.cache
def docker_problem() -> str | None:
    """Why Docker cannot be used here, or None when `docker info` answers."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["no Docker engine"]
        return f"`docker info` failed: {lines[-1]}"
    return None


def bridge_ip() -> str:
    """The host's address on Docker's default bridge (what `host-gateway` resolves to)."""
    gateway = docker(
        "network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", check=False
    ).stdout.strip()
    if gateway:
        return gateway
    ip = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True, check=False)
    for word in ip.stdout.split():
        if "/" in word and word[0].isdigit():
            return word.split("/")[0]
    return "0.0.0.0"  # last resort: every interface, for the duration of the tests


@dataclass
class HostConfigApi:
    """`dagfleet serve-config` on the host's bridge address; containers reach it by name."""

    url: str
    api_key: str
    workflows: tuple[str, ...]


@dataclass
class Container:
    name: str

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *cmd: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return docker("exec", self.name, *cmd, timeout=timeout, check=False)

    def state(self) -> dict[str, object]:
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def host_port(self, port: int) -> int:
        out = docker("port", self.name, str(port)).stdout.strip().splitlines()[0]
        return int(out.rsplit(":", 1)[1])

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float, every: float = 2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if not self.state().get("Running"):
                raise AssertionError(f"container exited while waiting for {what}:\n{self.tail()}")
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}:\n{self.tail()}")

    def stop_with_sigterm(self, limit: float) -> tuple[float, int]:
        """SIGTERM the container: (seconds until it exited, exit code), or (limit, -1) and SIGKILL."""
        started = time.monotonic()
        docker("kill", "--signal", "TERM", self.name)
        try:
            docker("wait", self.name, timeout=limit)
        except subprocess.TimeoutExpired:
            docker("kill", self.name, check=False)
            return limit, -1
        elapsed = time.monotonic() - started
        return elapsed, int(self.state()["ExitCode"])  # type: ignore[call-overload]

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)


def docker_run_args(env: dict[str, str]) -> list[str]:
    """`docker run` options every test container gets: the host by name, small Airflow settings."""
    base_env = {
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",  # 2 shared cores: not 32 idle LocalExecutor workers
    }
    args = ["--label", "dagfleet.test=image", "--add-host", "host.docker.internal:host-gateway"]
    for key, value in {**base_env, **env}.items():
        args += ["-e", f"{key}={value}"]
    return args


def start_container(
    image: str, purpose: str, *command: str, env: dict[str, str], options: tuple[str, ...] = ()
) -> Container:
    """`docker run -d`; the caller removes the container."""
    name = f"dagfleet-test-{purpose}-{uuid.uuid4().hex[:8]}"
    docker("run", "-d", "--name", name, *docker_run_args(env), *options, image, *command)
    return Container(name)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a local http URL
            return response.status == 200
    except OSError:
        return False


def json_line(stdout: str) -> object:
    """The JSON document in an Airflow CLI's stdout (warnings may be printed before it)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(("[", "{")):
            return json.loads(line)
    raise AssertionError(f"no JSON in output:\n{stdout}")


_PROCESSES = """
import os
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        status = open(f'/proc/{pid}/status').read().splitlines()
        cmd = open(f'/proc/{pid}/cmdline').read().replace(chr(0), ' ').replace(chr(10), ' ').strip()
    except OSError:
        continue
    ids = {line.split(':')[0]: line.split()[1] for line in status if line.startswith(('Uid:', 'Gid:'))}
    print(ids['Uid'], ids['Gid'], cmd, sep='\\t')
"""


def processes(container: Container) -> list[tuple[int, int, str]]:
    """(uid, gid, command line) of every process in the container, read from /proc."""
    result = container.exec("python", "-c", _PROCESSES)
    assert result.returncode == 0, result.stderr
    rows = []
    for line in result.stdout.splitlines():
        uid, gid, cmd = line.split("\t", 2)
        rows.append((int(uid), int(gid), cmd))
    return rows
