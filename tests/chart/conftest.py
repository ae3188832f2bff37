"""Chart test fixtures: the helm check, and the scanners run once per session over every scenario."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.chart import KUBE_VERSIONS, SCENARIOS, helm_binary, scenario_manifest, tool


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every chart test is a `helm` test: `make chart-test` runs them (`-m helm`) after `make tools`."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.helm)


@pytest.fixture(autouse=True)
def _helm_or_fail(request: pytest.FixtureRequest) -> None:
    """Tests marked `helm` fail (never skip) without helm: `make tools` provides it."""
    if request.node.get_closest_marker("helm") is None:
        return
    try:
        helm_binary()
    except RuntimeError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def rendered_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every scenario rendered to <scenario>.yaml (the pod template as a document of its own)."""
    folder = tmp_path_factory.mktemp("rendered")
    for scenario in SCENARIOS:
        (folder / f"{scenario}.yaml").write_text(scenario_manifest(scenario))
    return folder


@pytest.fixture(scope="session")
def kubernetes_validate(rendered_dir: Path) -> dict[tuple[str, str], list[str]]:
    """(scenario, kube version) -> the problems kubernetes-validate --strict reports (one run per version)."""
    program = tool("CHART_TEST_KUBERNETES_VALIDATE", "kubernetes-validate", "kubernetes-validate")
    problems: dict[tuple[str, str], list[str]] = {}
    for version in KUBE_VERSIONS:
        files = [str(rendered_dir / f"{s}.yaml") for s in SCENARIOS]
        result = subprocess.run(
            [program, "--strict", "--quiet", "--no-warn", "-k", version, *files],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        lines = (result.stdout + result.stderr).splitlines()
        for scenario in SCENARIOS:
            path = str(rendered_dir / f"{scenario}.yaml")
            problems[(scenario, version)] = [line for line in lines if path in line]
        if result.returncode != 0 and not any(problems[(s, version)] for s in SCENARIOS):
            raise AssertionError(f"kubernetes-validate failed ({result.returncode}):\n" + "\n".join(lines[-20:]))
    return problems


@pytest.fixture(scope="session")
def checkov_results(rendered_dir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """scenario -> {"failed": [...], "skipped": [...], "passed": [...]}: one checkov run for all scenarios."""
    program = tool("CHART_TEST_CHECKOV", "checkov", "checkov")
    result = subprocess.run(
        [program, "--framework", "kubernetes", "--skip-download", "--output", "json", "--directory", str(rendered_dir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=rendered_dir,
    )
    if result.returncode not in (0, 1):  # 1 = some check failed: reported per scenario below
        raise AssertionError(f"checkov crashed ({result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert all(r.get("summary", {}).get("parsing_errors", 0) == 0 for r in reports), result.stdout[-2000:]
    by_scenario: dict[str, dict[str, list[dict[str, Any]]]] = {
        s: {"failed": [], "skipped": [], "passed": []} for s in SCENARIOS
    }
    for part in reports:
        for outcome in ("failed", "skipped", "passed"):
            for check in part["results"].get(f"{outcome}_checks", []):
                scenario = Path(check["file_path"]).stem
                by_scenario[scenario][outcome].append(check)
    return by_scenario
