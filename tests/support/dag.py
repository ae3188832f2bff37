"""Generated dags folders for the DAG tests: example workflows, DAG files, DagBag parsing.

Pod render contexts are the product's: ``dagfleet.service.render.render_context``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagfleet import __version__
from dagfleet.fleet.settings import SHIPPED_TEMPLATES
from dagfleet.fleet.store import FleetStore, Record, dag_bytes
from support.paths import REPO

BASE_DAG = SHIPPED_TEMPLATES / "demo.py"
EXAMPLES = REPO / "examples" / "workflows.yaml"


def example_workflows(template: str | None = None) -> dict[str, dict[str, Any]]:
    """The example workflows; ``template`` given: only those of that template (default: demo)."""
    examples = {wid: config or {} for wid, config in yaml.safe_load(EXAMPLES.read_text())["workflows"].items()}
    if template is None:
        return examples
    return {wid: c for wid, c in examples.items() if c.get("template", "demo") == template}


def make_dags(folder: Path, configs: Mapping[str, Mapping[str, Any] | None], template: Path | None = None) -> Path:
    """``<id>-mydag.py`` copies of a template plus their stored records (what sync writes).

    ``template`` None: the shipped template the config names (default: the demo). A ``None``
    config writes the DAG file only (the loader then has to find the config elsewhere).
    """
    store = FleetStore(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for workflow_id, config in configs.items():
        named = (config or {}).get("template")
        chosen = template or (SHIPPED_TEMPLATES / f"{named}.py" if named else BASE_DAG)
        record = Record(workflow_id, dict(config or {}), chosen.stem)
        store.dag_path(workflow_id).write_bytes(dag_bytes(chosen.read_bytes(), record, __version__))
        if config is not None:
            store.write_record(record)
    return folder


def parse_dags(folder: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> Any:
    """A ``DagBag`` of ``folder``, parsed in this process with ``DAGFLEET_*`` settings from ``env``."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DAGFLEET_DAGS_FOLDER", str(folder))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return DagBag(dag_folder=str(folder))
