"""`dagfleet validate`: a workflows file or the live config API, checked without Airflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from support.paths import REPO

SCHEMA = {
    "type": "object",
    "required": ["tables"],
    "additionalProperties": False,
    "properties": {"tables": {"type": "array", "items": {"type": "string"}}},
}


def _validate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "dagfleet.service.cli", "validate", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "copy.py").write_text('"""copy: a test template (airflow DAG)."""\n')
    (folder / "copy.schema.json").write_text(json.dumps(SCHEMA))
    return folder


def _write(tmp_path: Path, workflows: dict[str, Any]) -> Path:
    path = tmp_path / "workflows.yaml"
    path.write_text(yaml.safe_dump({"workflows": workflows}))
    return path


def test_the_example_workflows_are_valid() -> None:
    result = _validate("--file", str(REPO / "examples" / "workflows.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "all valid" in result.stderr


def test_a_bad_file_gives_one_line_per_problem_and_exit_1(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "fine": {"template": "copy", "spec": {"tables": ["a"]}},
            "wrong-type": {"template": "copy", "spec": {"tables": "a"}},
            "missing": {"template": "copy", "spec": {}},
            "unknown-property": {"template": "copy", "spec": {"tables": [], "tabels": []}},
            "no-such-template": {"template": "kopy"},
            "fleet-field": {"schedule": "every day"},
            "bad/id": {},
        },
    )
    result = _validate("--file", str(path), "--templates", str(_templates(tmp_path)))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 6, result.stdout
    assert lines[0].startswith("workflow ID 'bad/id' is not allowed")
    by_id = {line.split("'")[1]: line for line in lines[1:]}
    assert "config field 'spec.tables': 'a' is not of type 'array'" in by_id["wrong-type"]
    assert "config field 'spec': 'tables' is a required property" in by_id["missing"]
    assert "('tabels' was unexpected)" in by_id["unknown-property"]
    unknown = "config field 'template': unknown template 'kopy' (known: copy, demo, tenant_etl)"  # shipped too
    assert unknown in by_id["no-such-template"]
    assert "config field 'schedule'" in by_id["fleet-field"]
    assert "fine" not in by_id
    assert "6 problem(s)" in result.stderr


def test_one_line_per_problem_not_per_workflow(tmp_path: Path) -> None:
    """Issue #28: a workflow with three problems gives three lines, each naming its field."""
    path = _write(
        tmp_path,
        {
            "many": {"template": "copy", "schedule": "every day", "catchup": "yes", "spec": {"tables": "a"}},
            "fine": {"template": "copy", "spec": {"tables": ["a"]}},
        },
    )
    result = _validate("--file", str(path), "--templates", str(_templates(tmp_path)))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout  # the fleet fields fail first: the spec is checked after them
    assert all(line.startswith("workflow 'many': config field '") for line in lines), lines
    assert [line.split("'")[3] for line in lines] == ["schedule", "catchup"]
    assert all(line.endswith("; fix it in the config API") for line in lines), lines
    spec_only = _write(tmp_path, {"spec": {"template": "copy", "spec": {"tables": [1, 2], "x": 1}}})
    result = _validate("--file", str(spec_only), "--templates", str(tmp_path / "templates"))
    assert [line.split("'")[3] for line in result.stdout.splitlines()] == ["spec", "spec.tables[0]", "spec.tables[1]"]
    assert "problem(s)" in result.stderr and "3 problem(s)" in result.stderr


def test_the_live_api_good_and_bad(config_api_factory: Any, tmp_path: Path) -> None:
    templates = _templates(tmp_path)
    api = config_api_factory({"a": {"template": "copy", "spec": {"tables": ["t"]}}}, list_format="ids")
    env = {"DAGFLEET_API_URL": api.url, "DAGFLEET_API_KEY": api.api_key, "DAGFLEET_TEMPLATES": str(templates)}
    good = _validate(**env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "validated 1 workflow(s): all valid" in good.stderr
    api.write({"a": {"template": "copy", "spec": {"tables": [1]}}})
    bad = _validate(**env)
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        "workflow 'a': config field 'spec.tables[0]': 1 is not of type 'string'; fix it in the config API"
    ]
    assert api.api_key not in bad.stdout + bad.stderr
