"""The reference config API: contract, auth, ETags, reload, lookup by ID, sockets, the bench's counters."""

from __future__ import annotations

import importlib
import json
import socket
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from dagfleet.fleet.errors import DagfleetError
from dagfleet.service.server import ConfigApiServer, WorkflowStore, load_workflows

KEY = "test-key-123"
ROOT = Path(__file__).resolve().parents[2]


def _get(url: str, key: str | None = KEY, **headers: str) -> requests.Response:
    if key is not None:
        headers["x-api-key"] = key
    return requests.get(url, headers=headers, timeout=5)


def test_list_carries_every_config(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {"schedule": "@daily"}, "b": None})
    response = _get(api.url + "/airflowconfigs")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == [{"id": "a", "config": {"schedule": "@daily"}}, {"id": "b", "config": {}}]


def test_ids_format_and_single_config(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {"tags": ["x"]}}, list_format="ids")
    assert _get(api.url + "/airflowconfigs").json() == ["a"]
    assert _get(api.url + "/airflowconfigs?format=objects").json() == [{"id": "a", "config": {"tags": ["x"]}}]
    assert _get(api.url + "/airflowconfigs/a").json() == {"tags": ["x"]}
    assert _get(api.url + "/airflowconfigs/nope").status_code == 404


def test_api_key_is_required_when_configured(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {}})
    assert _get(api.url + "/airflowconfigs", key=None).status_code == 401
    assert _get(api.url + "/airflowconfigs", key="wrong").status_code == 401
    assert _get(api.url + "/healthz", key=None).json() == {"status": "ok"}
    open_api = config_api_factory({"a": {}}, api_key=None)
    assert _get(open_api.url + "/airflowconfigs", key=None).status_code == 200


def test_etag_gives_304_until_the_file_changes(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {}})
    first = _get(api.url + "/airflowconfigs")
    etag = first.headers["ETag"]
    again = _get(api.url + "/airflowconfigs", **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    api.write({"a": {}, "b": {}})
    changed = _get(api.url + "/airflowconfigs", **{"If-None-Match": etag})
    assert changed.status_code == 200
    assert [w["id"] for w in changed.json()] == ["a", "b"]
    assert changed.headers["ETag"] != etag


def test_a_broken_edit_keeps_the_previous_content(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {}})
    api.path.write_text("workflows: [unclosed")
    time.sleep(0.01)
    response = _get(api.url + "/airflowconfigs")
    assert response.status_code == 200
    assert response.json() == [{"id": "a", "config": {}}]


def test_a_fleet_of_10000_answers_each_id_by_its_id(config_api_factory: Any) -> None:
    fleet: list[Any] = [{"id": f"w{i:05d}", "config": {"description": f"#{i}"}} for i in range(10_000)]
    fleet += [{"id": "w00042", "config": {"description": "a repeated ID"}}, {"id": 7, "config": {"tags": ["int"]}}]
    api = config_api_factory(fleet)
    session = requests.Session()
    for workflow_id, description in (("w00000", "#0"), ("w04242", "#4242"), ("w09999", "#9999"), ("w00042", "#42")):
        response = session.get(f"{api.url}/airflowconfigs/{workflow_id}", headers={"x-api-key": KEY}, timeout=5)
        assert response.json() == {"description": description}  # a repeated ID: its first entry answers
    assert session.get(api.url + "/airflowconfigs/7", headers={"x-api-key": KEY}, timeout=5).json() == {"tags": ["int"]}
    assert session.get(api.url + "/airflowconfigs/w10000", headers={"x-api-key": KEY}, timeout=5).status_code == 404
    assert len(api.server.workflows.refresh().by_id) == 10_001  # one dict per loaded file, not a scan per request


def test_accepted_sockets_have_tcp_nodelay(tmp_path: Path) -> None:
    path = tmp_path / "workflows.json"
    path.write_text(json.dumps({"workflows": {"a": {}}}))
    server = ConfigApiServer(("127.0.0.1", 0), WorkflowStore(path))
    with server, socket.create_connection(("127.0.0.1", server.server_port), timeout=5):
        accepted, _ = server.get_request()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert server.connections_accepted == 1


