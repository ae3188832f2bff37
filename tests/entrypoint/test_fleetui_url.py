"""The Fleet page served from DAGFLEET_STATUS_URL (a watch's /status.json), as the chart wires it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dagfleet.service import fleetui
from dagfleet.service.metrics import FleetMetrics, Health, MetricsServer
from dagfleet.sync.fleetstatus import FleetStatus, State, WorkflowStatus, from_json
from support.net import dead_url

STATUS = FleetStatus(
    outcome="synced",
    summary="2 workflow(s): 1 synced, 1 rejected",
    attempted_at=1_700_000_000.0,
    last_success=1_700_000_000.0,
    source="config API",
    workflows=[
        WorkflowStatus("alpha", State.SYNCED, "config API", "demo", 1_700_000_000.0, None, "alpha-mydag.py"),
        WorkflowStatus("beta", State.REJECTED, "config API", problem="beta: tags: expected a list"),
    ],
)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The plugin's app with Airflow's login check replaced (the browser test covers the login);
    an empty local dags folder, so rows can only come from the URL."""
    monkeypatch.setenv("DAGFLEET_DAGS_FOLDER", str(tmp_path / "empty-dags"))
    app = fleetui.fastapi_app()["app"]
    app.dependency_overrides[fleetui._authorize] = lambda: None
    yield TestClient(app)
    app.dependency_overrides.clear()


@pytest.fixture
def status_server() -> Iterator[str]:
    server = MetricsServer(0, FleetMetrics(), Health(60), host="127.0.0.1", status=STATUS.to_json).start()
    try:
        yield f"http://127.0.0.1:{server.port}/status.json"
    finally:
        server.close()


def test_status_round_trips_through_json() -> None:
    assert from_json(STATUS.to_json()) == STATUS


def test_page_from_the_status_url(client: TestClient, status_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGFLEET_STATUS_URL", status_server)
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-workflow="alpha"' in page.text and 'data-workflow="beta"' in page.text
    assert "beta: tags: expected a list" in page.text
    assert 'href="../dags/alpha"' in page.text
    assert client.get("/status.json").json() == STATUS.to_json()

    monkeypatch.delenv("DAGFLEET_STATUS_URL")  # without it: the local (empty) dags folder
    assert "No workflows recorded yet." in client.get("/").text


def test_status_url_down_is_one_line(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    url = dead_url("/status.json")
    monkeypatch.setenv("DAGFLEET_STATUS_URL", url)
    page = client.get("/")
    assert page.status_code == 502
    lines = [line for line in page.text.splitlines() if 'id="unavailable"' in line]
    assert len(lines) == 1
    assert f"DAGFLEET_STATUS_URL {url}" in lines[0] and "ConnectionError" in lines[0]
    assert "Traceback" not in page.text and "<table" not in page.text
    assert "DAGFLEET_STATUS_URL" in client.get("/status.json").json()["error"]


def test_status_url_that_is_not_a_status_or_not_a_url(
    client: TestClient, status_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGFLEET_STATUS_URL", status_server.replace("/status.json", "/healthz"))
    assert "did not answer a dagfleet status" in client.get("/").text
    monkeypatch.setenv("DAGFLEET_STATUS_URL", "sidecar:9108")
    page = client.get("/")
    assert page.status_code == 502 and "DAGFLEET_STATUS_URL: expected an http:// or https:// URL" in page.text
