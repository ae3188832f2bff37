"""Templates in `dagfleet sync`: several base DAGs in one fleet, specs checked against each
template's JSON Schema, and a DAG file that changes exactly when what feeds its parse changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dagfleet.api.retry import retry_policy
from dagfleet.fleet.settings import Settings
from dagfleet.fleet.store import FleetStore
from dagfleet.sync.apply import FleetSync
from support.sandbox import template_body

# Templates written by the tests (not the shipped ones): their bodies only need to be told apart.
EXTRACT = b'"""extract: a test template (airflow DAG)."""\nTEMPLATE = "extract"\n'
REPORT = b'"""report: a test template (airflow DAG)."""\nTEMPLATE = "report"\n'
EXTRACT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["source_conn_id", "tables"],
    "additionalProperties": False,
    "properties": {
        "source_conn_id": {"type": "string", "minLength": 1},
        "tables": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "target_schema": {"type": "string", "default": "raw"},
    },
}
GOOD_SPEC = {"source_conn_id": "acme_db", "tables": ["orders", "customers"]}


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "extract.py").write_bytes(EXTRACT)
    (folder / "extract.schema.json").write_text(json.dumps(EXTRACT_SCHEMA))
    (folder / "report.py").write_bytes(REPORT)
    return folder


def _settings(tmp_path: Path, url: str, templates: Path, **kw: Any) -> Settings:
    return Settings(
        api_url=url,
        api_key_value="test-key-123",
        dags_folder=tmp_path / "dags",
        templates_folder=templates,
        default_template="report",
        retries=2,
        **kw,
    )


def _sync(settings: Settings) -> Any:
    from dagfleet.api.client import ConfigClient

    return FleetSync(settings, ConfigClient.from_settings(settings, retrying=retry_policy(2, initial=0))).sync()


def _mtimes(store: FleetStore) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in store.dags.glob("*.py")}


def _body(store: FleetStore, workflow_id: str) -> bytes:
    return template_body(store.dag_path(workflow_id).read_bytes())


def _age(store: FleetStore) -> None:
    """Set every DAG file's mtime into the past, so a rewrite is visible whatever the clock's tick."""
    for path in store.dags.glob("*.py"):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))


def test_two_templates_in_one_fleet(config_api_factory: Any, tmp_path: Path, templates: Path) -> None:
    api = config_api_factory(
        {"acme": {"template": "extract", "spec": GOOD_SPEC}, "weekly": {"spec": {"anything": [1, 2]}}, "plain": {}}
    )
    settings = _settings(tmp_path, api.url, templates)
    report = _sync(settings)
    assert report.problems == []
    store = settings.store
    assert _body(store, "acme") == EXTRACT
    assert _body(store, "weekly") == REPORT  # no `template`: DAGFLEET_DEFAULT_TEMPLATE
    assert _body(store, "plain") == REPORT
    assert store.record("acme").template == "extract"  # type: ignore[union-attr]
    assert store.record("acme").config["spec"] == GOOD_SPEC  # type: ignore[union-attr]
    assert store.record("weekly").template == "report"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("spec", "path", "problem"),
    [
        ({"source_conn_id": 7, "tables": ["a"]}, "spec.source_conn_id", "7 is not of type 'string'"),
        ({"tables": ["a"]}, "spec", "'source_conn_id' is a required property"),
        ({**GOOD_SPEC, "tabels": ["x"]}, "spec", "Additional properties are not allowed ('tabels' was unexpected)"),
        ({"source_conn_id": "db", "tables": ["a", 3]}, "spec.tables[1]", "3 is not of type 'string'"),
    ],
)
def test_spec_failing_its_schema_is_rejected_on_one_line_and_keeps_the_last_good(
    config_api_factory: Any, tmp_path: Path, templates: Path, spec: dict[str, Any], path: str, problem: str
) -> None:
    api = config_api_factory({"acme": {"template": "extract", "spec": GOOD_SPEC}})
    settings = _settings(tmp_path, api.url, templates)
    _sync(settings)
    store = settings.store
    before = {p: p.read_bytes() for p in (store.dag_path("acme"), store.record_path("acme"))}

    api.write({"acme": {"template": "extract", "spec": spec}, "newbie": {"template": "extract", "spec": spec}})
    report = _sync(settings)
    assert report.rejected == ["acme", "newbie"]
    acme, newbie = report.problems
    for line, workflow_id in ((acme, "acme"), (newbie, "newbie")):
        assert "\n" not in line
        assert line.startswith(f"workflow {workflow_id!r}: config field {path!r}: {problem}")
    assert acme.endswith("kept its last known good config")
    assert {p: p.read_bytes() for p in before} == before
    # A new workflow gets a DAG whose import error says the same.
    assert newbie.endswith("its DAG will show this as an import error")
    with pytest.raises(ImportError) as raised:
        exec(compile(store.dag_path("newbie").read_bytes(), "newbie-mydag.py", "exec"), {})  # noqa: S102
    assert f"config field {path!r}: {problem}" in str(raised.value)
    assert store.record("newbie") is None


def test_unknown_template_is_rejected(config_api_factory: Any, tmp_path: Path, templates: Path) -> None:
    api = config_api_factory({"acme": {"template": "extract", "spec": GOOD_SPEC}})
    settings = _settings(tmp_path, api.url, templates)
    _sync(settings)
    before = settings.store.dag_path("acme").read_bytes()
    api.write({"acme": {"template": "extrakt", "spec": GOOD_SPEC}})
    report = _sync(settings)
    (line,) = report.problems
    assert line.startswith(
        "workflow 'acme': config field 'template': unknown template 'extrakt' "
        "(known: demo, extract, report, tenant_etl)"
    )
    assert line.endswith("kept its last known good config")
    assert settings.store.dag_path("acme").read_bytes() == before


def test_your_folder_adds_to_the_shipped_templates_and_wins_on_a_clash(
    config_api_factory: Any, tmp_path: Path, templates: Path
) -> None:
    """Issue #24: DAGFLEET_TEMPLATES used to replace the shipped templates ("unknown template 'demo'")."""
    from dagfleet.fleet.settings import SHIPPED_TEMPLATES

    (templates / "tenant_etl.py").write_bytes(b'"""tenant_etl: the user\'s own (airflow DAG)."""\n')
    etl_spec = {"source_conn_id": "db", "tables": ["t"], "target_schema": "s"}
    api = config_api_factory(
        {
            "mine": {"template": "extract", "spec": GOOD_SPEC},
            "shipped": {"template": "demo"},
            "clash": {"template": "tenant_etl", "spec": {"anything": "goes"}},
        }
    )
    settings = _settings(tmp_path, api.url, templates)
    report = _sync(settings)
    assert report.problems == []
    store = settings.store
    assert _body(store, "mine") == EXTRACT
    assert _body(store, "shipped") == (SHIPPED_TEMPLATES / "demo.py").read_bytes()
    assert _body(store, "clash") == (templates / "tenant_etl.py").read_bytes()  # yours, and without its schema
    (templates / "tenant_etl.py").unlink()  # the shipped one is reachable again, with its schema
    api.write({"clash": {"template": "tenant_etl", "spec": etl_spec}})
    assert _sync(settings).problems == []
    assert _body(store, "clash") == (SHIPPED_TEMPLATES / "tenant_etl.py").read_bytes()
    assert settings.template_library().names() == ["demo", "extract", "report", "tenant_etl"]


