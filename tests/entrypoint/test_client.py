"""The config API client against real loopback servers: formats, errors, retries."""

from __future__ import annotations

from typing import Any

import pytest

from dagfleet.api.client import ConfigClient, _retry_after, config_path, parse_list, parse_list_body
from dagfleet.api.retry import retry_policy
from dagfleet.fleet.errors import ConfigApiError
from support.net import free_port as _free_port


def test_parse_list_accepts_both_formats_and_reports_bad_entries() -> None:
    entries, problems = parse_list(["a", {"id": "b", "config": {"x": 1}}, 7, {"config": {}}, {"id": "c", "config": 3}])
    assert [(e.workflow_id, e.config) for e in entries] == [("a", None), ("b", {"x": 1}), ("c", None)]
    assert len(problems) == 3
    assert parse_list({"workflows": ["z"]})[0][0].workflow_id == "z"
    with pytest.raises(ConfigApiError, match="expected a JSON list"):
        parse_list({"not": "a list"})


def test_config_path_encodes_the_id_as_one_segment() -> None:
    assert config_path("acme") == "/airflowconfigs/acme"
    assert config_path("a/b c?") == "/airflowconfigs/a%2Fb%20c%3F"


def test_retry_after_seconds_and_dates() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(None) is None
    assert _retry_after("garbage") is None
    for unusable in ("NaN", "nan", "inf", "-inf", "1e999", "-5", "Fri, 31 Dec 99999 23:59:59 GMT"):
        assert _retry_after(unusable) is None, unusable
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_client_gets_list_and_configs_with_etags(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {"tags": ["t"]}}, list_format="ids")
    client = ConfigClient(api.url, "test-key-123", retrying=retry_policy(1))
    listing = client.list_workflows()
    assert [e.workflow_id for e in listing.entries] == ["a"]
    assert client.list_workflows(listing.etag).not_modified
    config = client.get_config("a")
    assert config.config == {"tags": ["t"]}
    assert client.get_config("a", config.etag).not_modified
    assert client.requests_sent == 4


def test_dead_server_is_retried_then_reported_in_one_line() -> None:
    port = _free_port()
    client = ConfigClient(f"http://127.0.0.1:{port}", "sekrit-value", retrying=retry_policy(3, initial=0))
    with pytest.raises(ConfigApiError) as err:
        client.list_workflows()
    assert client.requests_sent == 3
    message = str(err.value)
    assert "unreachable" in message
    assert "DAGFLEET_API_URL" in message
    assert "\n" not in message
    assert "sekrit-value" not in message
    assert "sekrit-value" not in repr(client)


def test_wrong_key_is_not_retried(config_api_factory: Any) -> None:
    api = config_api_factory({"a": {}}, api_key="right-key")
    client = ConfigClient(api.url, "wrong-key", retrying=retry_policy(4, initial=0))
    with pytest.raises(ConfigApiError, match=r"HTTP 401.*DAGFLEET_API_KEY") as err:
        client.list_workflows()
    assert client.requests_sent == 1
    assert "wrong-key" not in str(err.value)
    no_key = ConfigClient(api.url, None, retrying=retry_policy(1))
    with pytest.raises(ConfigApiError, match="no API key was sent"):
        no_key.list_workflows()


def test_a_malformed_list_is_named_with_the_byte_where_it_breaks() -> None:
    """The line says what broke and where, so the config team can find it in its own output."""
    with pytest.raises(ConfigApiError) as caught:
        parse_list_body(b'["alpha", }')
    assert str(caught.value) == (
        "config API sent malformed JSON for the workflow list (JSONDecodeError at byte 10): "
        "fix the config service's output"
    )
