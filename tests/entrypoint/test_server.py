"""The reference config API: contract, auth, ETags, reload."""

from __future__ import annotations

import time
from typing import Any

import requests

KEY = "test-key-123"


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