def test_a_template_edit_rematerializes_exactly_its_users(
    config_api_factory: Any, tmp_path: Path, templates: Path
) -> None:
    api = config_api_factory(
        {"a1": {"template": "extract", "spec": GOOD_SPEC}, "a2": {"template": "extract", "spec": GOOD_SPEC}, "b": {}}
    )
    settings = _settings(tmp_path, api.url, templates)
    store = settings.store
    _sync(settings)
    _age(store)
    (templates / "extract.py").write_bytes(EXTRACT + b"# edited\n")
    report = _sync(settings)
    assert report.written == ["a1-mydag.py", "a2-mydag.py"]
    assert report.unchanged == 1
    mtimes = _mtimes(store)
    assert mtimes["b-mydag.py"] == 1_000_000_000
    assert mtimes["a1-mydag.py"] != 1_000_000_000 and mtimes["a2-mydag.py"] != 1_000_000_000
    assert _body(store, "a1") == EXTRACT + b"# edited\n"


def test_switching_templates_swaps_the_file(config_api_factory: Any, tmp_path: Path, templates: Path) -> None:
    api = config_api_factory({"acme": {"template": "extract", "spec": GOOD_SPEC}})
    settings = _settings(tmp_path, api.url, templates)
    _sync(settings)
    api.write({"acme": {"template": "report"}})
    report = _sync(settings)
    assert report.written == ["acme-mydag.py"]
    assert _body(settings.store, "acme") == REPORT
    assert settings.store.record("acme").template == "report"  # type: ignore[union-attr]
    assert sorted(p.name for p in settings.dags_folder.glob("*.py")) == ["acme-mydag.py"]