def test_the_listen_backlog_holds_a_burst_of_connections(tmp_path: Path) -> None:
    """A sync's parallel fetches connect at once: none may wait for a dropped SYN to be resent."""
    path = tmp_path / "workflows.json"
    path.write_text(json.dumps({"workflows": {"a": {}}}))
    server = ConfigApiServer(("127.0.0.1", 0), WorkflowStore(path))  # listening, accepting nothing yet
    clients: list[socket.socket] = []
    with server:
        try:
            for _ in range(64):  # socketserver's default backlog (5) would leave the 7th waiting, then timing out
                clients.append(socket.create_connection(("127.0.0.1", server.server_port), timeout=5))
        finally:
            for client in clients:
                client.close()
    assert len(clients) == 64


def test_many_requests_share_one_kept_alive_connection(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {"tags": ["x"]}, "b": {}})
    session = requests.Session()
    headers = {"x-api-key": KEY}
    etag = session.get(api.url + "/airflowconfigs", headers=headers, timeout=5).headers["ETag"]
    statuses = []
    for _ in range(10):
        statuses.append(session.get(api.url + "/airflowconfigs", headers={**headers, "If-None-Match": etag}, timeout=5))
        statuses.append(session.get(api.url + "/airflowconfigs/a", headers=headers, timeout=5))
        statuses.append(session.get(api.url + "/airflowconfigs/nope", headers=headers, timeout=5))
        statuses.append(session.get(api.url + "/airflowconfigs", timeout=5))
    assert {r.status_code for r in statuses} == {304, 200, 404, 401}
    assert api.server.connections_accepted == 1


def test_a_json_file_is_read_as_json(tmp_path: Path) -> None:
    as_json = tmp_path / "workflows.json"
    as_json.write_text(json.dumps({"workflows": {"a": {"tags": ["x"]}, "b": None}}))
    as_yaml = tmp_path / "workflows.yaml"
    as_yaml.write_text("workflows:\n  a: {tags: [x]}\n  b:\n")
    assert load_workflows(as_json) == load_workflows(as_yaml) == [("a", {"tags": ["x"]}), ("b", {})]
    as_json.write_text("workflows: {a: {}}")  # YAML, not JSON
    with pytest.raises(DagfleetError, match=r"workflows\.json is not valid JSON"):
        load_workflows(as_json)


def _bench_apiserver() -> ModuleType:
    """``bench.apiserver`` (the benchmark's counting wrapper), importable from the repository root."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("bench.apiserver")


def test_the_bench_counts_answers_through_the_public_hook(tmp_path: Path) -> None:
    path = tmp_path / "workflows.json"
    path.write_text(json.dumps({"workflows": {"a": {"tags": ["x"]}, "b": {}}}))
    with _bench_apiserver().running(path, "ids") as server:
        session = requests.Session()
        listing = session.get(server.url + "/airflowconfigs", timeout=5)
        assert listing.json() == ["a", "b"]
        config = session.get(server.url + "/airflowconfigs/a", timeout=5)
        again = session.get(
            server.url + "/airflowconfigs/a", headers={"If-None-Match": config.headers["ETag"]}, timeout=5
        )
        assert again.status_code == 304
        missing = session.get(server.url + "/airflowconfigs/nope", timeout=5)
        stats = server.stats(paths=True)
        assert stats["requests"] == 4
        assert stats["statuses"] == {"200": 2, "304": 1, "404": 1}
        assert stats["body_bytes"] == len(listing.content) + len(config.content) + len(missing.content)
        assert stats["paths"] == {"/airflowconfigs": 1, "/airflowconfigs/a": 2, "/airflowconfigs/nope": 1}
        assert server.stats()["requests"] == 4  # asking for the counters is not counted
        server.reset()
        assert server.stats() == {"requests": 0, "statuses": {}, "body_bytes": 0}
