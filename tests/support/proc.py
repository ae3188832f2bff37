"""Run a command the way the tests do: to its end, output captured as text, exit code left to the caller."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(args: Sequence[str | Path], *, timeout: float, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run`` with ``capture_output``, ``text`` and ``check=False``; ``kw``: env, cwd, ..."""
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False, **kw)
