"""The reference config API (``dagfleet.server``) with server-side request and byte counters.

Started as a subprocess (``python -m bench.apiserver --file F --list-format objects``) so that the
server never shares a GIL with the sync being measured. It prints ``PORT <n>`` once listening.
Counters: ``GET /_bench/stats`` (add ``?paths=1`` for per-workflow counts) and
``POST``-free ``GET /_bench/reset``; these two are not counted themselves.

``--tuned`` fixes three things of the reference server that distort per-ID syncs: it writes the
headers and the body of an answer in two writes without ``TCP_NODELAY``, so on a keep-alive
connection Nagle's algorithm holds the body until the client's delayed ACK (~40 ms: every 200
answer after the first on a connection takes ~44 ms); and it listens with socketserver's
default backlog of 5, so when the sync's 8 fetch threads connect at once a dropped SYN now and
then costs a 1 s retransmit; and it finds ``/airflowconfigs/{id}`` by scanning the whole list
(O(N) per request, O(N²) per per-ID sync), where the tuned server keeps a dict. The benchmark
measures the reference server as it is, and the per-ID mode once more with ``--tuned`` to show
what a well-behaved config API costs.

The only other change: the workflows file is read with ``json.loads`` (the bench writes JSON, a
subset of YAML). The reference server's pure-Python ``yaml.safe_load`` needs ~45 s for a
10,000-workflow file (measured by hand, see docs/benchmarks.md); that is a start-up/reload
cost, not part of what a sync costs.
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
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.statuses: Counter[int] = Counter()
        self.body_bytes = 0
        self.wire_bytes = 0
        self.paths: Counter[str] = Counter()

    def snapshot(self, paths: bool) -> dict[str, Any]:
        with self.lock:
            data: dict[str, Any] = {
                "requests": self.requests,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "body_bytes": self.body_bytes,
                "wire_bytes": self.wire_bytes,
            }
            if paths:
                data["paths"] = dict(self.paths)
            return data


STATS = _Stats()
INDEX: dict[str, Any] = {}
INDEX_LOCK = threading.Lock()


class _CountingWriter:
    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.counting = True

    def write(self, data: bytes) -> int:
        if self.counting:
            with STATS.lock:
                STATS.wire_bytes += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return self.raw.closed


def _fast_load(stream: Any) -> Any:
    text = stream if isinstance(stream, str) else stream.read()
    try:
        return json.loads(text)
    except ValueError:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader


def serve(file: Path, list_format: str, tuned: bool = False) -> None:
    from dagfleet import server as reference

    reference.yaml.safe_load = _fast_load  # type: ignore[attr-defined,assignment]
    store = reference.WorkflowStore(file)
    base = reference.make_handler(store, None, list_format)

    class Handler(base):  # type: ignore[misc,valid-type]
        disable_nagle_algorithm = tuned

        def setup(self) -> None:
            super().setup()
            self.wfile = _CountingWriter(self.wfile)  # type: ignore[assignment]

        def do_GET(self) -> None:
            internal = self.path.startswith("/_bench/")
            self.wfile.counting = not internal  # type: ignore[attr-defined]
            if not internal:
                with STATS.lock:
                    STATS.requests += 1
                    STATS.paths[self.path] += 1
                if tuned and self._get_indexed():
                    return
                super().do_GET()
                return
            if self.path.startswith("/_bench/reset"):
                with STATS.lock:
                    STATS.reset()
            body = json.dumps(STATS.snapshot("paths=1" in self.path)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _get_indexed(self) -> bool:
            """``GET /airflowconfigs/{id}`` by dict lookup (the reference server scans the list)."""
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
            if len(parts) != 2 or parts[0] != "airflowconfigs":
                return False
            workflows = store.refresh()
            with INDEX_LOCK:
                if INDEX.get("of") is not workflows:
                    INDEX.clear()
                    INDEX.update({"of": workflows, "by_id": {str(w): c for w, c in workflows}})
                by_id = INDEX["by_id"]
            if parts[1] not in by_id:
                return False
            self._send_cacheable(by_id[parts[1]])
            return True

        def send_response(self, code: int, message: str | None = None) -> None:
            if self.wfile.counting:  # type: ignore[attr-defined]
                with STATS.lock:
                    STATS.statuses[code] += 1
            super().send_response(code, message)

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() == "content-length" and self.wfile.counting:  # type: ignore[attr-defined]
                with STATS.lock:
                    STATS.body_bytes += int(value)
            super().send_header(keyword, value)

    class Server(reference.ConfigApiServer):
        request_queue_size = 128 if tuned else reference.ConfigApiServer.request_queue_size

    httpd = Server(("127.0.0.1", 0), Handler)
    print(f"PORT {httpd.server_port}", flush=True)
    with httpd:
        httpd.serve_forever()


@dataclass
class ApiServer:
    """Handle on a running counting server subprocess."""

    process: subprocess.Popen[str]
    port: int
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())

    def stats(self, paths: bool = False) -> dict[str, Any]:
        return self._get("/_bench/stats" + ("?paths=1" if paths else ""))

    def reset(self) -> None:
        self._get("/_bench/reset")


@contextlib.contextmanager
def running(file: Path, list_format: str = "objects", tuned: bool = False) -> Iterator[ApiServer]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.apiserver",
            "--file",
            str(file),
            "--list-format",
            list_format,
            *(["--tuned"] if tuned else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"bench API server did not start (got {line!r})")
        yield ApiServer(process, int(line.split()[1]))
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
    parser.add_argument("--tuned", action="store_true", help="TCP_NODELAY, a listen backlog of 128, ID lookup by dict")
    options = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        serve(options.file, options.list_format, options.tuned)
    return 0


if __name__ == "__main__":
    sys.exit(main())
