"""The dags folder's layout (dagfleet.fleet.store): what a generated DAG file holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagfleet.fleet.store import TRAILER_PREFIX, FleetStore, Record, dag_bytes


@pytest.mark.parametrize("template", [b"x = 1", b"x = 1\n"])
def test_the_trailer_is_a_line_of_its_own_whatever_the_template_ends_with(template: bytes) -> None:
    data = dag_bytes(template, Record("acme", {}, "demo", stored_at=0.0), "1.2.3")
    body, trailer = data.split(TRAILER_PREFIX)
    assert body == b"x = 1\n"
    assert trailer.endswith(b"\n") and trailer.count(b"\n") == 1


def test_an_empty_template_gets_the_trailer_alone() -> None:
    data = dag_bytes(b"", Record("acme", {}, "demo", stored_at=0.0), "1.2.3")
    assert data.startswith(TRAILER_PREFIX) and data.count(b"\n") == 1


def test_the_layout_is_the_documented_one(tmp_path: Path) -> None:
    """docs: `<dags>/.dagfleet/{manifest.json, records/<id>.json, state.json, status.json, cache/, lock, tmp/}`."""
    store = FleetStore(tmp_path)
    state = tmp_path / ".dagfleet"
    assert (store.manifest_path, store.sync_state_path, store.status_path, store.lock_path) == (
        state / "manifest.json", state / "state.json", state / "status.json", state / "lock"
    )  # fmt: skip
    assert (store.records, store.cache_dir, store.tmp) == (state / "records", state / "cache", state / "tmp")
    assert store.record_path("acme") == state / "records" / "acme.json"


@pytest.mark.parametrize("text", ["[1]", '{"files": [1]}', '"x"'])
def test_a_manifest_that_is_not_one_lists_nothing(tmp_path: Path, text: str) -> None:
    (tmp_path / ".dagfleet").mkdir()
    (tmp_path / ".dagfleet" / "manifest.json").write_text(text)
    assert FleetStore(tmp_path).manifest() == {}
