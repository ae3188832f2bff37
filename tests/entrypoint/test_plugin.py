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
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert "dagfleet.service.plugin:DagfleetPlugin" in listed["dagfleet"]["source"]
    # The Fleet page: a FastAPI app under /dagfleet and its entry in Airflow's navigation.
    assert [(a["url_prefix"], a["name"]) for a in listed["dagfleet"]["fastapi_apps"]] == [
        ("/dagfleet", "dagfleet fleet")
    ]
    assert listed["dagfleet"]["external_views"] == [
        {"name": "Fleet", "href": "dagfleet/", "url_route": "fleet", "destination": "nav", "category": "browse"}
    ]
    # Loading plugins imported the authoring API: what makes each forked parse cheap.
    probe = (
        "import sys; from airflow import plugins_manager as pm; pm.ensure_plugins_loaded();"
        " print('dagfleet.authoring.workflow' in sys.modules, 'fastapi' in sys.modules)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    # ... and not the Fleet page's FastAPI app: only the api-server builds it.
    assert loaded.stdout.strip().splitlines()[-1] == "True False"
