"""Prometheus metrics and health endpoints of ``dagfleet watch`` (opt-in: ``DAGFLEET_METRICS_PORT``).

``GET /metrics``  the exposition of ``prometheus_client`` (never hand-written text)
``GET /healthz``  200 while the watch loop is alive; 503 when it has not beaten its heartbeat for
                  ``stuck_after`` seconds (stuck on a lock, a hung request, a dead thread)
``GET /readyz``   200 once the first sync finished (whatever its outcome: an API outage must not
                  take Airflow's pods out of their Service; the metrics and alerts say it failed)
``GET /status.json`` the same JSON as ``dagfleet status --json``, read from the store on each request
                  (what the Fleet page of an api-server without the dags folder reads: DAGFLEET_STATUS_URL)

The watch loop calls ``beat``, ``observe_sync`` and ``observe_error``; the config API client's
``requests.Session`` gets a response hook (``instrument``) for the per-status-code counter.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app

from dagfleet.api.retry import MAX_RETRY_AFTER
from dagfleet.fleet import __version__
from dagfleet.sync.fleetstatus import METRIC_STATES, State, workflow_states

if TYPE_CHECKING:
    from dagfleet.api.client import ConfigClient
    from dagfleet.sync.report import SyncReport

OUTCOMES = ("synced", "kept_last_known_good", "nothing_usable", "error")
# Sync durations: a 304 re-sync takes milliseconds, a cold 1,000-workflow fetch minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

StartResponse = Callable[..., Any]


class FleetMetrics:
    """Every metric of the watch loop, on a registry of its own (nothing global)."""

    def __init__(self, registry: CollectorRegistry | None = None, last_success: float | None = None) -> None:
        """``last_success``: when the last successful sync recorded on disk started (a restarted
        sidecar keeps counting from there)."""
        self.registry = registry or CollectorRegistry()
        self._since = last_success or time.time()
        self.info = Info("dagfleet", "dagfleet build information", registry=self.registry)
        self.info.info({"version": __version__})
        self._declare_sync(self.registry, last_success)
        self._declare_client(self.registry)
        self._declare_bundles(self.registry)
        self.heartbeat = Gauge(
            "dagfleet_watch_heartbeat_timestamp_seconds",
            "Unix time of the watch loop's last heartbeat",
            registry=self.registry,
        )
        self._answered = 0  # responses seen by the hook, to count requests that got none
        self._sent = 0
        self._bytes = 0
        self._lock = threading.Lock()

    def _declare_sync(self, r: CollectorRegistry, last_success: float | None) -> None:
        """The metrics of each sync: when, how it ended, how long it took, what it did."""
        self.last_success = Gauge(
            "dagfleet_sync_last_success_timestamp_seconds",
            "Unix time at which the last sync that ended 'synced' started (0: none yet)",
            registry=r,
        )
        if last_success:
            self.last_success.set(last_success)
        self.since_success = Gauge(
            "dagfleet_sync_seconds_since_success",
            "Seconds since the last sync that ended 'synced' started (none recorded: since the watch started)",
            registry=r,
        )
        self.since_success.set_function(lambda: time.time() - self._since)
        self.last_attempt = Gauge(
            "dagfleet_sync_last_attempt_timestamp_seconds", "Unix time at which the last sync started", registry=r
        )
        self.last_outcome = Gauge(
            "dagfleet_sync_last_outcome", "1 for the outcome of the last sync, 0 for the others", ["outcome"],
            registry=r,
        )  # fmt: skip
        self.syncs = Counter("dagfleet_syncs", "Syncs by outcome", ["outcome"], registry=r)
        self.duration = Histogram(
            "dagfleet_sync_duration_seconds", "Duration of one sync", buckets=DURATION_BUCKETS, registry=r
        )
        self.workflows = Gauge(
            "dagfleet_workflows", "Workflows by what the last sync did with them", ["state"], registry=r
        )
        self.problems = Gauge("dagfleet_sync_problems", "Problems the last sync reported", registry=r)
        for outcome in OUTCOMES:
            self.last_outcome.labels(outcome)
            self.syncs.labels(outcome)
        for state in METRIC_STATES:
            self.workflows.labels(str(state))

    def _declare_bundles(self, r: CollectorRegistry) -> None:
        """Each DAG bundle (one per shard, DAGFLEET_SHARDS; ``dagfleet`` unsharded): its DAGs and version."""
        what = "Generated DAGs each DAG bundle serves"
        self.bundle_workflows = Gauge("dagfleet_bundle_workflows", what, ["bundle"], registry=r)
        self.bundle_version = Info("dagfleet_bundle", "The current version of each DAG bundle", ["bundle"], registry=r)

    def _declare_client(self, r: CollectorRegistry) -> None:
        """The metrics of the config API client: answers by status code, bytes received."""
        self.requests = Counter(
            "dagfleet_config_api_requests",
            "Requests to the config API by HTTP status code ('none': no answer: refused, timed out, broken)",
            ["code"],
            registry=r,
        )
        self.received = Counter(
            "dagfleet_config_api_received_bytes", "Bytes of config API answers (JSON bodies) received", registry=r
        )

    # -- the config API client ------------------------------------------------------------------
    def instrument(self, client: ConfigClient) -> None:
        """Count every answer of the config API by status code (a ``requests`` response hook)."""
        client.session.hooks["response"].append(self._on_response)

    def _on_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        self.requests.labels(str(response.status_code)).inc()
        with self._lock:
            self._answered += 1

    def observe_client(self, requests_sent: int, bytes_received: int) -> None:
        """The client's running totals after a sync: bytes received since the last call, and the
        requests that got no answer (refused, timed out, broken) under code "none"."""
        with self._lock:
            unanswered = (requests_sent - self._sent) - self._answered
            self._sent, self._answered = requests_sent, 0
            if unanswered < 0:  # a late answer to a request counted before the last call
                self._answered, unanswered = -unanswered, 0
            new_bytes, self._bytes = bytes_received - self._bytes, max(bytes_received, self._bytes)
        if unanswered:
            self.requests.labels("none").inc(unanswered)
        if new_bytes > 0:
            self.received.inc(new_bytes)

    # -- the watch loop ---------------------------------------------------------------------------
    def observe_sync(self, report: SyncReport, started: float, duration: float) -> None:
        outcome = report.outcome.name.lower()
        self._set_outcome(outcome, started, duration)
        if outcome == "synced":
            self.last_success.set(started)
            self._since = started
        counts = dict.fromkeys(METRIC_STATES, 0)
        for state, _source in workflow_states(report).values():
            if state in counts:
                counts[state] += 1
        if report.outcome.name == "SYNCED":  # every rejected ID, also those the status does not list one by one
            counts[State.REJECTED] += report.hidden_rejected
        for state, count in counts.items():
            self.workflows.labels(str(state)).set(count)
        self.problems.set(len(report.problems))

    def observe_bundles(self, rows: Iterable[dict[str, Any]]) -> None:
        """Each bundle's workflows and current version (dagfleet.versions.shard_rows)."""
        for row in rows:
            self.bundle_workflows.labels(row["bundle"]).set(row["workflows"])
            self.bundle_version.labels(row["bundle"]).info({"version": row["version"] or ""})

    def observe_error(self, started: float, duration: float) -> None:
        """A sync that raised (e.g. the sync lock was held too long, the base DAG is unreadable)."""
        self._set_outcome("error", started, duration)

    def _set_outcome(self, outcome: str, started: float, duration: float) -> None:
        self.last_attempt.set(started)
        self.duration.observe(duration)
        self.syncs.labels(outcome).inc()
        for name in OUTCOMES:
            self.last_outcome.labels(name).set(1 if name == outcome else 0)


