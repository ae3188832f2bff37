"""Templates as Airflow parses them: the realistic example, a template the test writes against the
public API, and a seed-style base DAG that never imports dagfleet, all synced by `dagfleet sync`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dagfleet.fleet.settings import Settings
from dagfleet.service.render import render_context
from dagfleet.sync.apply import FleetSync
from support.dag import parse_dags
from support.docs import doc_files
from support.net import dead_url

pytestmark = pytest.mark.airflow

# Written against the public API only; its spec decides the tasks.
API_TEMPLATE = """
from __future__ import annotations

import airflow.sdk.definitions.decorators  # noqa: F401
from airflow.sdk import DAG, task

from dagfleet import workflow

wf = workflow(__file__)

with DAG(**wf.dag_args(tags=["own"])) as dag:
    for name in wf.spec["steps"]:
        task(task_id=f"step_{name}")(lambda: None)()
"""

# A seed-style base DAG: never imports dagfleet, reads its ID from its own file name.
SEED_TEMPLATE = """
from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

WORKFLOW_ID = Path(__file__).name.removesuffix("-mydag.py")

with DAG(dag_id=WORKFLOW_ID, schedule=None, tags=["seed"]) as dag:
    EmptyOperator(task_id="hello")
"""


def _sync_static(tmp_path: Path, templates: Path, default: str, ids: tuple[str, ...]) -> Settings:
    settings = Settings(
        static_workflows=ids, dags_folder=tmp_path / "dags", templates_folder=templates, default_template=default
    )
    report = FleetSync(settings).sync()
    assert report.problems == []
    return settings


def test_realistic_example_template_fans_out_per_table(examples: Any) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    acme = examples.bag.dags["acme_etl"]
    assert set(acme.task_ids) == {"plan_tables", "load_table", "report"}
    assert isinstance(acme.get_task("load_table"), MappedOperator)
    assert acme.get_task("report").upstream_task_ids == {"load_table"}
    assert "etl" in acme.tags

    globex = examples.bag.dags["globex_etl"]
    pods = globex.get_task("load_table")
    assert isinstance(pods, MappedOperator)
    assert pods.partial_kwargs["env_vars"]["SOURCE_CONN_ID"] == "globex_mysql"
    assert pods.partial_kwargs["env_vars"]["TARGET_SCHEMA"] == "globex_raw"


def test_realistic_example_plans_each_table_with_the_tenants_secrets(examples: Any) -> None:
    from dagfleet.authoring.workflow import Workflow
    from dagfleet.fleet.config import validate_config

    config = validate_config("globex_etl", examples.configs["globex_etl"])
    planned = Workflow("globex_etl", config, "stored").plan_items({"items": ["accounts", "payments"]})
    assert [p["item"] for p in planned] == ["accounts", "payments"]
    assert {p["secret_set"] for p in planned} == {"globex"}
    assert planned[0]["secret_specs"] == [
        {"deploy_type": "env", "deploy_target": "SOURCE_PASSWORD", "secret": "globex-db", "key": "password"}
    ]
    # The pod operator takes them as JSON through expand_kwargs and turns them into Secrets.
    from dagfleet import PodOperator, pod_kwargs

    op = PodOperator(task_id="t", image="busybox", namespace="ns", **pod_kwargs(planned[0]))
    dag = examples.bag.dags["globex_etl"]
    pod = op.build_pod_request_obj(render_context(dag, op), dry_run=True)
    env = {e.name: e for e in pod.spec.containers[0].env}
    assert env["SOURCE_PASSWORD"].value_from.secret_key_ref.name == "globex-db"
    assert env["DAGFLEET_ITEM"].value == "accounts"


def test_a_template_written_against_the_public_api_parses_with_the_api_dead(
    config_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "steps.py").write_text(API_TEMPLATE)
    api = config_api_factory({"one": {"template": "steps", "spec": {"steps": ["a", "b"]}, "tags": ["t"]}})
    settings = Settings(
        api_url=api.url, api_key_value=api.api_key, dags_folder=tmp_path / "dags", templates_folder=templates
    )
    assert FleetSync(settings).sync().problems == []
    api.close()
    bag = parse_dags(settings.dags_folder, monkeypatch, DAGFLEET_API_URL=dead_url(), DAGFLEET_PARSE_TIMEOUT="1")
    assert bag.import_errors == {}
    dag = bag.dags["one"]
    assert set(dag.task_ids) == {"step_a", "step_b"}
    assert set(dag.tags) == {"own"}  # dag_args(**overrides): the template's word wins


def test_a_seed_style_base_dag_without_dagfleet_keeps_working(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "seed.py").write_text(SEED_TEMPLATE)
    settings = _sync_static(tmp_path, templates, "seed", ("tenant-a", "tenant_b"))
    bag = parse_dags(settings.dags_folder, monkeypatch)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["tenant-a", "tenant_b"]
    assert bag.dags["tenant-a"].task_ids == ["hello"]


def _doc_files(tmp_path: Path) -> dict[str, Path]:
    """The files of docs/templates.md's complete example, written where its commands expect them."""
    files = doc_files("templates.md", tmp_path, "my-")
    assert set(files) == {"my-templates/copy_tables.py", "my-templates/copy_tables.schema.json", "my-workflows.yaml"}
    return files


