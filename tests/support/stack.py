"""The `make run` stack (scripts/devstack.py) on free loopback ports; its Airflow is support.airflowapi.Airflow."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support.airflowapi import Airflow, when_ready
from support.net import free_port
from support.paths import REPO


@contextmanager
def devstack(tmp: Path, workflows_file: Path, sync_interval: float, *args: str, **env: str) -> Iterator[Airflow]:
    """scripts/devstack.py serving ``workflows_file`` (more ``args`` and environment ``env``), until
    it is healthy; on exit Ctrl-C stops it and nothing listens on its port any more."""
    port = free_port()
    run_dir = tmp / "run"
    log = (tmp / "devstack.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "devstack.py"), "--workflows", str(workflows_file),
         "--run-dir", str(run_dir), "--port", str(port), "--config-port", str(free_port()),
         "--sync-interval", str(sync_interval), *args],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
    )  # fmt: skip
    try:
        yield when_ready(proc, Path(log.name), run_dir, port, workflows_file)
    finally:
        _stop(proc, log, port)


def _stop(proc: subprocess.Popen[bytes], log: Any, port: int) -> None:
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    finally:
        print(f"devstack stopped in {time.monotonic() - started:.1f}s", file=sys.stderr)
        log.close()
    # Ctrl-C really stopped Airflow: nothing listens on its port any more. SO_REUSEADDR
    # ignores the TIME_WAIT connections a stopped server leaves; a live listener still fails.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))  # the api-server listened on every address
        sock.listen()
