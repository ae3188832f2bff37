"""The chart <-> entrypoint contract (docs/reference.md).

For every container the chart runs from the project image, in every scenario: its command, args
and environment must be ones the image's entrypoint accepts. `dagfleet check -- CMD…` is the
entrypoint's dry run: it validates the command the way `dagfleet run` would hand it over and every
DAGFLEET_* variable (names and values), and exits 0 or 2. Containers that run a dagfleet command
themselves (`dagfleet watch`, `dagfleet serve-config …`) also have their arguments parsed by the
CLI's own parser.

Checked twice: with the project's .venv (always), and inside the built image when Docker is there
(skipped with one line when it is not, or when the image was not built; never skipped in CI,
where a missing image is built with `make image`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.chart import SCENARIOS, containers, render_scenario, scenario_file, workloads
from support.image import make_image
from support.paths import ON_CI, REPO
from support.proc import run

pytestmark = pytest.mark.helm

VENV_BIN = REPO / ".venv" / "bin"
IMAGE = os.environ.get("DAGFLEET_TEST_IMAGE") or os.environ.get("DAGFLEET_IMAGE") or "dagfleet:dev"
# What KubernetesExecutor puts into the args of the pod template's `base` container (Airflow 3).
KUBERNETES_EXECUTOR_ARGS = ("python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}")
DUMMY = "dummy"
# The first in-image test may build the image (CI): allow for a cold `make image`.
IMAGE_TIMEOUT = 1800
PARSE = "import sys\nfrom dagfleet.service.cli import build_parser\nbuild_parser().parse_args(sys.argv[1:])"


@dataclass(frozen=True)
class Case:
    """One container of one scenario, as the entrypoint sees it."""

    scenario: str
    where: str
    check: tuple[str, ...]  # what follows `dagfleet check --`
    subcommand: tuple[str, ...] | None  # argv after `dagfleet` when the container runs a dagfleet command
    env: tuple[tuple[str, str], ...]

    @property
    def id(self) -> str:
        return f"{self.scenario}:{self.where}"

    @property
    def key_file(self) -> str | None:
        return dict(self.env).get("DAGFLEET_API_KEY_FILE")


def _project_image(scenario: str) -> str:
    values = yaml.safe_load(scenario_file(scenario).read_text()) or {}
    return (values.get("image") or {}).get("repository", "dagfleet")


def _env(c: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> tuple[tuple[str, str], ...]:
    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        # Only the chart's own ConfigMaps are known here; the user's (extraEnvFrom) are not rendered.
        name = (source.get("configMapRef") or {}).get("name")
        env.update(config_maps.get(name) or {})
    for item in c.get("env") or []:
        env[item["name"]] = str(item["value"]) if "value" in item else DUMMY
    return tuple(sorted(env.items()))


def _case(scenario: str, where: str, c: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> Case:
    command = list(c.get("command") or [])
    args = list(c.get("args") or [])
    env = _env(c, config_maps)
    if command[:2] == ["dumb-init", "--"]:
        command = command[2:]
    if not command:  # the image's entrypoint: dumb-init -- dagfleet run -- ARGS
        return Case(scenario, where, tuple(args) or KUBERNETES_EXECUTOR_ARGS, None, env)
    if command[1:2] == ["task"]:  # task pod: `dagfleet task --` + what KubernetesExecutor puts in the args
        args = args or list(KUBERNETES_EXECUTOR_ARGS)
        return Case(scenario, where, tuple(args), tuple(command[1:] + args), env)
    if command[0] == "dagfleet":  # a dagfleet command: check the environment, parse the arguments
        return Case(scenario, where, ("version",), tuple(command[1:] + args), env)
    return Case(scenario, where, tuple(command + args), None, env)


@functools.cache
def contract_cases() -> list[Case]:
    cases = []
    for scenario in SCENARIOS:
        docs = render_scenario(scenario)
        config_maps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
        repository = _project_image(scenario)
        for doc in workloads(docs):
            for c in containers(doc):
                if c["image"].startswith((f"{repository}:", f"{repository}@")):
                    where = f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
                    cases.append(_case(scenario, where, c, config_maps))
    return cases


def _cases_or_error() -> list[Case]:
    try:
        return contract_cases()
    except Exception as err:  # noqa: BLE001 - reported as one failing case, not a collection error
        return [Case("render", f"error: {str(err).splitlines()[0]}", (), None, (("error", str(err)),))]


CASES = _cases_or_error()
CASE_IDS = [c.id for c in CASES]


def _fail_if_render_error(case: Case) -> None:
    if case.scenario == "render":
        pytest.fail(dict(case.env)["error"], pytrace=False)


def documented_variables() -> set[str]:
    return set(re.findall(r"`(DAGFLEET_[A-Z_]+)`", (REPO / "docs" / "reference.md").read_text()))


class TestContractShape:
    def test_every_scenario_has_cases(self) -> None:
        assert {c.scenario for c in CASES} == set(SCENARIOS)

    def test_covers_components_sidecar_and_reference_api(self) -> None:
        checks = {c.check[0] for c in CASES if c.subcommand is None or c.subcommand[0] == "task"}
        assert {"scheduler", "dag-processor", "airflow", "bash", "python"} <= checks
        # The api-server and triggerer do not sync: straight to the official entrypoint.
        assert {("/entrypoint", "api-server"), ("/entrypoint", "triggerer")} <= {c.check[:2] for c in CASES}
        assert {c.subcommand[0] for c in CASES if c.subcommand} == {"watch", "serve-config", "task"}

    def test_only_documented_dagfleet_variables(self) -> None:
        documented = documented_variables()
        assert "DAGFLEET_API_KEY_FILE" in documented
        for case in CASES:
            names = {name for name, _ in case.env if name.startswith("DAGFLEET_")}
            assert names <= documented, (case.id, names - documented)

    def test_api_key_only_as_a_file(self) -> None:
        for case in CASES:
            names = dict(case.env)
            assert "DAGFLEET_API_KEY" not in names, case.id


# ---------- with the project's virtualenv ----------


def _local_env(case: Case, key_file: Path) -> dict[str, str]:
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        **dict(case.env),
    }
    if case.key_file:
        env["DAGFLEET_API_KEY_FILE"] = str(key_file)  # same variable, a file that exists here
    return env


@pytest.fixture(scope="module")
def local_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("contract") / "api-key"
    path.write_text("contract-test-key\n")
    return path


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_entrypoint_accepts_in_venv(case: Case, local_key_file: Path) -> None:
    _fail_if_render_error(case)
    dagfleet = VENV_BIN / "dagfleet"
    assert dagfleet.exists(), "no .venv/bin/dagfleet: run `make venv`"
    env = _local_env(case, local_key_file)
    result = run([dagfleet, "check", "--", *case.check], env=env, timeout=60)
    assert result.returncode == 0, f"dagfleet check -- {' '.join(case.check)}\n{result.stderr}"
    if case.subcommand:
        parsed = run([VENV_BIN / "python", "-c", PARSE, *case.subcommand], env=env, timeout=60)
        assert parsed.returncode == 0, f"dagfleet {' '.join(case.subcommand)}\n{parsed.stderr}"


def test_the_check_is_not_vacuous(local_key_file: Path) -> None:
    """The harness sees a rejection: a bad value, an unknown name, an unknown command, bad options."""
    dagfleet = str(VENV_BIN / "dagfleet")
    bad = [
        ({"DAGFLEET_SYNC_INTERVAL": "soon"}, ["scheduler"]),
        ({"DAGFLEET_SYNC_INTERVALL": "60"}, ["scheduler"]),
        ({}, ["no-such-component"]),
    ]
    for env, args in bad:
        base = Case("x", "x", tuple(args), None, tuple(env.items()))
        result = subprocess.run(
            [dagfleet, "check", "--", *args], env=_local_env(base, local_key_file), capture_output=True, check=False
        )
        assert result.returncode == 2, (env, args)
    parsed = subprocess.run(
        [str(VENV_BIN / "python"), "-c", PARSE, "serve-config", "--bind", "0.0.0.0"], capture_output=True, check=False
    )
    assert parsed.returncode == 2


# ---------- inside the built image ----------


BATCH = r"""
import json, os, subprocess, sys
cases = json.load(sys.stdin)
base = {k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")}
results = []
for case in cases:
    env = {**base, **case["env"]}
    key_file = env.get("DAGFLEET_API_KEY_FILE")
    if key_file:
        os.makedirs(os.path.dirname(key_file), exist_ok=True)
        with open(key_file, "w") as f:
            f.write("contract-test-key\n")
    check = subprocess.run(["dagfleet", "check", "--", *case["check"]], env=env, capture_output=True, text=True)
    result = {"rc": check.returncode, "output": check.stderr[-3000:]}
    if case["subcommand"]:
        parse = subprocess.run([sys.executable, "-c", case["parse"], *case["subcommand"]], env=env,
                               capture_output=True, text=True)
        result.update(parse_rc=parse.returncode, parse_output=parse.stderr[-3000:])
    results.append(result)
print(json.dumps(results))
"""


def _docker_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no docker command"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    if info.returncode != 0:
        return f"`docker info` failed: {(info.stderr.strip().splitlines() or ['no engine'])[-1]}"
    return None


def _image_present() -> bool:
    result = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, timeout=60, check=False)
    return result.returncode == 0


def _build_image() -> None:
    make_image(IMAGE, IMAGE_TIMEOUT)


@pytest.fixture(scope="module")
def image_results() -> dict[str, dict[str, Any]]:
    """Every case checked inside the image, in one container (one start, one process per case)."""
    problem = _docker_problem()
    if problem is None and not _image_present():
        if ON_CI:
            _build_image()
        else:
            problem = f"image {IMAGE} not built (make image)"
    if problem is not None:
        message = f"contract check inside the image needs Docker and {IMAGE}: {problem}"
        if ON_CI:
            pytest.fail(f"{message}; CI=true, so it must run", pytrace=False)
        pytest.skip(message)
    cases = [c for c in CASES if c.scenario != "render"]
    # A control case the image must reject: proves the batch reports failures at all.
    control = Case(
        "control", "bad", ("scheduler",), ("serve-config", "--bind", "x"), (("DAGFLEET_SYNC_INTERVAL", "soon"),)
    )
    cases.append(control)
    payload = [
        {"check": list(c.check), "subcommand": list(c.subcommand or []), "parse": PARSE, "env": dict(c.env)}
        for c in cases
    ]
    secrets_dir = "/var/run/secrets/dagfleet"
    command = [
        "docker", "run", "--rm", "-i", "--read-only", "--tmpfs", "/tmp:mode=1777",
        "--tmpfs", f"{secrets_dir}:mode=1777", "--user", "50000:0", "--entrypoint", "python", IMAGE, "-c", BATCH,
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as stdin:
        json.dump(payload, stdin)
        stdin.seek(0)
        result = subprocess.run(command, stdin=stdin, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"docker run failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return dict(zip([c.id for c in cases], json.loads(result.stdout.strip().splitlines()[-1]), strict=True))


@pytest.mark.docker
@pytest.mark.timeout(IMAGE_TIMEOUT)
def test_the_image_check_is_not_vacuous(image_results: dict[str, dict[str, Any]]) -> None:
    control = image_results["control:bad"]
    assert control["rc"] == 2, control["output"]
    assert "DAGFLEET_SYNC_INTERVAL" in control["output"]
    assert control["parse_rc"] == 2, control["parse_output"]


@pytest.mark.docker
@pytest.mark.timeout(IMAGE_TIMEOUT)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_entrypoint_accepts_in_image(case: Case, image_results: dict[str, dict[str, Any]]) -> None:
    _fail_if_render_error(case)
    result = image_results[case.id]
    assert result["rc"] == 0, f"dagfleet check -- {' '.join(case.check)}\n{result['output']}"
    if case.subcommand:
        assert result["parse_rc"] == 0, f"dagfleet {' '.join(case.subcommand)}\n{result['parse_output']}"
