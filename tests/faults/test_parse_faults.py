"""DAG parsing while the config API is dead: bounded time, and no DAG with a last known good config vanishes.

One dags folder holds four generated DAG files (the real base DAG), each in another situation:

``stored``  sync stored its config next to the DAG files       -> parses, no request
``warm``    no stored config, a fresh parse-time cache entry    -> parses, no request
``stale``   no stored config, a cache entry older than the TTL  -> asks the API once, which fails:
                                                                   parses with the last known good
``cold``    no stored config, nothing cached                    -> one clear import error naming
                                                                   the workflow, well before
                                                                   Airflow's 30 s import timeout

Airflow's ``DagBag`` imports them in a subprocess, against an API that refuses connections, one
that accepts and never answers, and one that answers garbage (also with a dead Redis cache).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dagfleet.authoring.cache import DiskCache
from dagfleet.fleet.settings import SHIPPED_TEMPLATES
from dagfleet.fleet.store import FleetStore, Record
from support.dagbag import parse_in_subprocess
from support.faultserver import Behaviour, FaultServer, config_path
from support.net import dead_url
from support.sandbox import SUFFIX, Sandbox, snapshot

pytestmark = pytest.mark.airflow

KEY = "parse-key-91c2e7aa04"
PARSE_TIMEOUT = 2.0
TTL = 300.0
SLACK = 3.0  # scheduling noise on a busy 2-core machine; far below Airflow's 30 s import timeout
AIRFLOW_IMPORT_TIMEOUT = 30.0
CONFIGS: dict[str, dict[str, Any]] = {
    "stored": {"tags": ["from-sync"], "description": "stored by sync"},
    "warm": {"tags": ["from-warm-cache"], "description": "fresh cache entry"},
    "stale": {"tags": ["from-stale-cache"], "description": "last known good"},
}


def _prepare(sandbox: Sandbox) -> None:
    base = (SHIPPED_TEMPLATES / "demo.py").read_bytes()
    sandbox.dags.mkdir(parents=True, exist_ok=True)
    for workflow_id in ("stored", "warm", "stale", "cold"):
        (sandbox.dags / f"{workflow_id}{SUFFIX}").write_bytes(base)
    store = FleetStore(sandbox.dags)
    store.write_record(Record("stored", CONFIGS["stored"], "demo"))
    cache = DiskCache(store.cache_dir)
    cache.put("warm", CONFIGS["warm"])
    cache.put("stale", CONFIGS["stale"], now=time.time() - 10 * TTL)


def _parse(sandbox: Sandbox, url: str, **env: Any) -> Any:
    files = sorted(sandbox.dags.glob("*" + SUFFIX))
    settings: dict[str, Any] = {
        "DAGFLEET_API_URL": url,
        "DAGFLEET_API_KEY": KEY,
        "DAGFLEET_PARSE_TIMEOUT": PARSE_TIMEOUT,
        "DAGFLEET_CACHE_TTL": TTL,
        "DAGFLEET_LOG_LEVEL": "DEBUG",
        **env,
    }
    return parse_in_subprocess(sandbox, files, env=settings)


def _assert_survived(sandbox: Sandbox, parsed: Any, before: dict[str, str]) -> None:
    assert sorted(parsed.dag_ids) == ["stale", "stored", "warm"], parsed.import_errors
    for workflow_id, config in CONFIGS.items():
        assert config["tags"][0] in parsed.dags[workflow_id]["tags"]
        assert parsed.dags[workflow_id]["description"] == config["description"]
    assert list(parsed.import_errors) and len(parsed.import_errors) == 1
    error = parsed.error_for(sandbox.dags / f"cold{SUFFIX}")
    assert error is not None, parsed.import_errors
    assert "workflow 'cold': no config to build the DAG from" in error
    assert "DagBag import timeout" not in error
    for path, seconds in parsed.durations.items():
        assert seconds < PARSE_TIMEOUT + SLACK, f"{Path(path).name} took {seconds:.1f}s to import"
    assert sum(parsed.durations.values()) < AIRFLOW_IMPORT_TIMEOUT
    assert KEY not in parsed.stdout + parsed.stderr + json.dumps(parsed.import_errors)
    assert snapshot(sandbox.dags) == before, "parsing with a dead API changed the dags folder"


def test_api_refusing_connections(sandbox: Sandbox, fault: Callable[..., None]) -> None:
    for case in ("cold cache", "warm cache", "stale cache", "stored config"):
        fault(f"parse, API refusing connections: {case}")
    _prepare(sandbox)
    before = snapshot(sandbox.dags)
    parsed = _parse(sandbox, dead_url())
    _assert_survived(sandbox, parsed, before)
    assert "is unreachable" in (parsed.error_for(sandbox.dags / f"cold{SUFFIX}") or "")


def test_api_accepting_but_never_answering(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    for case in ("cold cache", "warm cache", "stale cache", "stored config"):
        fault(f"parse, API hanging: {case}")
    api.set("/airflowconfigs/*", Behaviour.hang(120))
    _prepare(sandbox)
    before = snapshot(sandbox.dags)
    parsed = _parse(sandbox, api.url)
    _assert_survived(sandbox, parsed, before)
    # Only the two workflows without a usable config asked, once each; the others never did.
    assert api.count(config_path("stored")) == api.count(config_path("warm")) == 0
    assert api.count(config_path("stale")) == 1
    assert api.count(config_path("cold")) == 1
    assert {r.headers.get("x-api-key") for r in api.requests} == {KEY}
    cold = parsed.error_for(sandbox.dags / f"cold{SUFFIX}") or ""
    assert "did not answer" in cold  # abandoned within DAGFLEET_PARSE_TIMEOUT, not Airflow's import timeout


def test_api_answering_garbage_and_redis_dead(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    for case in ("cold cache", "warm cache", "stale cache", "stored config"):
        fault(f"parse, API answering HTML and Redis cache down: {case}")
    api.set("/airflowconfigs/*", Behaviour.html("<h1>502 Bad Gateway</h1>", 502))
    _prepare(sandbox)
    before = snapshot(sandbox.dags)
    redis_url = dead_url().replace("http://", "redis://") + "/0"
    parsed = _parse(sandbox, api.url, DAGFLEET_CACHE_URL=redis_url)
    _assert_survived(sandbox, parsed, before)
    assert "answered HTTP 502" in (parsed.error_for(sandbox.dags / f"cold{SUFFIX}") or "")
    assert api.count(config_path("stored")) == api.count(config_path("warm")) == 0