class Health:
    """The loop's heartbeat and first sync, as the probes see them."""

    def __init__(self, stuck_after: float, metrics: FleetMetrics | None = None) -> None:
        self.stuck_after = stuck_after
        self.metrics = metrics
        self._last_beat = time.monotonic()
        self._ready = threading.Event()

    def beat(self) -> None:
        self._last_beat = time.monotonic()
        if self.metrics is not None:
            self.metrics.heartbeat.set_to_current_time()

    def mark_ready(self) -> None:
        self._ready.set()

    def alive(self) -> tuple[bool, str]:
        silent = time.monotonic() - self._last_beat
        if silent > self.stuck_after:
            return False, f"stuck: the watch loop has not run for {silent:.0f}s (limit {self.stuck_after:g}s)\n"
        return True, f"ok: the watch loop ran {silent:.0f}s ago\n"

    def ready(self) -> tuple[bool, str]:
        if self._ready.is_set():
            return True, "ok: the first sync finished\n"
        return False, "not ready: the first sync has not finished yet\n"


def stuck_after(sync_interval: float, connect_timeout: float, read_timeout: float, retries: int) -> float:
    """How long the loop may stay silent by default: three intervals plus the longest the list
    request of one sync may take with every retry (each attempt is bounded by connect + read
    timeout, each wait by the retry policy's Retry-After cap). DAGFLEET_STUCK_AFTER overrides it."""
    return 3 * sync_interval + retries * (connect_timeout + read_timeout + MAX_RETRY_AFTER)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the sidecar's log."""


def make_app(
    metrics: FleetMetrics, health: Health, fleet_status: Callable[[], dict[str, Any]] | None = None
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """``fleet_status``: the fleet status as ``dagfleet status --json`` prints it (None: no /status.json)."""
    exposition = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok, text = health.alive() if path == "/healthz" else health.ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [text.encode()]
        if path == "/metrics":
            return exposition(environ, start_response)
        if path == "/status.json" and fleet_status is not None:
            body = json.dumps(fleet_status(), sort_keys=True).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics, /healthz, /readyz or /status.json\n"]

    return app


class MetricsServer:
    """The HTTP server of /metrics, /healthz, /readyz (and /status.json), in a daemon thread."""

    def __init__(
        self,
        port: int,
        metrics: FleetMetrics,
        health: Health,
        host: str = "",
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.server = make_server(host, port, make_app(metrics, health, status), _Server, _QuietHandler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="dagfleet-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
