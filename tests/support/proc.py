"""Run a command the way the tests do: to its end, output captured as text, exit code left to the caller."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(args: Sequence[str | Path], *, timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` with ``capture_output``, ``text`` and ``check=False``; ``kw``: env, cwd, ..."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False, **kw)


def stop_group(proc: subprocess.Popen[Any], steps: Sequence[tuple[int, float]] | None = None) -> None:
    """Stop a process started with ``start_new_session=True`` and its whole group (FACTS.md:
    children keep ports): SIGINT, then SIGTERM, then SIGKILL, each with its grace for the leader
    and every other member of the group to exit."""
    for sig, grace in steps or ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
