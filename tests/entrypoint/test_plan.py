"""The sync's plan (dagfleet.sync.plan) as a sync carries it out: when a record is rewritten."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dagfleet.api.client import ConfigClient
from dagfleet.api.retry import retry_policy
from dagfleet.fleet.settings import Settings
from dagfleet.sync.apply import FleetSync
from support.faultserver import Behaviour, FaultServer, config_path


@pytest.fixture
def api() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _sync(dags: Path, url: str) -> None:
    settings = Settings(api_url=url, api_key_value="test-key-123", dags_folder=dags, retries=1)
    FleetSync(settings, ConfigClient.from_settings(settings, retrying=retry_policy(1, initial=0))).sync()


def _serve(api: FaultServer, etag: str) -> None:
    api.set("/airflowconfigs", Behaviour.json(["a"]))
    api.set(config_path("a"), Behaviour.json({"tags": ["x"]}, etag=etag))


def test_an_unchanged_workflow_keeps_its_record_byte_for_byte(api: FaultServer, tmp_path: Path) -> None:
    _serve(api, '"v1"')
    _sync(tmp_path, api.url)
    record = tmp_path / ".dagfleet" / "records" / "a.json"
    before = record.read_bytes()
    _sync(tmp_path, api.url)
    assert record.read_bytes() == before  # not even its stored time


def test_a_new_etag_for_the_same_config_is_stored_without_touching_the_dag(api: FaultServer, tmp_path: Path) -> None:
    _serve(api, '"v1"')
    _sync(tmp_path, api.url)
    dag = (tmp_path / "a-mydag.py").read_bytes()
    _serve(api, '"v2"')  # the service re-tagged the same config
    _sync(tmp_path, api.url)
    assert Settings(dags_folder=tmp_path).store.record("a").etag == '"v2"'  # type: ignore[union-attr]
    assert (tmp_path / "a-mydag.py").read_bytes() == dag


# Templates whose own text holds the trailer's marker, and ends in an `X` or in blanks.
ODD = b'"""Mentions # dagfleet-generated: in its docstring."""\nx = 1  \t\n# dagfleet-generated: quoted\n'


@pytest.mark.parametrize("odd_template", [ODD + b"X\n", ODD + b"y = 2 \t\n"])
def test_a_config_change_is_a_config_update_whatever_the_template_holds(
    api: FaultServer, tmp_path: Path, odd_template: bytes
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "odd.py").write_bytes(odd_template)
    dags = tmp_path / "dags"
    settings = Settings(
        api_url=api.url, api_key_value="k" * 12, dags_folder=dags, retries=1, templates_folder=templates
    )
    client = ConfigClient.from_settings(settings, retrying=retry_policy(1, initial=0))
    api.set("/airflowconfigs", Behaviour.json([{"id": "a", "config": {"template": "odd", "tags": ["1"]}}]))
    FleetSync(settings, client).sync()
    api.set("/airflowconfigs", Behaviour.json([{"id": "a", "config": {"template": "odd", "tags": ["2"]}}]))
    report = FleetSync(settings, client).sync()
    assert (report.written, report.config_updated) == ([], ["a-mydag.py"])


def test_a_new_workflow_that_stays_invalid_shows_its_latest_problem(api: FaultServer, tmp_path: Path) -> None:
    api.set("/airflowconfigs", Behaviour.json([{"id": "a", "config": {"catchup": "yes"}}]))
    _sync(tmp_path, api.url)
    assert b"catchup" in (tmp_path / "a-mydag.py").read_bytes()  # its import error names the field
    api.set("/airflowconfigs", Behaviour.json([{"id": "a", "config": {"colour": "red"}}]))
    _sync(tmp_path, api.url)
    stub = (tmp_path / "a-mydag.py").read_bytes()
    assert b"colour" in stub and b"catchup" not in stub


def test_a_missing_default_template_is_named_as_such(api: FaultServer, tmp_path: Path) -> None:
    settings = Settings(
        api_url=api.url, api_key_value="k" * 12, dags_folder=tmp_path, retries=1, default_template="nosuch"
    )
    client = ConfigClient.from_settings(settings, retrying=retry_policy(1, initial=0))
    api.set("/airflowconfigs", Behaviour.json([{"id": "a", "config": {}}, {"id": "b", "config": {"template": "no"}}]))
    report = FleetSync(settings, client).sync()
    default = "config field 'template (DAGFLEET_DEFAULT_TEMPLATE)': unknown template 'nosuch'"
    assert default in report.workflow_problems["a"]
    assert "config field 'template': unknown template 'no'" in report.workflow_problems["b"]
