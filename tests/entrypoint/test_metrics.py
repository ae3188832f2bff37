"""`dagfleet watch` with DAGFLEET_METRICS_PORT: metrics scraped over HTTP and parsed with
prometheus_client's parser, health endpoints probed, across real faults on loopback."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from dagfleet import __version__
from support.faultserver import FaultServer
from support.net import free_port

DAGFLEET = str(Path(sys.executable).with_name("dagfleet"))
KEY = "metrics-key-7d1e0a"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")}
    env.update(
        DAGFLEET_DAGS_FOLDER=str(tmp_path / "dags"),
        DAGFLEET_RETRIES="1",
        DAGFLEET_CONNECT_TIMEOUT="1",
        DAGFLEET_READ_TIMEOUT="2",
        DAGFLEET_SYNC_INTERVAL="0.2",
        DAGFLEET_METRICS_PORT=str(port),
    )
    env.update(extra)
    return env


@contextmanager
def _watch(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([DAGFLEET, "watch"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert KEY not in err


def _get(port: int, path: str) -> requests.Response | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except requests.ConnectionError:
        return None  # the watch has not bound its port yet


def scrape(port: int) -> Samples:
    response = _get(port, "/metrics")
    if response is None:
        return {}
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _wait_for(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return result


def _scrape_when(port: int, condition: Callable[[Samples], bool]) -> Samples:
    return _wait_for(lambda: (s := scrape(port)) and condition(s) and s)


def test_metrics_across_a_good_sync_a_rejected_workflow_and_an_outage(tmp_path: Path) -> None:
    # A FaultServer: stopping it also cuts the watch's keep-alive connection, as a dying API does.
    api = FaultServer().serve_workflows({"a": {"tags": ["t"]}, "b": {}})
    port = free_port()
    env = _env(tmp_path, port, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY)
    with api, _watch(env):
        # A good sync: both workflows synced, one 200 for the list, bytes received, ready.
        good = _scrape_when(port, lambda s: value(s, "dagfleet_syncs_total", outcome="synced") >= 1)
        assert value(good, "dagfleet_workflows", state="synced") == 2
        assert value(good, "dagfleet_workflows", state="rejected") == 0
        assert value(good, "dagfleet_sync_last_outcome", outcome="synced") == 1
        assert value(good, "dagfleet_sync_last_success_timestamp_seconds") > 0
        assert value(good, "dagfleet_config_api_requests_total", code="200") >= 1
        assert value(good, "dagfleet_config_api_received_bytes_total") > 0
        assert value(good, "dagfleet_sync_duration_seconds_count") >= 1
        assert value(good, "dagfleet_info", version=__version__) == 1
        assert _get(port, "/readyz").status_code == 200
        assert _get(port, "/healthz").status_code == 200

        # A rejected workflow: "b" gets an invalid config and keeps its last known good one.
        api.serve_workflows({"a": {"tags": ["t"]}, "b": {"tags": "not-a-list"}})
        rejected = _scrape_when(port, lambda s: value(s, "dagfleet_workflows", state="rejected") == 1)
        assert value(rejected, "dagfleet_workflows", state="synced") == 1
        assert value(rejected, "dagfleet_sync_problems") == 1
        assert value(rejected, "dagfleet_sync_last_outcome", outcome="synced") == 1  # the fleet still syncs
        status = json.loads((tmp_path / "dags" / ".dagfleet" / "status.json").read_text())
        assert status["workflows"]["b"]["state"] == "rejected"
        assert "tags" in status["workflows"]["b"]["problem"]

        # An outage: the config API's server is stopped; the last known good set stays.
        last_success = value(rejected, "dagfleet_sync_last_success_timestamp_seconds")
        api.stop()
        down = _scrape_when(port, lambda s: value(s, "dagfleet_sync_last_outcome", outcome="kept_last_known_good") == 1)
        assert value(down, "dagfleet_sync_last_outcome", outcome="synced") == 0
        assert value(down, "dagfleet_syncs_total", outcome="kept_last_known_good") >= 1
        assert value(down, "dagfleet_workflows", state="kept_last_known_good") == 2
        assert value(down, "dagfleet_workflows", state="synced") == 0
        assert value(down, "dagfleet_config_api_requests_total", code="none") >= 1  # connection refused
        # The last success stays where it was; the last attempt (the failing one) is newer.
        assert value(down, "dagfleet_sync_last_success_timestamp_seconds") >= last_success
        assert value(down, "dagfleet_sync_last_attempt_timestamp_seconds") > value(
            down, "dagfleet_sync_last_success_timestamp_seconds"
        )
        assert value(down, "dagfleet_sync_seconds_since_success") > 0
        assert _get(port, "/healthz").status_code == 200  # an outage is not a stuck loop
        assert _get(port, "/readyz").status_code == 200
    assert (tmp_path / "dags" / "a-mydag.py").exists()

    # A restarted sidecar, API still down: the last success comes from disk, not "never".
    recorded = json.loads((tmp_path / "dags" / ".dagfleet" / "status.json").read_text())["last_success"]
    port = free_port()
    with _watch({**env, "DAGFLEET_METRICS_PORT": str(port)}):
        again = _scrape_when(port, lambda s: value(s, "dagfleet_syncs_total", outcome="kept_last_known_good") >= 1)
        assert value(again, "dagfleet_sync_last_success_timestamp_seconds") == recorded
        # Counted from the recorded success: at least as old as the failing attempt's start.
        since = value(again, "dagfleet_sync_seconds_since_success")
        assert since >= value(again, "dagfleet_sync_last_attempt_timestamp_seconds") - recorded


def _take_sync_lock(dags: Path) -> IO[str]:
    """Hold the sync lock as a stuck sync would (until the handle is closed): the loop blocks on it."""
    state = dags / ".dagfleet"
    state.mkdir(parents=True, exist_ok=True)
    handle = open(state / "lock", "a+")  # noqa: SIM115 - released by closing, mid-test
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _status(port: int, path: str) -> int | None:
    response = _get(port, path)
    return None if response is None else response.status_code


def test_health_flips_when_the_loop_is_stuck_and_recovers(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {}}, api_key=KEY)
    port = free_port()
    env = _env(tmp_path, port, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY, DAGFLEET_STUCK_AFTER="1.5")
    lock = _take_sync_lock(tmp_path / "dags")
    try:
        with _watch(env):
            # The first sync waits for the held lock: not ready, and soon stuck.
            _wait_for(lambda: _status(port, "/readyz") == 503)
            _wait_for(lambda: _status(port, "/healthz") == 503)
            assert "stuck" in _get(port, "/healthz").text
            assert _status(port, "/readyz") == 503
            assert value(scrape(port), "dagfleet_syncs_total", outcome="synced") == 0

            lock.close()  # the lock is free: the loop runs, becomes ready and alive again
            _wait_for(lambda: _status(port, "/readyz") == 200)
            _wait_for(lambda: _status(port, "/healthz") == 200)
            assert value(scrape(port), "dagfleet_syncs_total", outcome="synced") >= 1

            lock = _take_sync_lock(tmp_path / "dags")  # stuck again after the first sync
            _wait_for(lambda: _status(port, "/healthz") == 503)
            assert _status(port, "/readyz") == 200  # ready stays: a first sync happened
            lock.close()
            _wait_for(lambda: _status(port, "/healthz") == 200)
            assert _get(port, "/nope").status_code == 404
    finally:
        lock.close()


def test_metrics_are_off_without_a_port_and_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(tmp_path, port, DAGFLEET_STATIC_WORKFLOWS="a")
        proc = subprocess.run([DAGFLEET, "watch"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert f"cannot serve metrics on port {port}" in errors[0]
    assert "DAGFLEET_METRICS_PORT" in errors[0]

    env.pop("DAGFLEET_METRICS_PORT")
    once = subprocess.run(
        [DAGFLEET, "watch", "--once"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert once.returncode == 0, once.stderr
    assert "serving /metrics" not in once.stderr


def test_status_json_is_what_dagfleet_status_json_prints(tmp_path: Path) -> None:
    # A synced and a rejected workflow; a long interval, so nothing changes between the two reads.
    api = FaultServer().serve_workflows({"a": {"tags": ["t"]}, "b": {"tags": "not-a-list"}})
    port = free_port()
    env = _env(tmp_path, port, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY, DAGFLEET_SYNC_INTERVAL="3600")
    with api, _watch(env):
        _wait_for(lambda: (r := _get(port, "/readyz")) is not None and r.status_code == 200)
        served = _get(port, "/status.json")
        assert served is not None and served.status_code == 200
        assert served.headers["Content-Type"] == "application/json"
        printed = subprocess.run(
            [DAGFLEET, "status", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    assert printed.returncode == 1  # "b" is rejected: not healthy
    assert served.json() == json.loads(printed.stdout)
    assert {w["workflow_id"]: w["state"] for w in served.json()["workflows"]} == {"a": "synced", "b": "rejected"}
    assert KEY not in served.text
    assert api.url not in served.text


def test_the_rejected_gauge_counts_every_rejected_id(tmp_path: Path) -> None:
    """Issue #28: the status lists rejected IDs up to its cap and counts the rest; the gauge
    `dagfleet_workflows{state="rejected"}` counts them all, like `status --json`."""
    from dagfleet.fleet.settings import Settings
    from dagfleet.service.metrics import FleetMetrics
    from dagfleet.sync import fleetstatus
    from dagfleet.sync.apply import MAX_REJECTED_IDS_LISTED, FleetSync
    from support.faultserver import LIST_PATH, Behaviour

    total = MAX_REJECTED_IDS_LISTED + 3
    with FaultServer() as api:
        listing = [{"id": f"../bad-{i}", "config": {}} for i in range(total)]
        api.set(LIST_PATH, Behaviour.json([*listing, {"id": "ok", "config": {}}]))
        settings = Settings(api_url=api.url, dags_folder=tmp_path / "dags", retries=1)
        report = FleetSync(settings).sync()
    metrics = FleetMetrics()
    metrics.observe_sync(report, time.time(), 0.1)
    assert metrics.registry.get_sample_value("dagfleet_workflows", {"state": "rejected"}) == total
    assert metrics.registry.get_sample_value("dagfleet_workflows", {"state": "synced"}) == 1
    assert fleetstatus.load(settings).counts()["rejected"] == total
