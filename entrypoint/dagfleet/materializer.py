"""``dagfleet sync``: turn the workflow list into one DAG file per workflow, safely.

Guarantees:
- every file in the dags folder is complete (temp file + rename, temp files outside the
  folder's top level);
- only files listed in the manifest (files dagfleet generated) are ever pruned, and the
  manifest names a file before the file is created;
- when the API fails, nothing is touched (the last known good set stays);
- a bad workflow ID or config is reported on one line and affects that workflow only: every
  per-workflow step (ID, fetch, validation, write) is isolated, whatever it raises;
- a path dagfleet did not create (not in the manifest) is never written, renamed over or deleted:
  a workflow whose DAG file name is taken by such a file is rejected (``_foreign``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from dagfleet import workflow_ids
from dagfleet.client import POOL_SIZE, ConfigClient, Entry, ListResult
from dagfleet.errors import ConfigApiError, DagfleetError, WorkflowConfigError, WorkflowIdError
from dagfleet.fsutil import FileTakenError, atomic_write, atomic_write_json, read_json, remove_stale_temp_files
from dagfleet.settings import Settings

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
FETCH_WORKERS = POOL_SIZE  # one kept-alive connection per worker
MAX_REJECTED_IDS_SHOWN = 10  # then one line sums up the rest
LOCK_TIMEOUT = 120.0


class Outcome(IntEnum):
    """Exit codes of ``dagfleet sync`` (sysexits.h where one fits)."""

    SYNCED = 0
    NOTHING_USABLE = 69  # EX_UNAVAILABLE
    KEPT_LAST_KNOWN_GOOD = 75  # EX_TEMPFAIL


@dataclass
class SyncReport:
    outcome: Outcome = Outcome.SYNCED
    source: str = "api"
    workflows: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0
    bytes: int = 0

    def summary(self) -> str:
        if self.outcome is Outcome.KEPT_LAST_KNOWN_GOOD:
            return f"kept the last known good set of {len(self.workflows)} workflow(s) untouched"
        if self.outcome is Outcome.NOTHING_USABLE:
            return "nothing usable: no DAGs were generated"
        return (
            f"synced {len(self.workflows)} workflow(s) from {self.source}: {len(self.written)} written, "
            f"{self.unchanged} unchanged, {len(self.pruned)} pruned, {len(self.problems)} problem(s)"
        )


class _Paths:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dags = settings.dags_folder
        self.state = settings.state_dir
        self.tmp = self.state / "tmp"
        self.manifest = self.state / "manifest.json"
        self.sync_state = self.state / "state.json"
        self.lock = self.state / "lock"


@contextlib.contextmanager
def _locked(paths: _Paths, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """One sync at a time per dags folder (a component's start-up sync and the watch sidecar)."""
    paths.state.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DagfleetError(
                        f"another dagfleet sync has held {paths.lock} for {timeout:g}s; "
                        "is a sync stuck? remove the lock holder and retry"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Materializer:
    def __init__(self, settings: Settings, client: ConfigClient | None = None) -> None:
        self.settings = settings
        self.paths = _Paths(settings)
        self._client = client

    @property
    def client(self) -> ConfigClient:
        if self._client is None:
            self._client = ConfigClient.from_settings(self.settings)
        return self._client

    # -- manifest and state ---------------------------------------------------------------
    def load_manifest(self) -> dict[str, str]:
        """file name -> workflow ID, for every file dagfleet generated."""
        data = read_json(self.paths.manifest, {})
        files = data.get("files", {}) if isinstance(data, dict) else {}
        return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}

    def _save_manifest(self, files: dict[str, str]) -> None:
        atomic_write_json(
            self.paths.manifest, {"version": MANIFEST_VERSION, "files": dict(sorted(files.items()))}, self.paths.tmp
        )

    def _load_state(self) -> dict[str, Any]:
        data = read_json(self.paths.sync_state, {})
        return data if isinstance(data, dict) else {}

    # -- the sync ---------------------------------------------------------------------------
    def sync(self) -> SyncReport:
        with _locked(self.paths):
            remove_stale_temp_files(self.paths.tmp)
            report = self._sync()
        if self._client is not None:
            report.requests, report.bytes = self._client.requests_sent, self._client.bytes_received
        return report

    def _sync(self) -> SyncReport:
        report = SyncReport()
        manifest = self.load_manifest()
        state = self._load_state()
        base_dag = self._base_dag()

        listing = self._fetch_list(report, manifest, state)
        if listing is None:
            return report

        ids = self._valid_ids(listing.entries, report)
        dupes = workflow_ids.duplicates(ids)
        for dupe in sorted(dupes)[:MAX_REJECTED_IDS_SHOWN]:
            report.problems.append(
                f"workflow {dupe!r}: its ID appears more than once in the list (IDs must be unique, "
                "case-insensitively); kept as it was"
            )
        if len(dupes) > MAX_REJECTED_IDS_SHOWN:
            hidden = len(dupes) - MAX_REJECTED_IDS_SHOWN
            report.problems.append(
                f"… and {hidden:,} more IDs that appear more than once (not shown); kept as they were"
            )
        valid = set(ids)  # a set: membership in the list made a 100,000-entry list take minutes
        entries = {e.workflow_id: e for e in listing.entries if e.workflow_id in valid and e.workflow_id not in dupes}
        for workflow_id in self._foreign(entries, manifest):
            del entries[workflow_id]
            report.problems.append(_taken(workflow_id))
        if not entries and not dupes and manifest and not self.settings.allow_empty and report.source == "api":
            report.outcome = Outcome.KEPT_LAST_KNOWN_GOOD
            report.workflows = sorted(set(manifest.values()))
            report.problems.append(
                f"config API returned no workflows; kept the {len(manifest)} generated DAG(s) "
                "(set DAGFLEET_ALLOW_EMPTY=true to let an empty list remove them)"
            )
            return report

        configs, kept, complete = self._resolve_configs(entries, listing, state, report)
        keep_ids = set(configs) | kept | (dupes & set(manifest.values()))
        if listing.unreadable:  # an entry whose ID is unknown may be any workflow: prune nothing
            keep_ids |= set(manifest.values())
        # The manifest names every file before it exists, so a killed sync never leaves an
        # unlisted generated file behind.
        planned = {workflow_ids.dag_file_name(i): i for i in configs}
        self._save_manifest({**manifest, **planned})

        configs_written = False
        for workflow_id, config in sorted(configs.items()):
            try:
                configs_written |= self._write(workflow_id, config, base_dag, manifest, report)
            except FileTakenError:  # a user's file appeared under the name during this sync
                del planned[workflow_ids.dag_file_name(workflow_id)]
                report.problems.append(_taken(workflow_id))
            except Exception as err:  # noqa: BLE001 - one workflow's failure must not stop the others
                report.problems.append(
                    f"workflow {workflow_id!r}: could not be written ({_one_line(err)}); kept as it was"
                )

        final = {name: wid for name, wid in {**manifest, **planned}.items() if wid in keep_ids}
        for name, workflow_id in sorted({**manifest, **planned}.items()):
            if workflow_id not in keep_ids:
                self._prune(name, workflow_id)
                report.pruned.append(name)
        self._save_manifest(final)
        if report.written or report.pruned or configs_written:
            os.sync()  # one flush to disk for the whole sync instead of one fsync per file
        report.workflows = sorted(set(final.values()))
        self._save_state(state, listing, report, complete and not listing.problems)
        return report

    def _write(
        self,
        workflow_id: str,
        config: dict[str, Any] | None,
        base_dag: bytes,
        owned: dict[str, str],
        report: SyncReport,
    ) -> bool:
        """Write one workflow's config, then its DAG file; whether the config changed.

        A file not in the manifest before this sync (``owned``) is created, never replaced: if
        something appeared under its name meanwhile, that file stays and the workflow is skipped.
        """
        path = self.paths.dags / workflow_ids.dag_file_name(workflow_id)
        create_only = path.name not in owned
        if create_only and os.path.lexists(path):
            raise FileTakenError(path.name)
        config_changed = False
        if config is not None:
            config_changed = atomic_write_json(self.settings.config_path(workflow_id), config, self.paths.tmp)
        if atomic_write(path, base_dag, tmp_dir=self.paths.tmp, create_only=create_only):
            report.written.append(path.name)
        else:
            report.unchanged += 1
        return config_changed

    def _foreign(self, entries: dict[str, Entry], manifest: dict[str, str]) -> list[str]:
        """IDs whose DAG file name is taken by a file dagfleet did not create (not in the manifest)."""
        taken = []
        for workflow_id in sorted(entries):
            name = workflow_ids.dag_file_name(workflow_id)
            if name not in manifest and os.path.lexists(self.paths.dags / name):
                taken.append(workflow_id)
        return taken

    def _base_dag(self) -> bytes:
        try:
            return self.settings.base_dag.read_bytes()
        except OSError as err:
            raise DagfleetError(
                f"cannot read the base DAG {self.settings.base_dag}: {err.strerror}; set DAGFLEET_BASE_DAG"
            ) from None

    def _fetch_list(self, report: SyncReport, manifest: dict[str, str], state: dict[str, Any]) -> ListResult | None:
        """The workflow list from the API (or the static list); None when the sync must stop."""
        static = [Entry(i, {}) for i in self.settings.static_workflows]
        if not self.settings.api_url:
            if static:
                report.source = "DAGFLEET_STATIC_WORKFLOWS"
                return ListResult(static)
            report.outcome = Outcome.NOTHING_USABLE
            report.problems.append(
                "no workflows: set DAGFLEET_API_URL to the config API, or DAGFLEET_STATIC_WORKFLOWS to a list of IDs"
            )
            return None
        have_all = manifest and all((self.paths.dags / name).exists() for name in manifest)
        etag = state.get("list_etag") if have_all and state.get("complete") else None
        try:
            try:
                listing = self.client.list_workflows(etag)
            except ConfigApiError:
                raise
            except Exception as unexpected:  # noqa: BLE001 - whatever the answer holds: one line, last known good
                raise ConfigApiError(
                    f"config API answer for the workflow list could not be read ({_one_line(unexpected)})"
                ) from None
        except ConfigApiError as err:
            if manifest:
                report.outcome = Outcome.KEPT_LAST_KNOWN_GOOD
                report.workflows = sorted(set(manifest.values()))
                report.problems.append(f"{err}; kept the last known good set of {len(report.workflows)} DAG(s)")
                return None
            if static:
                report.problems.append(f"{err}; using DAGFLEET_STATIC_WORKFLOWS ({len(static)} workflow(s))")
                report.source = "DAGFLEET_STATIC_WORKFLOWS"
                return ListResult(static)
            report.outcome = Outcome.NOTHING_USABLE
            report.problems.append(f"{err}; there is no last known good set and no DAGFLEET_STATIC_WORKFLOWS fallback")
            return None
        if listing.not_modified:
            # Nothing changed upstream: rebuild the listing from what we stored last time.
            entries = [Entry(i, None if state.get("ids_only") else self._stored(i)) for i in state.get("ids", [])]
            return ListResult(entries, [], etag, not_modified=True)
        report.problems.extend(listing.problems)
        return listing

    def _valid_ids(self, entries: list[Entry], report: SyncReport) -> list[str]:
        valid = []
        rejected = 0
        for entry in entries:
            try:
                valid.append(workflow_ids.validate(entry.workflow_id))
            except Exception as err:  # noqa: BLE001 - WorkflowIdError, or anything else: that ID only
                rejected += 1
                if rejected <= MAX_REJECTED_IDS_SHOWN:
                    shown = str(err) if isinstance(err, WorkflowIdError) else f"workflow ID check: {_one_line(err)}"
                    report.problems.append(f"{shown}; skipped (fix the ID in the config API)")
        if rejected > MAX_REJECTED_IDS_SHOWN:
            report.problems.append(f"… and {rejected - MAX_REJECTED_IDS_SHOWN:,} more rejected IDs (not shown)")
        return valid

    def _stored(self, workflow_id: str) -> dict[str, Any] | None:
        stored = read_json(self.settings.config_path(workflow_id))
        return stored if isinstance(stored, dict) else None

    def _resolve_configs(
        self, entries: dict[str, Entry], listing: ListResult, state: dict[str, Any], report: SyncReport
    ) -> tuple[dict[str, dict[str, Any] | None], set[str], bool]:
        """The config to store per workflow (None: keep the stored one), the IDs kept as they
        were, and whether every config could be fetched."""
        etags: dict[str, str] = state.get("etags", {}) if isinstance(state.get("etags"), dict) else {}
        need_fetch = [i for i, e in entries.items() if e.config is None and e.problem is None]
        fetched: dict[str, dict[str, Any] | None] = {}
        failed: dict[str, str] = {i: e.problem for i, e in entries.items() if e.problem is not None}
        if need_fetch and self.settings.api_url:

            def fetch(workflow_id: str) -> tuple[str, dict[str, Any] | None, str | None, str | None]:
                stored = self._stored(workflow_id)
                etag = etags.get(workflow_id) if stored is not None else None
                try:
                    result = self.client.get_config(workflow_id, etag)
                except ConfigApiError as err:
                    return workflow_id, None, None, str(err)
                except Exception as err:  # noqa: BLE001 - that workflow only
                    return workflow_id, None, None, f"its config could not be fetched ({_one_line(err)})"
                return workflow_id, (None if result.not_modified else result.config), result.etag, None

            with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(need_fetch))) as pool:
                for workflow_id, config, etag, error in pool.map(fetch, need_fetch):
                    if error is not None:
                        failed[workflow_id] = error
                        continue
                    fetched[workflow_id] = config
                    if etag:
                        etags[workflow_id] = etag
        state["etags"] = {i: t for i, t in etags.items() if i in entries}

        from dagfleet.config import validate_config  # pydantic: imported only when syncing

        configs: dict[str, dict[str, Any] | None] = {}
        kept: set[str] = set()
        for workflow_id, entry in entries.items():
            exists = (self.paths.dags / workflow_ids.dag_file_name(workflow_id)).exists()
            has_stored = self._stored(workflow_id) is not None
            if workflow_id in failed:
                if exists:
                    kept.add(workflow_id)
                    report.problems.append(
                        f"workflow {workflow_id!r}: {failed[workflow_id]}; kept its last known good DAG"
                    )
                else:
                    report.problems.append(f"workflow {workflow_id!r}: {failed[workflow_id]}; not created yet")
                continue
            config = entry.config if entry.config is not None else fetched.get(workflow_id)
            if config is None:  # 304: the stored config is current
                configs[workflow_id] = None if has_stored else {}
                continue
            try:
                validate_config(workflow_id, config)
            except Exception as err:  # noqa: BLE001 - WorkflowConfigError, or anything else: that workflow only
                line = (
                    str(err)
                    if isinstance(err, WorkflowConfigError)
                    else f"workflow {workflow_id!r}: its config could not be validated ({_one_line(err)}); "
                    "fix it in the config API"
                )
                if exists and has_stored:
                    kept.add(workflow_id)
                    report.problems.append(f"{line}; kept its last known good config")
                    continue
                if not _storable(config):  # cannot even be stored: no DAG until it is fixed
                    report.problems.append(f"{line}; not created yet")
                    continue
                # A new workflow: generate it anyway so the import error shows in Airflow's UI.
                report.problems.append(f"{line}; its DAG will show this as an import error")
            configs[workflow_id] = config
        return configs, kept, not failed

    def _prune(self, file_name: str, workflow_id: str) -> None:
        # Only names that dagfleet itself produces: never follow anything else in the manifest.
        try:
            if workflow_ids.dag_file_name(workflow_id) != file_name:
                return
        except WorkflowIdError:
            return
        for path in (self.paths.dags / file_name, self.settings.config_path(workflow_id)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _save_state(self, state: dict[str, Any], listing: ListResult, report: SyncReport, complete: bool) -> None:
        new_state = {
            "list_etag": listing.etag if complete else None,
            "complete": complete,
            "ids": report.workflows if listing.not_modified else [e.workflow_id for e in listing.entries],
            "ids_only": all(e.config is None for e in listing.entries) if listing.entries else False,
            "etags": state.get("etags", {}),
            "source": report.source,
            "last_success": time.time(),
        }
        if listing.not_modified:
            new_state["ids_only"] = bool(state.get("ids_only"))
        atomic_write_json(self.paths.sync_state, new_state, self.paths.tmp)


def _taken(workflow_id: str) -> str:
    return (
        f"workflow {workflow_id!r}: its DAG file {workflow_ids.dag_file_name(workflow_id)} already exists in the "
        "dags folder and was not created by dagfleet; left that file untouched and skipped the workflow "
        "(rename the workflow in the config API, or move that file away)"
    )


def _one_line(err: BaseException, limit: int = 200) -> str:
    """``Type: message`` on one line, at most ``limit`` characters, ASCII only (no log forging)."""
    text = " ".join(ascii(str(err))[1:-1].split())
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _storable(config: dict[str, Any]) -> bool:
    """Whether ``config`` can be written as JSON (and read back by the base DAG)."""
    try:
        json.dumps(config)
    except (TypeError, ValueError, RecursionError):
        return False
    return True
