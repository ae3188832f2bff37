"""The fleet's state on disk: the one module that knows the dags folder's layout.

```
<dags>/<workflow_id>-mydag.py          one generated DAG per workflow (its template + a trailer line)
<dags>/.dagfleet/manifest.json         the files dagfleet generated (only these are ever pruned)
<dags>/.dagfleet/records/<id>.json     one Record per workflow: its last known good config and template
<dags>/.dagfleet/state.json            the workflow list's ETag and the last successful sync
<dags>/.dagfleet/cache/<id>.json       the parse-time config cache (loader, when sync stored nothing)
<dags>/.dagfleet/lock                  one sync at a time per dags folder
<dags>/.dagfleet/tmp/                  temp files of atomic writes (never parsed by Airflow)
```

``dagfleet sync`` writes it (through ``FleetStore``), the parse-time loader reads it; nobody
else builds these paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagfleet import workflow_ids
from dagfleet.errors import DagfleetError, WorkflowIdError
from dagfleet.fsutil import atomic_write, atomic_write_json, read_json, remove_stale_temp_files

STATE_DIR = ".dagfleet"
MANIFEST_VERSION = 1
RECORD_VERSION = 1
LOCK_TIMEOUT = 120.0
# What `.dagfleet/` may hold.
ENTRIES = frozenset({"manifest.json", "state.json", "records", "cache", "lock", "tmp"})
TRAILER_PREFIX = b"# dagfleet-generated: "


@dataclass(frozen=True)
class Record:
    """One workflow's last known good state: what its generated DAG is built from."""

    workflow_id: str
    config: dict[str, Any]  # the raw config as the API sent it (validated)
    template: str  # the template (base DAG) name its file is a copy of
    etag: str | None = None  # the config's ETag (ids mode: a re-sync asks with If-None-Match)
    stored_at: float = field(default_factory=time.time)

    def digest(self) -> str:
        """What feeds the DAG's parse besides the template bytes: its config and template name."""
        canonical = json.dumps([self.template, self.config], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "workflow_id": self.workflow_id,
            "template": self.template,
            "etag": self.etag,
            "stored_at": self.stored_at,
            "config": self.config,
        }

    @classmethod
    def from_json(cls, workflow_id: str, value: Any) -> Record | None:
        """``None`` for anything that is not a record of this workflow (corrupt, foreign, old)."""
        if not (
            isinstance(value, dict)
            and value.get("workflow_id") == workflow_id
            and isinstance(value.get("config"), dict)
            and isinstance(value.get("template"), str)
            and isinstance(value.get("stored_at"), int | float)
        ):
            return None
        etag = value.get("etag")
        return cls(workflow_id, value["config"], value["template"], etag if isinstance(etag, str) else None,
                   float(value["stored_at"]))  # fmt: skip


def dag_bytes(template: bytes, record: Record, version: str) -> bytes:
    """A generated DAG file: the template's bytes plus one trailer line naming the dagfleet
    version and the record's digest, so a change of config, template or version changes the
    file (Airflow re-parses it) and nothing else does."""
    body = template if template.endswith(b"\n") or not template else template + b"\n"
    return body + TRAILER_PREFIX + f"dagfleet {version}, record {record.digest()}\n".encode()


class FleetStore:
    """Paths, records, manifest, sync state and lock of one dags folder."""

    def __init__(self, dags_folder: Path) -> None:
        self.dags = Path(dags_folder)
        self.state = self.dags / STATE_DIR
        self.records = self.state / "records"
        self.cache_dir = self.state / "cache"
        self.tmp = self.state / "tmp"
        self.manifest_path = self.state / "manifest.json"
        self.sync_state_path = self.state / "state.json"
        self.lock_path = self.state / "lock"

    # -- DAG files ------------------------------------------------------------------------------
    def dag_path(self, workflow_id: str) -> Path:
        return self.dags / workflow_ids.dag_file_name(workflow_id)

    def write_dag(self, workflow_id: str, data: bytes) -> bool:
        """Atomically; False (nothing written) when the file already holds ``data``."""
        return atomic_write(self.dag_path(workflow_id), data, tmp_dir=self.tmp)

    def has_dag(self, workflow_id: str) -> bool:
        return self.dag_path(workflow_id).exists()

    # -- records ----------------------------------------------------------------------------------
    def record_path(self, workflow_id: str) -> Path:
        return self.records / f"{workflow_ids.validate(workflow_id)}.json"

    def record(self, workflow_id: str) -> Record | None:
        return Record.from_json(workflow_id, read_json(self.record_path(workflow_id)))

    def write_record(self, record: Record) -> bool:
        return atomic_write_json(self.record_path(record.workflow_id), record.to_json(), self.tmp)

    def remove(self, file_name: str, workflow_id: str) -> None:
        """Remove a generated DAG and its record, only when ``file_name`` is the name dagfleet
        gives that workflow (never follow anything else a manifest may say)."""
        try:
            if workflow_ids.dag_file_name(workflow_id) != file_name:
                return
        except WorkflowIdError:
            return
        for path in (self.dags / file_name, self.record_path(workflow_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    # -- manifest and sync state --------------------------------------------------------------------
    def manifest(self) -> dict[str, str]:
        """file name -> workflow ID, for every file dagfleet generated."""
        data = read_json(self.manifest_path, {})
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}

    def save_manifest(self, files: dict[str, str]) -> None:
        atomic_write_json(
            self.manifest_path, {"version": MANIFEST_VERSION, "files": dict(sorted(files.items()))}, self.tmp
        )

    def sync_state(self) -> dict[str, Any]:
        data = read_json(self.sync_state_path, {})
        return data if isinstance(data, dict) else {}

    def save_sync_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.sync_state_path, state, self.tmp)

    # -- lock -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """One sync at a time per dags folder (a component's start-up sync and the watch sidecar)."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise DagfleetError(
                            f"another dagfleet sync has held {self.lock_path} for {timeout:g}s; "
                            "is a sync stuck? remove the lock holder and retry"
                        ) from None
                    time.sleep(0.2)
            try:
                remove_stale_temp_files(self.tmp)
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
