"""The reference config API (``dagfleet.service.server``, as it is) with server-side request and byte counters.

Started as a subprocess (``python -m bench.apiserver --file F --list-format objects``) so that the
server never shares a GIL with the sync being measured. It prints ``PORT <n> STATS <m>`` once
listening: port n is ``dagfleet.service.server``'s server, unchanged; port m answers ``GET /stats`` (add
``?paths=1`` for per-path counts) and ``GET /reset``. The counters come from the server's public
``on_answer`` hook (one call per answered request: path, status, Content-Length), so requests to
port m are never counted. ``/stats`` also re-reads the workflows file when it changed, so that a
benchmark that swapped the file pays the reload before its timed sync, not in it.

The bench writes its workflows files as JSON: ``dagfleet.service.server`` reads a ``.json`` file with
``json.loads`` (a 10,000-workflow YAML file takes ~15 s to load even with libyaml; see
docs/benchmarks.md), a start-up/reload cost that is not part of what a sync costs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from dagfleet.service.server import Answer, ConfigApiServer, make_server

ROOT = Path(__file__).resolve().parents[1]


class Counters:
    """Requests, status codes, body bytes and paths answered, fed by ``dagfleet.service.server``'s ``on_answer``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.statuses: Counter[int] = Counter()
            self.body_bytes = 0
            self.paths: Counter[str] = Counter()

    def count(self, answer: Answer) -> None:
        with self.lock:
            self.requests += 1
            self.statuses[answer.status] += 1
            self.body_bytes += answer.body_bytes
            self.paths[answer.path] += 1

    def snapshot(self, paths: bool) -> dict[str, Any]:
        with self.lock:
            data: dict[str, Any] = {
                "requests": self.requests,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "body_bytes": self.body_bytes,
            }
            if paths:
                data["paths"] = dict(self.paths)
            return data


class StatsServer(HTTPServer):
    """``GET /stats[?paths=1]`` and ``GET /reset`` for the counters of one config API server."""

    def __init__(self, api: ConfigApiServer, counters: Counters) -> None:
        self.api = api
        self.counters = counters
        super().__init__(("127.0.0.1", 0), _StatsHandler)


class _StatsHandler(BaseHTTPRequestHandler):
    server: StatsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/reset"):
            self.server.counters.reset()
        self.server.api.workflows.refresh()  # a swapped file is re-read now, not in the next timed sync
        body = json.dumps(self.server.counters.snapshot("paths=1" in self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(file: Path, list_format: str) -> None:
    counters = Counters()
    api = make_server(file, "127.0.0.1", 0, None, list_format, on_answer=counters.count)
    stats = StatsServer(api, counters)
    threading.Thread(target=stats.serve_forever, daemon=True, name="bench-stats").start()
    print(f"PORT {api.server_port} STATS {stats.server_port}", flush=True)
    with api:
        api.serve_forever()


@dataclass
class ApiServer:
    """Handle on a running counting server subprocess."""

    process: subprocess.Popen[str]
    port: int
    stats_port: int
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}{path}", timeout=30) as answer:
            return json.loads(answer.read())

    def stats(self, paths: bool = False) -> dict[str, Any]:
        return self._get("/stats" + ("?paths=1" if paths else ""))

    def reset(self) -> None:
        self._get("/reset")


@contextlib.contextmanager
def running(file: Path, list_format: str = "objects") -> Iterator[ApiServer]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.apiserver", "--file", str(file), "--list-format", list_format],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        words = process.stdout.readline().split()
        if len(words) != 4 or words[0] != "PORT" or words[2] != "STATS":
            raise RuntimeError(f"bench API server did not start (got {' '.join(words)!r})")
        yield ApiServer(process, int(words[1]), int(words[3]))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def dead_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def hanging() -> Iterator[str]:
    """A server that accepts connections and never answers (a hung API or a black hole)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--list-format", choices=("objects", "ids"), default="objects")
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        serve(options.file, options.list_format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
