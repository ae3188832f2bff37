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


@pytest.mark.parametrize("left", ["dag", "record"])
def test_pruning_a_half_removed_workflow_removes_what_is_left(tmp_path: Path, left: str) -> None:
    """A sync stopped between the two unlinks of a prune leaves one half: the next prune removes it."""
    store = FleetStore(tmp_path)
    if left == "dag":
        store.write_dag("acme", b"x = 1\n")
    else:
        store.write_record(Record("acme", {}, "demo", stored_at=0.0))
    store.remove("acme-mydag.py", "acme")
    assert not store.dag_path("acme").exists() and not store.record_path("acme").exists()


def test_removing_a_record_removes_that_workflows_record_alone(tmp_path: Path) -> None:
    store = FleetStore(tmp_path)
    for workflow_id in ("acme", "globex"):
        store.write_record(Record(workflow_id, {}, "demo", stored_at=0.0))
    store.remove_record("acme")
    store.remove_record("acme")  # already gone: nothing to do
    assert (store.record("acme"), store.record("globex")) == (None, Record("globex", {}, "demo", stored_at=0.0))
