"""Static checks: ruff's security rules (flake8-bandit, ``S``) are clean on the package and the base DAG."""

from __future__ import annotations

import sys
from pathlib import Path

from support.paths import REPO
from support.proc import run

RUFF = Path(sys.executable).with_name("ruff")


def test_ruff_security_rules_are_clean() -> None:
    proc = run(
        [RUFF, "check", "--select", "S", "--output-format", "concise", "--no-cache", "entrypoint", "dags"],
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, f"ruff S findings:\n{proc.stdout}{proc.stderr}"


def test_no_security_rule_is_silenced_wholesale() -> None:
    """Only line-level `# noqa: S…` with a reason; no file-wide or config-wide S ignores for the package."""
    config = (REPO / "pyproject.toml").read_text()
    for line in config.splitlines():
        if line.strip().startswith(('"entrypoint', '"dags')):
            assert '"S' not in line, f"pyproject.toml silences security rules for the package: {line.strip()}"
    for path in [*REPO.joinpath("entrypoint").rglob("*.py"), *REPO.joinpath("dags").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert "ruff: noqa" not in line, f"{path}:{number}: file-wide noqa"
            if "# noqa: S" in line:
                reason = line.split("# noqa:", 1)[1]
                assert " - " in reason, f"{path}:{number}: `# noqa: S…` without a reason"
