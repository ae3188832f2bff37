"""Reference config API: serves a YAML file of workflows under the contract in docs/openapi.yaml.

The file is re-read when it changes (a broken edit keeps the previous content served and is
logged). When an API key is configured, every ``/airflowconfigs`` request must carry it in
``x-api-key``. Good enough for local runs, tests and small teams; a starting point otherwise.

The contract's answers (the list in either format, a config, ``ETag``/``If-None-Match``) are
plain functions here (``listing``, ``cacheable``), so that a test server answering "normally"
uses the same ones (tests/support/faultserver.py). Per-ID lookups are one dict lookup; accepted
connections get ``TCP_NODELAY`` and are kept alive (HTTP/1.1); the listen backlog takes a sync's
parallel fetches connecting at once. ``on_answer`` is a hook called once per answered request
(the benchmark counts requests and bytes with it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from dagfleet.api.client import LIST_PATH
from dagfleet.fleet.errors import DagfleetError

log = logging.getLogger(__name__)

LIST_FORMATS = ("objects", "ids")
# libyaml's loader when PyYAML was built with it (~3x faster than the pure-Python one, same results).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_file(path: Path) -> Any:
    """The file's data: JSON when its name ends in ``.json`` (JSON is YAML, but far faster to read), else YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DagfleetError(f"cannot read workflows file {path}: {err.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as err:
            raise DagfleetError(f"workflows file {path} is not valid JSON: {err}") from None
    try:
        return yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        raise DagfleetError(f"workflows file {path} is not valid YAML: {str(err).splitlines()[0]}") from None


def load_workflows(path: Path) -> list[tuple[Any, Any]]:
    """``[(id, config), ...]`` from a YAML (or ``.json``) file.

    Accepted shapes: ``workflows: {id: config}``, ``workflows: [{id:, config:}]`` or
    ``workflows: [id, ...]`` (the ``workflows:`` key may be omitted). IDs are served as
    written: validating them is the client's job (and the fault tests serve bad ones).
    """
    data = _read_file(path)
    if isinstance(data, dict) and "workflows" in data:
        data = data["workflows"]
    if data is None:
        return []
    if isinstance(data, dict):
        return [(key, {} if value is None else value) for key, value in data.items()]
    if isinstance(data, list):
        return [
            (item["id"], item.get("config") or {}) if isinstance(item, dict) and "id" in item else (item, {})
            for item in data
        ]
    raise DagfleetError(f"workflows file {path}: expected a mapping or list under 'workflows'")


@dataclass(frozen=True)
class Fleet:
    """One loaded version of the file: its workflows in order, and each config by its ID."""

    workflows: list[tuple[Any, Any]]
    by_id: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        by_id: dict[str, Any] = {}
        for workflow_id, config in self.workflows:
            by_id.setdefault(str(workflow_id), config)  # a repeated ID: its first entry answers
        object.__setattr__(self, "by_id", by_id)


class WorkflowStore:
    """The workflows of one file, re-read when its mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._fleet = Fleet([])
        self.refresh(strict=True)

    def _current_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def refresh(self, strict: bool = False) -> Fleet:
        """The file's current workflows (re-read only when it changed since the last call)."""
        with self._lock:
            stamp = self._current_stamp()
            if stamp is not None and stamp == self._stamp:
                return self._fleet
            try:
                fleet = Fleet(load_workflows(self.path))
            except DagfleetError as err:
                if strict:
                    raise
                log.error("%s; still serving the previous content", err)
                self._stamp = stamp
                return self._fleet
            if self._stamp is not None:
                log.info("reloaded %s: %d workflow(s)", self.path, len(fleet.workflows))
            self._stamp, self._fleet = stamp, fleet
            return fleet


# -- the contract's answers ---------------------------------------------------------------------
def encode(payload: Any) -> bytes:
    """A JSON body as the API sends it (compact)."""
    return json.dumps(payload, separators=(",", ":")).encode()


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(etag: str, if_none_match: str) -> bool:
    """Whether a request's ``If-None-Match`` header names ``etag`` (or is ``*``)."""
    return etag in [tag.strip() for tag in if_none_match.split(",")] or if_none_match.strip() == "*"


def listing(workflows: Iterable[tuple[Any, Any]], list_format: str) -> list[Any]:
    """``GET /airflowconfigs``: the IDs (``ids``) or ``{"id", "config"}`` objects (``objects``)."""
    if list_format == "ids":
        return [workflow_id for workflow_id, _ in workflows]
    return [{"id": workflow_id, "config": config} for workflow_id, config in workflows]


