"""The sync's plan (dagfleet.plan) as a sync carries it out: when a record is rewritten."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dagfleet.client import ConfigClient
from dagfleet.materializer import Materializer
from dagfleet.retry import retry_policy
from dagfleet.settings import Settings
from support.faultserver import Behaviour, FaultServer, config_path


@pytest.fixture
def api() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _sync(dags: Path, url: str) -> None:
    settings = Settings(api_url=url, api_key_value="test-key-123", dags_folder=dags, retries=1)
    Materializer(settings, ConfigClient.from_settings(settings, retrying=retry_policy(1, initial=0))).sync()


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