def test_the_docs_example_validates_syncs_and_parses(
    config_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    import yaml

    files = _doc_files(tmp_path)
    templates = files["my-templates/copy_tables.py"].parent
    check = subprocess.run(
        [sys.executable, "-m", "dagfleet.service.cli", "validate", "--file", str(files["my-workflows.yaml"])],
        env={"PATH": "/usr/bin:/bin", "DAGFLEET_TEMPLATES": str(templates)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    workflows = yaml.safe_load(files["my-workflows.yaml"].read_text())["workflows"]
    api = config_api_factory(workflows)
    settings = Settings(
        api_url=api.url, api_key_value=api.api_key, dags_folder=tmp_path / "dags", templates_folder=templates
    )
    assert FleetSync(settings).sync().problems == []
    bag = parse_dags(settings.dags_folder, monkeypatch)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["acme_copy", "globex_copy"]
    assert bag.dags["acme_copy"].schedule == "@daily"
    assert "acme" in bag.dags["acme_copy"].tags

    # The documented error line.
    api.write({"acme_copy": {"template": "copy_tables", "spec": {**workflows["acme_copy"]["spec"], "tables": [7]}}})
    report = FleetSync(settings).sync()
    assert report.problems == [
        "workflow 'acme_copy': config field 'spec.tables[0]': 7 is not of type 'string'; fix it in the config API"
        "; kept its last known good config"
    ]


def test_a_config_from_the_api_at_parse_time_has_its_spec_checked(
    config_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No record stored by sync (a file copied by hand): the live config's spec meets the schema
    at parse time, and a spec the schema rejects is that DAG's import error."""
    import json

    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "steps.py").write_text(API_TEMPLATE)
    schema = {
        "type": "object",
        "required": ["steps"],
        "properties": {"steps": {"type": "array", "items": {"type": "string"}}},
    }
    (templates / "steps.schema.json").write_text(json.dumps(schema))
    api = config_api_factory(
        {"good": {"template": "steps", "spec": {"steps": ["a"]}}, "bad": {"template": "steps", "spec": {"steps": [1]}}}
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    for workflow_id in ("good", "bad"):
        (dags / f"{workflow_id}-mydag.py").write_text(API_TEMPLATE)
    env = {"DAGFLEET_API_URL": api.url, "DAGFLEET_API_KEY": api.api_key, "DAGFLEET_TEMPLATES": str(templates)}
    bag = parse_dags(dags, monkeypatch, **env)
    assert set(bag.dag_ids) == {"good"}
    (error,) = bag.import_errors.values()
    assert "workflow 'bad': config field 'spec.steps[0]': 1 is not of type 'string'" in error
