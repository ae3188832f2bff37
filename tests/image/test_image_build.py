"""The Dockerfile and the build around it: contract, lint, labels, the stand-in base."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from support.image import docker
from support.paths import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
LOCKED_AIRFLOW = re.search(r"^apache-airflow==(\S+)", (REPO / "requirements.lock").read_text(), re.M).group(1)  # type: ignore[union-attr]
ENTRYPOINT = ["/usr/bin/dumb-init", "--", "dagfleet", "run", "--"]


def test_base_is_an_overridable_official_image_of_the_locked_version() -> None:
    assert INSTRUCTIONS[0] == f"ARG AIRFLOW_IMAGE=apache/airflow:{LOCKED_AIRFLOW}"
    assert all(line == "FROM ${AIRFLOW_IMAGE}" or line.startswith("FROM ${AIRFLOW_IMAGE} AS ")
               for line in INSTRUCTIONS if line.startswith("FROM"))  # fmt: skip


def test_airflow_pinned_next_to_the_locked_requirements() -> None:
    installs = [line for line in INSTRUCTIONS if "pip install" in line]
    assert any('"apache-airflow==${AIRFLOW_VERSION}" -r /opt/dagfleet/requirements.lock' in line for line in installs)
    assert all("--no-cache-dir" in line for line in installs)


def test_runs_as_airflow_with_the_dumb_init_entrypoint_chain() -> None:
    users = [line.split()[1] for line in INSTRUCTIONS if line.startswith("USER ")]
    assert users[-1] == "50000"  # numeric, so Kubernetes can verify runAsNonRoot
    assert f"ENTRYPOINT {str(ENTRYPOINT).replace(chr(39), chr(34))}" in INSTRUCTIONS
    assert all("--chown=airflow:root" in line for line in INSTRUCTIONS if line.startswith("COPY"))


def test_labels_come_last() -> None:
    first_label = next(i for i, line in enumerate(INSTRUCTIONS) if line.startswith("LABEL"))
    assert all(line.startswith(("ARG", "LABEL")) for line in INSTRUCTIONS[first_label - 4 :])


def test_dockerignore_lets_through_what_the_dockerfile_copies() -> None:
    allowed = {line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line[:1] == "!"}
    for line in INSTRUCTIONS:
        if line.startswith("COPY") and "--from=" not in line:
            for source in [w for w in line.split()[1:-1] if not w.startswith("--")]:
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_hadolint_is_clean() -> None:
    result = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "image-lint"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_stand_in_base_gets_the_locked_airflow_closure() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "docker/base/base_lock.py"), str(REPO / "requirements.lock"),
         "apache-airflow", "apache-airflow-providers-cncf-kubernetes"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pins = dict(re.findall(r"^([a-z0-9._-]+)==(\S+)", result.stdout, re.M))
    assert pins["apache-airflow"] == LOCKED_AIRFLOW
    assert {"apache-airflow-core", "apache-airflow-task-sdk", "kubernetes", "requests"} <= pins.keys()
    assert "redis" not in pins  # a dagfleet dependency: the project image installs it
    assert result.stdout.count("--hash=sha256:") >= len(pins)


@pytest.mark.docker
def test_image_metadata(image: str, image_config: dict[str, object]) -> None:
    labels = image_config["Labels"]
    assert isinstance(labels, dict)
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.title"] == "dagfleet"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
    assert labels["org.opencontainers.image.base.name"]
    assert image_config["Entrypoint"] == ENTRYPOINT
    assert image_config["Cmd"] == ["standalone"]
    assert image_config["User"] == "50000"
    assert "8080/tcp" in image_config["ExposedPorts"]  # type: ignore[operator]
    env = dict(item.split("=", 1) for item in image_config["Env"])  # type: ignore[union-attr]
    assert env["AIRFLOW_HOME"] == "/opt/airflow"
    assert env["AIRFLOW_VERSION"] == LOCKED_AIRFLOW


@pytest.mark.docker
def test_stand_in_base_is_reused(image: str, image_config: dict[str, object]) -> None:
    """When the image was built on the stand-in, building the stand-in again is a no-op."""
    base = image_config["Labels"]["org.opencontainers.image.base.name"]  # type: ignore[index]
    if not str(base).startswith("dagfleet-base:"):
        pytest.skip(f"built on {base}, not on the stand-in")
    inspect = docker("image", "inspect", "-f", '{{ index .Config.Labels "io.dagfleet.base.inputs" }}', str(base))
    assert inspect.stdout.strip()
    env = {**os.environ, "BASE_IMAGE": str(base)}
    result = subprocess.run(
        [str(REPO / "docker/base/build.sh")], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "reusing" in result.stderr


@pytest.mark.parametrize("target", ["image", "image-base"])
def test_image_targets_install_the_pinned_uv_first(target: str, tmp_path: Path) -> None:
    """On a new machine (no .tools yet) `make image` installs the pinned uv before building."""
    result = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "-n", target, f"TOOLS={tmp_path / 'tools'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    install = next(i for i, line in enumerate(lines) if 'pip install -q "uv==' in line)
    build = next(i for i, line in enumerate(lines) if "build" in line and ".sh" in line)
    assert install < build
    assert f"UV={tmp_path / 'tools'}/uv/bin/uv " in lines[build]


@pytest.mark.docker
def test_stand_in_base_never_uses_an_unpinned_uv(docker_engine: None, tmp_path: Path) -> None:
    """build.sh takes the project's pinned uv only: a uv merely on PATH is refused with one line."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "uv").symlink_to(sys.executable)  # any executable named uv on PATH
    env = {
        **os.environ,
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "UV": str(tmp_path / "missing-uv"),
        "FORCE": "1",
        "BASE_IMAGE": "dagfleet-base:never-built",
    }
    result = subprocess.run(
        [str(REPO / "docker/base/build.sh")], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 1
    assert "pinned uv binary not found" in result.stderr
    assert "debootstrap" not in result.stderr  # it fails before any work
