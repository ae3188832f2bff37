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


class FileTakenError(FileExistsError):
    """``create_only``: a file dagfleet does not own appeared under the name (it stays as it is)."""


def atomic_write(
    path: Path, data: bytes, mode: int = 0o664, tmp_dir: Path | None = None, *, create_only: bool = False
) -> bool:
    """Write ``data`` to ``path`` via a temp file + ``os.replace``.

    The temp file lives in ``tmp_dir`` (same filesystem, default: next to ``path``); its name
    starts with a dot and does not end in ``.py``, so Airflow never parses it. Returns False
    (and writes nothing) when the file already holds exactly ``data``: the DAG processor sees
    no new mtime and does not re-parse an unchanged file. Mode 0o664: group-writable for gid 0.

    ``create_only``: ``path`` must not exist (a file dagfleet did not create is never replaced):
    the complete temp file is hard-linked to ``path``, which fails if anything holds the name, so
    even a file that appears between a check and the write is never touched (``FileTakenError``).
    """
    if create_only:
        if os.path.lexists(path):
            raise FileTakenError(f"{path.name} exists and was not created by dagfleet: left untouched")
    else:
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
        if create_only:
            _link_new(Path(tmp), path)
        else:
            Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise
    return True


def _link_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if nothing holds that name; ``tmp`` is gone afterwards."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileTakenError(f"{path.name} exists and was not created by dagfleet: left untouched") from None
    except OSError:  # a file system without hard links: check, then rename (a narrow window)
        if os.path.lexists(path):
            raise FileTakenError(f"{path.name} exists and was not created by dagfleet: left untouched") from None
        tmp.replace(path)
        return
    tmp.unlink()


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
