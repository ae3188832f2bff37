"""Parse-time config loading: stored -> fresh cache -> live API (bounded) -> last known good.

Real things over loopback: the reference config API (`dagfleet serve-config`), a server that
accepts and never answers, a port nobody listens on, and a real redis-server.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dagfleet.authoring.cache import DiskCache, LayeredCache, RedisCache, open_cache
from dagfleet.authoring.loader import load, parse_timeouts
from dagfleet.fleet.errors import WorkflowConfigError
from dagfleet.fleet.settings import Settings
from dagfleet.fleet.store import Record
from support.net import SilentServer, dead_url, free_port
from support.redis import RedisServer

KEY = "test-key-123"  # the key config_api_factory's server asks for
ACME = {"schedule": "@daily", "tags": ["acme"], "items": ["a", "b"]}


def _settings(dags: Path, url: str | None = None, **kw: Any) -> Settings:
    return Settings(api_url=url, api_key_value=KEY, dags_folder=dags, **kw)


def _store(settings: Settings, workflow_id: str, config: dict[str, Any]) -> None:
    settings.store.write_record(Record(workflow_id, config, "demo"))


def test_stored_config_wins_without_any_network(tmp_path: Path, silent_api: SilentServer) -> None:
    settings = _settings(tmp_path, silent_api.url, parse_timeout=5)
    _store(settings, "acme", ACME)
    started = time.monotonic()
    loaded = load("acme", settings)
    assert time.monotonic() - started < 1  # a request to the silent API would take 5 s
    assert loaded.source == "stored"
    assert loaded.config.tags == ["acme"]


def test_no_api_and_nothing_stored_gives_the_defaults(tmp_path: Path) -> None:
    loaded = load("static_one", _settings(tmp_path))
    assert loaded.source == "defaults"
    assert loaded.config.schedule is None


def test_invalid_stored_config_is_an_error_naming_the_field(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _store(settings, "acme", {"schedule": "often"})
    with pytest.raises(WorkflowConfigError, match=r"^workflow 'acme': config field 'schedule': "):
        load("acme", settings)


def test_live_api_then_fresh_cache_then_last_known_good(
    tmp_path: Path, config_api_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = config_api_factory({"acme": ACME})
    settings = _settings(tmp_path, api.url, cache_ttl=300)
    first = load("acme", settings)
    assert (first.source, first.config.tags) == ("api", ["acme"])
    assert DiskCache(settings.store.cache_dir).get("acme") is not None

    api.close()  # from now on every request would fail
    assert load("acme", settings).source == "cache"  # fresh: no request at all

    stale = _settings(tmp_path, api.url, cache_ttl=0.001)
    with caplog.at_level(logging.WARNING, logger="dagfleet.authoring.loader"):
        last_good = load("acme", stale)
    assert (last_good.source, last_good.config.tags) == ("last-known-good", ["acme"])
    assert "using the last known good config" in caplog.text
    assert KEY not in caplog.text


def test_stale_cache_is_refreshed_from_the_api(tmp_path: Path, config_api_factory: Any) -> None:
    api = config_api_factory({"acme": ACME})
    settings = _settings(tmp_path, api.url, cache_ttl=0.001)
    DiskCache(settings.store.cache_dir).put("acme", {"tags": ["old"]}, now=time.time() - 60)
    loaded = load("acme", settings)
    assert (loaded.source, loaded.config.tags) == ("api", ["acme"])
    assert DiskCache(settings.store.cache_dir).get("acme").config["tags"] == ["acme"]  # type: ignore[union-attr]


def test_hung_api_is_bounded_by_the_parse_timeout(tmp_path: Path, silent_api: SilentServer) -> None:
    settings = _settings(tmp_path, silent_api.url, parse_timeout=1, connect_timeout=3, read_timeout=10)
    assert sum(parse_timeouts(settings)) <= settings.parse_timeout
    DiskCache(settings.store.cache_dir).put("acme", ACME, now=time.time() - 3600)
    started = time.monotonic()
    loaded = load("acme", settings)
    assert time.monotonic() - started < 2
    assert loaded.source == "last-known-good"


def test_dead_api_and_nothing_cached_is_one_clear_line(tmp_path: Path) -> None:
    url = dead_url()
    with pytest.raises(WorkflowConfigError) as caught:
        load("acme", _settings(tmp_path, url, parse_timeout=2))
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("workflow 'acme': no config to build the DAG from: dagfleet sync stored none")
    assert "unreachable" in message


def test_invalid_live_config_is_an_error_and_is_not_cached(tmp_path: Path, config_api_factory: Any) -> None:
    api = config_api_factory({"acme": {"pod": {"image": "x", "namespace": "Bad"}}})
    settings = _settings(tmp_path, api.url)
    with pytest.raises(WorkflowConfigError, match=r"config field 'pod.namespace'"):
        load("acme", settings)
    assert DiskCache(settings.store.cache_dir).get("acme") is None


def test_wrong_api_key_falls_back_to_last_known_good(tmp_path: Path, config_api_factory: Any) -> None:
    api = config_api_factory({"acme": ACME})
    settings = Settings(api_url=api.url, api_key_value="wrong-key", dags_folder=tmp_path, cache_ttl=0.001)
    DiskCache(settings.store.cache_dir).put("acme", {"tags": ["cached"]}, now=time.time() - 60)
    loaded = load("acme", settings)
    assert (loaded.source, loaded.config.tags) == ("last-known-good", ["cached"])


def test_disk_cache_ignores_corrupt_and_foreign_entries(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path)
    cache.path("acme").write_text("{not json")
    assert cache.get("acme") is None
    cache.path("acme").write_text(json.dumps({"workflow_id": "other", "stored_at": 1, "config": {}}))
    assert cache.get("acme") is None
    entry = cache.put("acme", {"tags": ["x"]})
    assert cache.get("acme") == entry
    assert entry.fresh(60) and not entry.fresh(0)


# -- Redis -----------------------------------------------------------------------------------
_LOAD_SCRIPT = """
import json, sys
from dagfleet.authoring.loader import load
loaded = load(sys.argv[1])
print(json.dumps({"source": loaded.source, "tags": loaded.config.tags}))
"""


def _load_in_process(workflow_id: str, dags: Path, **env: str) -> dict[str, Any]:
    """Load a config in a separate Python process (another DAG processor, another node)."""
    environment = {"PATH": "/usr/bin:/bin", "DAGFLEET_DAGS_FOLDER": str(dags), "DAGFLEET_API_KEY": KEY, **env}
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, workflow_id], capture_output=True, text=True, env=environment, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_redis_cache_is_shared_between_processes(
    tmp_path: Path, config_api_factory: Any, redis_server: RedisServer
) -> None:
    api = config_api_factory({"shared": {"tags": ["from-api"]}})
    env = {"DAGFLEET_API_URL": api.url, "DAGFLEET_CACHE_URL": redis_server.url, "DAGFLEET_CACHE_TTL": "300"}
    first = _load_in_process("shared", tmp_path / "node-a", **env)
    assert first == {"source": "api", "tags": ["from-api"]}

    api.close()
    # Another process with its own (empty) dags folder: only Redis can know the config.
    second = _load_in_process("shared", tmp_path / "node-b", **env)
    assert second == {"source": "cache", "tags": ["from-api"]}
    # Stale in Redis and the API is down: Redis still serves as the last known good.
    third = _load_in_process("shared", tmp_path / "node-c", **{**env, "DAGFLEET_CACHE_TTL": "0.001"})
    assert third == {"source": "last-known-good", "tags": ["from-api"]}


def test_redis_backend_round_trip(redis_server: RedisServer) -> None:
    cache = RedisCache(redis_server.url)
    entry = cache.put("roundtrip", {"tags": ["r"]}, now=123.0)
    assert cache.get("roundtrip") == entry
    assert cache.get("missing") is None
    assert "127.0.0.1" not in repr(cache)
    cache.close()


def test_dead_redis_falls_back_to_the_disk_cache_quickly(tmp_path: Path, silent_api: SilentServer) -> None:
    settings = _settings(
        tmp_path, silent_api.url, cache_url=f"redis://127.0.0.1:{free_port()}/0", cache_ttl=300, parse_timeout=2
    )
    cache = open_cache(settings)
    assert isinstance(cache, LayeredCache)
    cache.put("acme", ACME)  # Redis is down: lands on disk only, with a warning
    started = time.monotonic()
    loaded = load("acme", settings)
    assert time.monotonic() - started < 1.5
    assert loaded.source == "cache"


def test_hung_redis_is_bounded(tmp_path: Path, silent_api: SilentServer) -> None:
    """A Redis that accepts and never answers costs at most its short socket timeout."""
    port = silent_api.url.rsplit(":", 1)[1]
    settings = _settings(tmp_path, dead_url(), cache_url=f"redis://127.0.0.1:{port}/0", parse_timeout=2)
    DiskCache(settings.store.cache_dir).put("acme", ACME, now=time.time() - 3600)
    started = time.monotonic()
    loaded = load("acme", settings)
    assert time.monotonic() - started < 2.5
    assert loaded.source == "last-known-good"
