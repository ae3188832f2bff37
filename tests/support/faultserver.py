"""A scriptable, fault-injecting HTTP server on loopback, for the fault suite and the benchmarks.

A real ``ThreadingHTTPServer`` on ``127.0.0.1`` (port 0 by default), run in a thread. Every path
answers from, in order: the one-shot behaviours queued for it, the sticky behaviour set for it,
the sticky behaviour of the longest matching prefix (``"/airflowconfigs/*"``), ``default``.

A ``Behaviour`` says what to do with one request: a status, headers and body bytes, optionally a
delay before the status line, a body trickled in chunks, a connection closed (or reset) before any
answer or cut off mid-body, an ``ETag`` honoured via ``If-None-Match``, or stopping the whole
server after answering (the API dies in the middle of a sync). A behaviour may also be a callable
that gets the ``Request`` and returns one (answers that change between requests).

    with FaultServer() as api:
        api.serve_workflows({"a": {}, "b": {"tags": ["x"]}})
        api.queue("/airflowconfigs", Behaviour.json({"error": "busy"}, status=503))  # then normal
        ... DAGFLEET_API_URL=api.url ...
        assert api.count("/airflowconfigs") == 2
        assert api.requests[0].headers["x-api-key"] == "..."
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

# The contract (paths, list formats, ETags) is declared once, in the client and the reference server.
from dagfleet.api.client import LIST_PATH, config_path
from dagfleet.service.server import encode, etag_matches, etag_of, listing

__all__ = ["LIST_PATH", "Behaviour", "FaultServer", "Request", "Responder", "config_path", "etag_of"]


@dataclass(frozen=True)
class Request:
    """One request as received: method, raw path (query included), headers (lower-case names)."""

    method: str
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request line arrived

    @property
    def route(self) -> str:
        return urlsplit(self.path).path


@dataclass(frozen=True)
class Behaviour:
    """What to do with one request. The defaults answer ``200`` with an empty JSON-typed body."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # seconds before the status line
    trickle: float = 0.0  # seconds between body chunks
    trickle_head: bool = False  # trickle the status line and headers too (a slow-loris server)
    chunk_size: int = 1024
    truncate_at: int | None = None  # announce the full Content-Length, send this many bytes, close
    drop: Literal["close", "reset"] | None = None  # no answer at all: FIN, or RST
    etag: str | None = None  # sent as ETag; a matching If-None-Match gets 304
    stop_after: bool = False  # stop listening once this answer is sent

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def json(cls, value: Any, status: int = 200, *, etag: bool | str = False, **kw: Any) -> Behaviour:
        body = encode(value)
        tag = etag_of(body) if etag is True else (etag or None)
        return cls(status=status, body=body, etag=tag, **kw)

    @classmethod
    def raw(
        cls, body: bytes | str, status: int = 200, content_type: str | None = "application/json", **kw: Any
    ) -> Behaviour:
        data = body.encode() if isinstance(body, str) else body
        return cls(status=status, body=data, content_type=content_type, **kw)

    @classmethod
    def html(cls, text: str = "<html><body><h1>Welcome to nginx!</h1></body></html>", status: int = 200) -> Behaviour:
        return cls.raw(text, status, content_type="text/html; charset=utf-8")

    @classmethod
    def close(cls, delay: float = 0.0) -> Behaviour:
        """Read the request, then close the connection without a byte of answer."""
        return cls(drop="close", delay=delay)

    @classmethod
    def reset(cls, delay: float = 0.0) -> Behaviour:
        """Read the request, then reset the connection (RST)."""
        return cls(drop="reset", delay=delay)

    @classmethod
    def hang(cls, seconds: float = 3600.0) -> Behaviour:
        """Accept the request and say nothing for ``seconds`` (then close)."""
        return cls(drop="close", delay=seconds)

    def with_(self, **changes: Any) -> Behaviour:
        return replace(self, **changes)


Responder = Behaviour | Callable[[Request], Behaviour]

