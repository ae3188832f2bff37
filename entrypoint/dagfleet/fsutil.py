"""Atomic file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

TEMP_PREFIX = ".dagfleet-tmp-"


def atomic_write(path: Path, data: bytes, mode: int = 0o664, tmp_dir: Path | None = None) -> bool:
    """Write ``data`` to ``path`` via a temp file + ``os.replace``.

    The temp file lives in ``tmp_dir`` (same filesystem, default: next to ``path``); its name
    starts with a dot and does not end in ``.py``, so Airflow never parses it. Returns False
    (and writes nothing) when the file already holds exactly ``data``: the DAG processor sees
    no new mtime and does not re-parse an unchanged file. Mode 0o664: group-writable for gid 0.
    """
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = tmp_dir or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(mode)
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    return True


def atomic_write_json(path: Path, value: Any, tmp_dir: Path | None = None) -> bool:
    return atomic_write(path, (json.dumps(value, indent=1, sort_keys=True) + "\n").encode(), tmp_dir=tmp_dir)


def read_json(path: Path, default: Any = None) -> Any:
    """Read a JSON file; a missing or unreadable one gives ``default``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def remove_stale_temp_files(folder: Path, older_than: float = 300.0) -> None:
    """Temp files left by a killed writer (never visible to Airflow, but tidy up).

    Only old ones: a concurrent writer (the watch sidecar) may own a fresh one.
    """
    cutoff = time.time() - older_than
    for stale in folder.glob(TEMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