@dataclass(frozen=True)
class Reply:
    """One answer: a status, a JSON body (``None``: none, no content type) and an ``ETag``."""

    status: int
    body: bytes | None = None
    etag: str | None = None


def cacheable(payload: Any, if_none_match: str = "") -> Reply:
    """``payload`` with its ``ETag``, or an empty 304 when the client already holds it."""
    body = encode(payload)
    etag = etag_of(body)
    if etag_matches(etag, if_none_match):
        return Reply(HTTPStatus.NOT_MODIFIED, etag=etag)
    return Reply(HTTPStatus.OK, body, etag)


def _error(status: int, message: str) -> Reply:
    return Reply(status, encode({"error": message}))


@dataclass(frozen=True)
class Answer:
    """What ``on_answer`` is told about each answered request."""

    path: str  # as requested, query included
    status: int
    body_bytes: int  # the Content-Length sent (0 for a 304)


# -- the HTTP server ----------------------------------------------------------------------------
class ConfigApiHandler(BaseHTTPRequestHandler):
    server: ConfigApiServer
    server_version = "dagfleet-config-api"
    sys_version = ""
    protocol_version = "HTTP/1.1"  # keep-alive: a sync's requests reuse a few connections

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        reply = self.server.answer(self.path, self.headers)
        body = reply.body or b""
        self.send_response(reply.status)
        if reply.etag:
            self.send_header("ETag", reply.etag)
        if reply.body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        if self.server.on_answer is not None:
            self.server.on_answer(Answer(self.path, reply.status, len(body)))

    do_HEAD = do_GET


class ConfigApiServer(ThreadingHTTPServer):
    """Serves ``workflows`` (a ``WorkflowStore``); ``connections_accepted`` counts TCP connections."""

    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: a sync's parallel fetches connect at once; socketserver's default of 5
    # drops SYNs then, and each drop costs the client a 1 s retransmit.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        workflows: WorkflowStore,
        api_key: str | None = None,
        list_format: str = "objects",
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        self.workflows = workflows
        self.list_format = list_format
        self.on_answer = on_answer
        self._expected = api_key.encode() if api_key else None
        self._lock = threading.Lock()
        self.connections_accepted = 0
        super().__init__(address, ConfigApiHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds the
        # body of every answer after the first on a connection until the client's delayed ACK (~40 ms).
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.connections_accepted += 1
        return connection, address

    def answer(self, path: str, headers: Any) -> Reply:
        """The reply to ``GET path`` with these request headers."""
        url = urlsplit(path)
        parts = [unquote(part) for part in url.path.split("/") if part]
        if parts == ["healthz"]:
            return Reply(HTTPStatus.OK, encode({"status": "ok"}))
        if not parts or "/" + parts[0] != LIST_PATH or len(parts) > 2:
            return _error(HTTPStatus.NOT_FOUND, "not found")
        if self._expected is not None and not hmac.compare_digest(
            headers.get("x-api-key", "").encode(), self._expected
        ):
            return _error(HTTPStatus.UNAUTHORIZED, "missing or invalid x-api-key")
        fleet = self.workflows.refresh()
        if_none_match = headers.get("If-None-Match", "")
        if len(parts) == 2:
            if parts[1] not in fleet.by_id:
                return _error(HTTPStatus.NOT_FOUND, "no such workflow")
            return cacheable(fleet.by_id[parts[1]], if_none_match)
        list_format = parse_qs(url.query).get("format", [self.list_format])[0]
        if list_format not in LIST_FORMATS:
            return _error(HTTPStatus.BAD_REQUEST, f"format must be one of {LIST_FORMATS}")
        return cacheable(listing(fleet.workflows, list_format), if_none_match)


def make_server(
    path: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    list_format: str = "objects",
    *,
    on_answer: Callable[[Answer], None] | None = None,
) -> ConfigApiServer:
    server = ConfigApiServer((host, port), WorkflowStore(path), api_key, list_format, on_answer)
    log.info(
        "serving %d workflow(s) from %s on http://%s:%d%s (%s)",
        len(server.workflows.refresh().workflows),
        path,
        host,
        server.server_port,
        LIST_PATH,
        "API key required" if api_key else "no API key required",
    )
    return server
