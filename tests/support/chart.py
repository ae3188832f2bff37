"""Helpers of the chart tests: render the chart with `helm template`, find objects and containers.

In the style of the official Airflow chart's helm-tests: `render_chart(values=..., show_only=[...])`
returns the rendered objects as dicts, and raises with helm's stderr when helm fails. Value
scenarios live in chart/ci/*-values.yaml and are reused by every check.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from support.paths import REPO

CHART_DIR = REPO / "chart"
CI_DIR = CHART_DIR / "ci"
SCENARIOS = sorted(p.name.removesuffix("-values.yaml") for p in CI_DIR.glob("*-values.yaml"))
RELEASE = "dagfleet"
NAMESPACE = "dagfleet"
# Versions every rendered object is validated against (make exports them; oldest, current).
KUBE_VERSIONS = os.environ.get("CHART_TEST_KUBE_VERSIONS", "1.33.0 1.37.0").split()
DEFAULT_KUBE_VERSION = KUBE_VERSIONS[-1]
# The smallest values that render: the chart refuses to start without a workflow source.
MINIMAL = {"configApi": {"url": "https://config.example.com"}}


class HelmFailedError(Exception):
    """helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"helm failed ({returncode}): {' '.join(args[:3])} …\n{stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def _helm_major(path: str) -> str:
    result = subprocess.run([path, "version", "--short"], capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.strip().split(".", 1)[0]


@functools.cache
def helm_binary() -> str:
    """helm v4: on PATH, else the one `make tools` put into .tools/bin; a clear failure, never a skip."""
    candidates = [shutil.which("helm"), shutil.which("helm", path=str(REPO / ".tools" / "bin"))]
    for helm in filter(None, candidates):
        if _helm_major(helm) == "v4":
            return helm
    found = ", ".join(f"{h} ({_helm_major(h)})" for h in filter(None, candidates)) or "none"
    raise RuntimeError(f"the chart tests need helm v4 (found: {found}): run `make tools`, or use `make test`")


def tool(env_name: str, venv: str, program: str) -> str:
    """A scanner installed by `make tools` in its own venv under .tools/."""
    path = os.environ.get(env_name) or str(REPO / ".tools" / venv / "bin" / program)
    if not Path(path).exists():
        raise RuntimeError(f"{program} not found at {path}: run `make tools`")
    return path


def helm(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [helm_binary(), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise HelmFailedError(command, result.returncode, result.stderr)
    return result


def _with_minimal(values_files: list[Path] | None, minimal: bool, tmp: Path) -> list[Path]:
    """The values files; with none given and ``minimal``, a file holding MINIMAL (a workflow source)."""
    if values_files or not minimal:
        return list(values_files or [])
    base = tmp / "minimal.yaml"
    base.write_text(yaml.safe_dump(MINIMAL))
    return [base]


def _values_args(values: dict[str, Any] | None, values_files: list[Path] | None, tmp: Path) -> list[str]:
    args: list[str] = []
    for file in values_files or []:
        args += ["--values", str(file)]
    if values:
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["--values", str(path)]
    return args


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: list[str] | None = None,
    *,
    values_files: list[Path] | None = None,
    name: str = RELEASE,
    namespace: str = NAMESPACE,
    kube_version: str = DEFAULT_KUBE_VERSION,
    minimal: bool = True,
) -> list[dict[str, Any]]:
    """`helm template` the chart; the objects as dicts. `minimal` adds a workflow source first."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["template", name, str(CHART_DIR), "--namespace", namespace, "--kube-version", kube_version]
        args += _values_args(values, _with_minimal(values_files, minimal, Path(tmp)), Path(tmp))
        for template in show_only or []:
            args += ["--show-only", template]
        out = helm(*args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def render_install(
    values: dict[str, Any] | None = None, *, values_files: list[Path] | None = None, minimal: bool = True
) -> tuple[list[dict[str, Any]], str]:
    """`helm install --dry-run=client` (no cluster): the objects and NOTES of one and the same render."""
    with tempfile.TemporaryDirectory() as tmp:
        args = ["install", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--dry-run=client"]
        out = helm(*args, *_values_args(values, _with_minimal(values_files, minimal, Path(tmp)), Path(tmp))).stdout
    head, sep, notes = out.partition("\nNOTES:\n")
    assert sep, f"no NOTES section in helm install --dry-run output:\n{out[-2000:]}"
    _, _, manifest = head.partition("\nMANIFEST:\n")
    hooks = head.partition("\nHOOKS:\n")[2].partition("\nMANIFEST:\n")[0]
    docs = [d for d in yaml.safe_load_all(hooks + "\n---\n" + manifest) if d]
    return docs, notes


def render_notes(
    values: dict[str, Any] | None = None, *, values_files: list[Path] | None = None, minimal: bool = True
) -> str:
    """NOTES.txt as `helm install` prints it, without a cluster (`--dry-run=client`)."""
    return render_install(values, values_files=values_files, minimal=minimal)[1]


def scenario_file(scenario: str) -> Path:
    return CI_DIR / f"{scenario}-values.yaml"


@functools.cache
def _render_scenario_text(scenario: str, kube_version: str) -> str:
    args = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE, "--kube-version", kube_version]
    return helm(*args, "--values", str(scenario_file(scenario))).stdout


def render_scenario(scenario: str, kube_version: str = DEFAULT_KUBE_VERSION) -> list[dict[str, Any]]:
    """A scenario of chart/ci rendered (cached: treat the result as read-only)."""
    return [doc for doc in yaml.safe_load_all(_render_scenario_text(scenario, kube_version)) if doc]


def scenario_manifest(scenario: str, kube_version: str = DEFAULT_KUBE_VERSION) -> str:
    """The scenario's YAML plus the KubernetesExecutor pod template as a document of its own."""
    docs = render_scenario(scenario, kube_version)
    extra = [yaml.safe_load(t) for t in pod_templates(docs)]
    return yaml.safe_dump_all([*docs, *extra], sort_keys=False)


# ---------- finding things ----------


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def _pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod (metadata and spec) a Pod is, or a workload, a Job or a CronJob makes."""
    if doc["kind"] == "Pod":
        return doc
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Pod, a workload, a Job or a CronJob."""
    return _pod_template(doc)["spec"]


def pod_metadata(doc: dict[str, Any]) -> dict[str, Any]:
    """The metadata (labels, annotations) of the pods a Pod, a workload, a Job or a CronJob makes."""
    return _pod_template(doc)["metadata"]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every object that defines pods (the pod template of KubernetesExecutor included)."""
    found = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob", "Pod"}]
    return found + [yaml.safe_load(t) for t in pod_templates(docs)]


def containers(doc: dict[str, Any], *, init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    inits = (spec.get("initContainers") or []) if init else []
    return [*inits, *spec["containers"]]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in containers(doc) if c["name"] == name]
    assert found, f"no container {name} in {doc['kind']}/{doc['metadata']['name']}"
    return found[0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    """name -> value (or the valueFrom mapping) of a container's env."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []}


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[str]:
    for doc in docs:
        if doc["kind"] == "ConfigMap" and "pod_template_file.yaml" in (doc.get("data") or {}):
            yield doc["data"]["pod_template_file.yaml"]


def project_image_containers(docs: list[dict[str, Any]], image: str) -> list[tuple[str, dict[str, Any]]]:
    """(where, container) for every container that runs the project image."""
    found = []
    for doc in workloads(docs):
        for c in containers(doc):
            if c["image"] == image:
                found.append((f"{doc['kind']}/{doc['metadata']['name']}:{c['name']}", c))
    return found
