"""The Fleet page's HTML (the browser test in tests/e2e/test_fleet_page.py covers the rest)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from dagfleet.fleet.settings import Settings
from dagfleet.service.fleetui import dags_folder, render_page
from dagfleet.sync import fleetstatus
from dagfleet.sync.apply import FleetSync
from dagfleet.sync.fleetstatus import FleetStatus, State, WorkflowStatus


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_config_values_in_problems_cannot_inject_markup() -> None:
    """Problems quote what the config API sent: it must reach the page as text, never as markup."""
    evil = "workflow 'x': config field 'tags': got '<script>alert(1)</script><img src=x onerror=alert(2)>'"
    status = FleetStatus(
        outcome="synced",
        summary="synced 1 workflow(s) <b>",
        problems=['list entry "<iframe>" skipped'],
        workflows=[WorkflowStatus("x", State.REJECTED, "config API", problem=evil, dag_file="x-mydag.py")],
    )
    page = render_page(status, now=0.0)
    parser = _Collect()
    parser.feed(page)
    tags = {tag for tag, _ in parser.tags}
    assert not tags & {"script", "img", "iframe", "b"}
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_links_only_for_workflows_with_a_dag() -> None:
    status = FleetStatus(
        outcome="synced",
        summary="s",
        workflows=[
            WorkflowStatus("a.b-c", State.SYNCED, "config API", stored_at=1.0, dag_file="a.b-c-mydag.py"),
            WorkflowStatus("gone", State.PRUNED, "-"),
            # A new workflow rejected before any good config: its file only raises the import error.
            WorkflowStatus("newbie", State.REJECTED, "config API", problem="p", dag_file="newbie-mydag.py"),
        ],
    )
    parser = _Collect()
    parser.feed(render_page(status, now=0.0))
    links = [attrs for tag, attrs in parser.tags if tag == "a"]
    assert links == [{"href": "../dags/a.b-c", "target": "_top"}]


def test_a_real_sync_links_the_kept_workflow_and_not_the_new_rejected_one(
    config_api_factory: Any, tmp_path: Path
) -> None:
    """Issue #24: the page linked a rejected new workflow to a DAG that Airflow never had."""
    api = config_api_factory({"kept": {}})
    settings = Settings(api_url=api.url, api_key_value="test-key-123", dags_folder=tmp_path / "dags", retries=1)
    assert FleetSync(settings).sync().problems == []
    api.write({"kept": {"schedule": "every day"}, "newbie": {"schedule": "every day"}})
    FleetSync(settings).sync()
    status = fleetstatus.load(settings)
    assert {w.workflow_id: (w.state, bool(w.dag_file)) for w in status.workflows} == {
        "kept": (State.REJECTED, True),  # its last good DAG stays
        "newbie": (State.REJECTED, True),
    }
    parser = _Collect()
    parser.feed(render_page(status, now=0.0))
    assert [attrs["href"] for tag, attrs in parser.tags if tag == "a"] == ["../dags/kept"]


def test_dags_folder_prefers_dagfleets_own_setting() -> None:
    assert str(dags_folder({"DAGFLEET_DAGS_FOLDER": "/srv/dags"})) == "/srv/dags"
