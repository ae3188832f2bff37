"""Issue #15: `make run` (scripts/devstack.py) gives Airflow dagfleet's dag-processor settings.

Builds the environment devstack starts Airflow with and asks Airflow itself (a real
``airflow.configuration.conf`` in a subprocess) what it resolves: no stack is started.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from dagfleet.service.dagprocessor import DAG_PROCESSOR_DEFAULTS, SECTION, env_name
from support.paths import REPO

PYTHON = REPO / ".venv" / "bin" / "python"
pytestmark = pytest.mark.airflow

READ = (
    "import json, sys; from airflow.configuration import conf; "
    "print(json.dumps({k: conf.get(sys.argv[1], k) for k in sys.argv[2:]}))"
)


def devstack() -> ModuleType:
    spec = importlib.util.spec_from_file_location("devstack", REPO / "scripts" / "devstack.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def resolved(tmp_path: Path, environ: dict[str, str]) -> dict[str, str]:
    dagfleet_env = {"PATH": "/usr/bin:/bin", "DAGFLEET_DAGS_FOLDER": str(tmp_path / "dags")}
    env = devstack().airflow_environment(dagfleet_env, tmp_path / "airflow", 18080, environ)
    (tmp_path / "airflow").mkdir()
    result = subprocess.run(
        [str(PYTHON), "-c", READ, SECTION, *DAG_PROCESSOR_DEFAULTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_make_run_airflow_resolves_the_shipped_settings(tmp_path: Path) -> None:
    assert resolved(tmp_path, {}) == DAG_PROCESSOR_DEFAULTS


def test_the_callers_airflow_variable_wins(tmp_path: Path) -> None:
    values = resolved(tmp_path, {env_name("refresh_interval"): "60", "AIRFLOW__CORE__PARALLELISM": "99"})
    assert values == {**DAG_PROCESSOR_DEFAULTS, "refresh_interval": "60"}