def test_config_only_change_changes_exactly_that_file(config_api_factory: Any, tmp_path: Path, templates: Path) -> None:
    workflows = {f"wf{i}": {"tags": [str(i)]} for i in range(4)}
    api = config_api_factory(workflows)
    settings = _settings(tmp_path, api.url, templates)
    store = settings.store
    _sync(settings)
    _age(store)

    unchanged = _sync(settings)  # nothing changed: no file is touched
    assert (unchanged.written, unchanged.config_updated, unchanged.unchanged) == ([], [], 4)
    assert set(_mtimes(store).values()) == {1_000_000_000}

    api.write({**workflows, "wf2": {"tags": ["changed"]}})
    report = _sync(settings)
    assert (report.written, report.config_updated, report.unchanged) == ([], ["wf2-mydag.py"], 3)
    changed = {name for name, mtime in _mtimes(store).items() if mtime != 1_000_000_000}
    assert changed == {"wf2-mydag.py"}
    assert _body(store, "wf2") == REPORT  # the template is the same; the trailer line changed


def test_a_new_dagfleet_version_marks_every_generated_file(
    config_api_factory: Any, tmp_path: Path, templates: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = config_api_factory({"a": {}, "b": {"template": "extract", "spec": GOOD_SPEC}})
    settings = _settings(tmp_path, api.url, templates)
    _sync(settings)
    _age(settings.store)
    monkeypatch.setattr("dagfleet.sync.apply.__version__", "99.0.0")
    report = _sync(settings)
    assert report.written == ["a-mydag.py", "b-mydag.py"]
    assert all(mtime != 1_000_000_000 for mtime in _mtimes(settings.store).values())
    assert b"dagfleet 99.0.0" in settings.store.dag_path("a").read_bytes()


def test_base_dag_setting_is_the_one_template_shortcut(config_api_factory: Any, tmp_path: Path) -> None:
    base = tmp_path / "own" / "pipeline.py"
    base.parent.mkdir()
    base.write_bytes(EXTRACT)
    api = config_api_factory({"a": {}})
    env = {"DAGFLEET_BASE_DAG": str(base), "DAGFLEET_DAGS_FOLDER": str(tmp_path / "dags")}
    settings = Settings.from_env(env)
    assert settings.default_template == "pipeline"
    from dataclasses import replace

    _sync(replace(settings, api_url=api.url, api_key_value="test-key-123"))
    assert _body(settings.store, "a") == EXTRACT


def test_the_summary_line_stays_short_at_a_thousand_workflows(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DAGFLEET_STATIC_WORKFLOWS": ",".join(f"workflow-{i:04d}" for i in range(1000)),
        "DAGFLEET_DAGS_FOLDER": str(tmp_path / "dags"),
    }
    env.pop("DAGFLEET_API_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "dagfleet.service.cli", "sync"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if " INFO " in line]
    assert lines[-1].endswith(
        "synced 1000 workflow(s) from DAGFLEET_STATIC_WORKFLOWS: 1000 written, 0 config updated, 0 unchanged, "
        "0 pruned, 0 rejected, 0 problem(s)"
    )
    assert max(len(line) for line in lines) < 500
    assert any(line.endswith("… and 990 more") for line in lines)
