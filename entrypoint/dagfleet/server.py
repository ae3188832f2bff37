"""Reference config API: serves a YAML file of workflows under the contract in docs/openapi.yaml.

The file is re-read when it changes (a broken edit keeps the previous content served and is
logged). When an API key is configured, every ``/airflowconfigs`` request must carry it in
``x-api-key``. Good enough for local runs, tests and small teams; a starting point otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from dagfleet.errors import DagfleetError

log = logging.getLogger(__name__)

LIST_FORMATS = ("objects", "ids")


def load_workflows(path: Path) -> list[tuple[Any, Any]]:
    """``[(id, config), ...]`` from a YAML file.

    Accepted shapes: ``workflows: {id: config}``, ``workflows: [{id:, config:}]`` or
    ``workflows: [id, ...]`` (the ``workflows:`` key may be omitted). IDs are served as
    written: validating them is the client's job (and the fault tests serve bad ones).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise DagfleetError(f"cannot read workflows file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise DagfleetError(f"workflows file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if isinstance(data, dict) and "workflows" in data:
        data = data["workflows"]
    if data is None:
        return []
    if isinstance(data, dict):
        return [(key, {} if value is None else value) for key, value in data.items()]
    if isinstance(data, list):
        result: list[tuple[Any, Any]] = []
        for item in data:
            if isinstance(item, dict) and "id" in item:
                result.append((item["id"], item.get("config") or {}))
            else:
                result.append((item, {}))
        return result
    raise DagfleetError(f"workflows file {path}: expected a mapping or list under 'workflows'")


@dataclass
class _Snapshot:
    stamp: tuple[float, int] | None
    workflows: list[tuple[Any, Any]]


class WorkflowStore:
    """The workflows of one YAML file, re-read when its mtime or size changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(None, [])
        self.refresh(strict=True)

    def _stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def refresh(self, strict: bool = False) -> list[tuple[Any, Any]]:
        with self._lock:
            stamp = self._stamp()
            if stamp is not None and stamp == self._snapshot.stamp:
                return self._snapshot.workflows
            try:
                workflows = load_workflows(self.path)
            except DagfleetError as err:
                if strict:
                    raise
                log.error("%s; still serving the previous content", err)
                self._snapshot.stamp = stamp
                return self._snapshot.workflows
            if self._snapshot.stamp is not None:
                log.info("reloaded %s: %d workflow(s)", self.path, len(workflows))
            self._snapshot = _Snapshot(stamp, workflows)
            return workflows


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def make_handler(store: WorkflowStore, api_key: str | None, list_format: str) -> type[BaseHTTPRequestHandler]:
    expected = api_key.encode() if api_key else None

    class Handler(BaseHTTPRequestHandler):
        server_version = "dagfleet-config-api"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, payload: Any = None, etag: str | None = None) -> None:
            body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_cacheable(self, payload: Any) -> None:
            body = json.dumps(payload, separators=(",", ":")).encode()
            etag = _etag(body)
            match = self.headers.get("If-None-Match", "")
            if etag in [t.strip() for t in match.split(",")] or match.strip() == "*":
                self._send(HTTPStatus.NOT_MODIFIED, etag=etag)
                return
            self._send(HTTPStatus.OK, payload, etag=etag)

        def _authorized(self) -> bool:
            if expected is None:
                return True
            given = self.headers.get("x-api-key", "").encode()
            return hmac.compare_digest(given, expected)

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            if parts == ["healthz"]:
                self._send(HTTPStatus.OK, {"status": "ok"})
                return
            if not parts or parts[0] != "airflowconfigs" or len(parts) > 2:
                self._send(HTTPStatus.NOT_FOUND, {"error": "not found"})
                return
            if not self._authorized():
                self._send(HTTPStatus.UNAUTHORIZED, {"error": "missing or invalid x-api-key"})
                return
            workflows = store.refresh()
            if len(parts) == 1:
                fmt = parse_qs(url.query).get("format", [list_format])[0]
                if fmt not in LIST_FORMATS:
                    self._send(HTTPStatus.BAD_REQUEST, {"error": f"format must be one of {LIST_FORMATS}"})
                    return
                if fmt == "ids":
                    self._send_cacheable([wid for wid, _ in workflows])
                else:
                    self._send_cacheable([{"id": wid, "config": cfg} for wid, cfg in workflows])
                return
            for wid, cfg in workflows:
                if str(wid) == parts[1]:
                    self._send_cacheable(cfg)
                    return
            self._send(HTTPStatus.NOT_FOUND, {"error": "no such workflow"})

    return Handler


class ConfigApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(
    path: Path, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None, list_format: str = "objects"
) -> ConfigApiServer:
    store = WorkflowStore(path)
    server = ConfigApiServer((host, port), make_handler(store, api_key, list_format))
    log.info(
        "serving %d workflow(s) from %s on http://%s:%d/airflowconfigs (%s)",
        len(store.refresh()),
        path,
        host,
        server.server_port,
        "API key required" if api_key else "no API key required",
    )
    return server
