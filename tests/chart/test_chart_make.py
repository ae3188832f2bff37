"""`make test` on a new machine: the unit step needs no helm; the chart step installs the tools first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from support.paths import REPO

# Not imported from the chart helpers: they are moving to tests/support (issue #19).
# What a chart tool leaves in a command line: its install, its run, its folder on PATH.
CHART_TOOL_MARKS = ("helm version", "/bin/helm", "extract_helm.py", "kubectl-layer", "checkov", "kubernetes-validate")


def dry_run(target: str, tmp_path: Path) -> tuple[list[str], Path]:
    """`make -n <target>` with nothing but make and bash on PATH (no helm) and an empty TOOLS folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("make", "bash"):
        found = shutil.which(program)
        assert found, f"{program} not found"
        (bin_dir / program).symlink_to(found)
    tools = tmp_path / "tools"
    result = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "-n", target, f"TOOLS={tools}"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.splitlines(), tools


def test_unit_step_needs_no_chart_tool(tmp_path: Path) -> None:
    lines, _ = dry_run("test-unit", tmp_path)
    assert any('pytest --ignore=tests/chart -m "not helm"' in line for line in lines), lines
    assert not [line for line in lines if any(mark in line for mark in CHART_TOOL_MARKS)]
    assert not [line for line in lines if "PATH=" in line]


def test_chart_step_installs_helm_before_its_tests(tmp_path: Path) -> None:
    lines, tools = dry_run("test", tmp_path)
    unit = next(i for i, line in enumerate(lines) if '-m "not helm"' in line)
    install = next(i for i, line in enumerate(lines) if "extract_helm.py" in line)
    chart = next(i for i, line in enumerate(lines) if "pytest -m helm" in line)
    assert unit < install < chart
    assert lines[chart].startswith(f'PATH="{tools}/bin:'), lines[chart]
