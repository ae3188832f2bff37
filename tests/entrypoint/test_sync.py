"""`dagfleet sync` in-process against the reference config API: formats, prune, idempotence, fallbacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dagfleet import __version__
from dagfleet.api.retry import retry_policy
from dagfleet.fleet.settings import SHIPPED_TEMPLATES, Settings
from dagfleet.fleet.store import dag_bytes
from dagfleet.sync.apply import FleetSync
from dagfleet.sync.report import Outcome
from support.net import dead_url

BASE = (SHIPPED_TEMPLATES / "demo.py").read_bytes()


def _settings(dags: Path, url: str | None, **kw: Any) -> Settings:
    return Settings(api_url=url, api_key_value="test-key-123", dags_folder=dags, retries=2, **kw)


def _sync(settings: Settings) -> Any:
    from dagfleet.api.client import ConfigClient

    client = ConfigClient.from_settings(settings, retrying=retry_policy(2, initial=0)) if settings.api_url else None
    return FleetSync(settings, client).sync()


def _dag_files(dags: Path) -> list[str]:
    return sorted(p.name for p in dags.glob("*.py"))


@pytest.mark.parametrize("list_format", ["objects", "ids"])
def test_one_dag_per_workflow_with_its_config_stored(config_api_factory: Any, tmp_path: Path, list_format: str) -> None:
    api = config_api_factory({"alpha": {"tags": ["a"]}, "beta": {}}, list_format=list_format)
    settings = _settings(tmp_path / "dags", api.url)
    report = _sync(settings)
    assert report.outcome is Outcome.SYNCED
    assert report.problems == []
    assert _dag_files(settings.dags_folder) == ["alpha-mydag.py", "beta-mydag.py"]
    store = settings.store
    for workflow_id in ("alpha", "beta"):
        record = store.record(workflow_id)
        assert record is not None
        assert record.template == "demo"
        assert store.dag_path(workflow_id).read_bytes() == dag_bytes(BASE, record, __version__)
    assert store.record("alpha").config == {"tags": ["a"]}  # type: ignore[union-attr]
    assert store.record("beta").config == {}  # type: ignore[union-attr]
    manifest = json.loads(store.manifest_path.read_text())
    assert manifest["files"] == {"alpha-mydag.py": "alpha", "beta-mydag.py": "beta"}
    # Nothing but generated DAGs and the state folder at the top level.
    assert sorted(p.name for p in settings.dags_folder.iterdir()) == [".dagfleet", *_dag_files(settings.dags_folder)]


@pytest.mark.parametrize("list_format", ["objects", "ids"])
def test_second_sync_rewrites_nothing_and_transfers_no_config(
    config_api_factory: Any, tmp_path: Path, list_format: str
) -> None:
    api = config_api_factory({f"wf{i}": {"tags": [str(i)]} for i in range(5)}, list_format=list_format)
    settings = _settings(tmp_path / "dags", api.url)
    _sync(settings)
    mtimes = {p: p.stat().st_mtime_ns for p in settings.dags_folder.rglob("*.py")}
    again = _sync(settings)
    assert again.written == []
    assert again.unchanged == 5
    assert again.bytes == 0  # every answer was a 304
    assert {p: p.stat().st_mtime_ns for p in settings.dags_folder.rglob("*.py")} == mtimes


def test_changed_config_is_picked_up_in_ids_mode(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {"tags": ["old"]}}, list_format="ids")
    settings = _settings(tmp_path / "dags", api.url)
    _sync(settings)
    api.write({"a": {"tags": ["new"]}})
    _sync(settings)
    assert settings.store.record("a").config == {"tags": ["new"]}  # type: ignore[union-attr]


def test_prune_removes_only_generated_files_of_gone_workflows(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"keep": {}, "gone": {}})
    settings = _settings(tmp_path / "dags", api.url)
    _sync(settings)
    # Files dagfleet did not generate, even ones that look like its own, are never touched.
    foreign = ["hand_written.py", "other-mydag.py", "notes.txt"]
    for name in foreign:
        (settings.dags_folder / name).write_text("# mine\n")
    api.write({"keep": {}})
    report = _sync(settings)
    assert report.pruned == ["gone-mydag.py"]
    assert not settings.store.record_path("gone").exists()
    assert sorted(p.name for p in settings.dags_folder.iterdir() if p.name != ".dagfleet") == sorted(
        ["keep-mydag.py", *foreign]
    )


def test_empty_list_prunes_nothing_unless_allowed(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {}, "b": {}})
    settings = _settings(tmp_path / "dags", api.url)
    _sync(settings)
    api.write({})
    report = _sync(settings)
    assert report.outcome is Outcome.KEPT_LAST_KNOWN_GOOD
    assert "DAGFLEET_ALLOW_EMPTY" in report.problems[0]
    assert _dag_files(settings.dags_folder) == ["a-mydag.py", "b-mydag.py"]
    allowed = _settings(tmp_path / "dags", api.url, allow_empty=True)
    assert _sync(allowed).pruned == ["a-mydag.py", "b-mydag.py"]
    assert _dag_files(settings.dags_folder) == []


def test_bad_ids_are_rejected_alone(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"good": {}, "../x": {}, "a/b": {}, "x" * 300: {}, "sp ace": {}, "dup": {}, "DUP": {}})
    settings = _settings(tmp_path / "dags", api.url)
    report = _sync(settings)
    assert report.outcome is Outcome.SYNCED
    assert _dag_files(settings.dags_folder) == ["good-mydag.py"]
    assert len(report.problems) == 6
    assert all("\n" not in p for p in report.problems)
    assert any("'dup'" in p and "more than once" in p for p in report.problems)
    assert not (tmp_path / "x-mydag.py").exists()


# Bookkeeping every sync updates, a failing one included (its outcome goes to status.json).
SYNC_RECORDS = {"lock", "status.json"}


def test_api_down_keeps_the_last_known_good_set(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {"tags": ["t"]}})
    settings = _settings(tmp_path / "dags", api.url)
    _sync(settings)
    before = {p: p.read_bytes() for p in settings.dags_folder.rglob("*") if p.is_file() and p.name not in SYNC_RECORDS}
    down = _settings(tmp_path / "dags", dead_url())
    report = _sync(down)
    assert report.outcome is Outcome.KEPT_LAST_KNOWN_GOOD
    assert "unreachable" in report.problems[0]
    assert "kept the last known good set of 1 DAG(s)" in report.problems[0]
    after = {p: p.read_bytes() for p in settings.dags_folder.rglob("*") if p.is_file() and p.name not in SYNC_RECORDS}
    assert after == before


def test_static_list_without_api_and_as_fallback(tmp_path: Path) -> None:
    static = _settings(tmp_path / "one", None, static_workflows=("s1", "s2"))
    report = _sync(static)
    assert report.outcome is Outcome.SYNCED
    assert report.source == "DAGFLEET_STATIC_WORKFLOWS"
    assert _dag_files(tmp_path / "one") == ["s1-mydag.py", "s2-mydag.py"]

    fallback = _settings(tmp_path / "two", dead_url(), static_workflows=("s1",))
    report = _sync(fallback)
    assert report.outcome is Outcome.SYNCED
    assert "using DAGFLEET_STATIC_WORKFLOWS" in report.problems[0]
    assert _dag_files(tmp_path / "two") == ["s1-mydag.py"]

    nothing = _settings(tmp_path / "three", dead_url())
    report = _sync(nothing)
    assert report.outcome is Outcome.NOTHING_USABLE
    assert "no last known good set" in report.problems[0]


def test_bad_config_keeps_last_good_and_new_bad_config_surfaces(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {"tags": ["ok"]}})
    settings = _settings(tmp_path / "dags", api.url)
    _sync(settings)
    api.write({"a": {"retries_typo": 1, "tags": "not-a-list"}, "fresh": {"schedule": 12}})
    report = _sync(settings)
    assert settings.store.record("a").config == {"tags": ["ok"]}  # type: ignore[union-attr]  # last known good kept
    assert any(p.startswith("workflow 'a'") and "kept its last known good config" in p for p in report.problems)
    assert any(p.startswith("workflow 'fresh'") and "import error" in p for p in report.problems)
    assert _dag_files(settings.dags_folder) == ["a-mydag.py", "fresh-mydag.py"]