NOT_FOUND = Behaviour.json({"error": "not found (FaultServer: nothing scripted for this path)"}, status=404)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never wait for a handler that is still "hanging" on purpose
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FaultServer) -> None:
        self.owner = owner
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.accepted = 0  # TCP connections accepted so far (keep-alive checks)
        super().__init__(address, _Handler)

    def cut_connections(self) -> None:
        """Close every open (keep-alive) connection, as a dying server does."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:  # clients hang up on purpose
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as a real config API behind a proxy
    server_version = "faultserver"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            self.server.accepted += 1

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_GET(self) -> None:
        owner = self.server.owner
        request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
        behaviour = owner._behaviour_for(request)
        try:
            self._answer(behaviour, request)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        if behaviour.stop_after:
            self.server.stopping.set()  # from now on every request is dropped, even on open connections
            threading.Thread(target=owner.stop, daemon=True).start()

    do_HEAD = do_GET
    do_POST = do_GET

    def _answer(self, behaviour: Behaviour, request: Request) -> None:
        stopping = self.server.stopping
        if behaviour.delay and stopping.wait(behaviour.delay):
            behaviour = Behaviour.close()
        if behaviour.drop is not None or stopping.is_set():
            if behaviour.drop == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        match = request.headers.get("if-none-match", "")
        if behaviour.etag and behaviour.status == 200 and etag_matches(behaviour.etag, match):
            self.send_response(304)
            self.send_header("ETag", behaviour.etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(behaviour)

    def _send(self, behaviour: Behaviour) -> None:
        """The scripted status, headers and body: trickled, truncated, as ``behaviour`` says."""
        stopping = self.server.stopping
        if behaviour.trickle_head:
            self._headers_buffer: list[bytes] = []  # send_response* buffer the head; we write it
        self.send_response(behaviour.status)
        if behaviour.content_type:
            self.send_header("Content-Type", behaviour.content_type)
        if behaviour.etag:
            self.send_header("ETag", behaviour.etag)
        for name, value in behaviour.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(behaviour.body)))
        if behaviour.truncate_at is not None:
            self.send_header("Connection", "close")
        if behaviour.trickle_head:
            head = b"".join(self._headers_buffer) + b"\r\n"
            self._headers_buffer = []
        else:
            head = b""
            self.end_headers()
        if self.command == "HEAD":
            return
        body = behaviour.body if behaviour.truncate_at is None else behaviour.body[: behaviour.truncate_at]
        body = head + body
        if not behaviour.trickle:
            self.wfile.write(body)
        else:
            for start in range(0, len(body), max(behaviour.chunk_size, 1)):
                self.wfile.write(body[start : start + behaviour.chunk_size])
                self.wfile.flush()
                if stopping.wait(behaviour.trickle):
                    break
        if behaviour.truncate_at is not None:
            self.wfile.flush()
            self.close_connection = True


@dataclass
class _Route:
    queued: deque[Responder] = field(default_factory=deque)
    sticky: Responder | None = None


class FaultServer:
    """See the module docstring. ``start()`` on construction; a context manager stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, default: Responder = NOT_FOUND) -> None:
        self.host = host
        self.port = port
        self.default: Responder = default
        self.requests: list[Request] = []
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.start()

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen (again, on the same port once it had one)."""
        if self._server is not None:
            return
        server = _Server((self.host, self.port), self)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True, name="faultserver")
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and cut open connections: new ones are refused; hanging answers end."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.cut_connections()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting --------------------------------------------------------------------------
    def _route(self, path: str) -> _Route:
        return self._routes.setdefault(path, _Route())

    def set(self, path: str, responder: Responder) -> FaultServer:
        """Answer every request to ``path`` (or, ending in ``*``, every path with that prefix) so."""
        with self._lock:
            self._route(path).sticky = responder
        return self

    def queue(self, path: str, *responders: Responder) -> FaultServer:
        """One-shot answers for the next requests to ``path``, before its sticky behaviour."""
        with self._lock:
            self._route(path).queued.extend(responders)
        return self

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()

    def serve_workflows(
        self,
        workflows: Mapping[str, Any],
        list_format: Literal["objects", "ids"] = "objects",
        *,
        etags: bool = True,
    ) -> FaultServer:
        """Behave like a correct config API for ``{id: config}`` (replacing earlier scripts for those paths)."""
        self.set(LIST_PATH, Behaviour.json(listing(workflows.items(), list_format), etag=etags))
        for wid, cfg in workflows.items():
            self.set(config_path(wid), Behaviour.json(cfg, etag=etags))
        return self

    def _behaviour_for(self, request: Request) -> Behaviour:
        route = request.route
        with self._lock:
            self.requests.append(request)
            responder: Responder | None = None
            exact = self._routes.get(route)
            if exact is not None and exact.queued:
                responder = exact.queued.popleft()
            elif exact is not None and exact.sticky is not None:
                responder = exact.sticky
            else:
                prefixes = [p for p in self._routes if p.endswith("*") and route.startswith(p[:-1])]
                for prefix in sorted(prefixes, key=len, reverse=True):
                    candidate = self._routes[prefix]
                    if candidate.queued:
                        responder = candidate.queued.popleft()
                        break
                    if candidate.sticky is not None:
                        responder = candidate.sticky
                        break
            if responder is None:
                responder = self.default
        return responder(request) if callable(responder) else responder

    # -- observing --------------------------------------------------------------------------
    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since ``start()`` (one per connection, however many requests)."""
        server = self._server
        if server is None:
            return 0
        with server.connections_lock:
            return server.accepted

    def count(self, path: str | None = None) -> int:
        """Requests received (to ``path``, or to any path with the prefix when it ends in ``*``)."""
        with self._lock:
            requests = list(self.requests)
        if path is None:
            return len(requests)
        if path.endswith("*"):
            return sum(1 for r in requests if r.route.startswith(path[:-1]))
        return sum(1 for r in requests if r.route == path)

    def wait_for(self, predicate: Callable[[FaultServer], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return predicate(self)

    def headers_seen(self, name: str) -> Iterator[str | None]:
        """The value of header ``name`` in every request so far (``None`` where it was absent)."""
        with self._lock:
            requests = list(self.requests)
        return (r.headers.get(name.lower()) for r in requests)
