"""The Airflow plugin that pre-imports dagfleet before the DAG processor forks per file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.mark.airflow
def test_airflow_loads_the_dagfleet_plugin(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [AIRFLOW, "plugins", "-o", "json"], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    plugins = {p["name"]: p["source"] for p in json.loads(result.stdout)}
    assert "dagfleet.plugin:DagfleetPlugin" in plugins["dagfleet"]
    # Loading plugins imported the authoring API: what makes each forked parse cheap.
    probe = (
        "import sys; from airflow import plugins_manager as pm; pm.ensure_plugins_loaded();"
        " print('dagfleet.authoring' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert loaded.stdout.strip().splitlines()[-1] == "True"
