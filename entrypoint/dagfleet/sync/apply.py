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

The decisions are made by ``dagfleet.sync.plan`` (a typed plan, nothing written); this module fetches,
applies the plan through ``dagfleet.fleet.store`` and derives the report from the plan.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dagfleet.api.client import POOL_SIZE, ConfigClient, Entry, ListResult
from dagfleet.fleet import __version__, shards, versions, workflow_ids
from dagfleet.fleet.errors import ConfigApiError, WorkflowIdError, one_line
from dagfleet.fleet.fsutil import FileTakenError
from dagfleet.fleet.settings import Settings
from dagfleet.fleet.store import FleetStore, Record
from dagfleet.sync import fleetstatus
from dagfleet.sync.plan import Action, Inputs, Plan, Step, make_plan
from dagfleet.sync.report import Outcome, SyncReport

log = logging.getLogger(__name__)

FETCH_WORKERS = POOL_SIZE  # one kept-alive connection per worker
MAX_REJECTED_IDS_SHOWN = 10  # log lines; then one line sums up the rest
MAX_REJECTED_IDS_LISTED = fleetstatus.MAX_LISTED  # status rows; the rest is counted (hidden_rejected)


class _Stopped(Exception):
    """The sync cannot go on; the report says why (outcome and problem)."""

    def __init__(self, report: SyncReport) -> None:
        super().__init__(report.summary())
        self.report = report


def _stop(outcome: Outcome, problem: str, workflows: list[str] | None = None, source: str = "api") -> _Stopped:
    return _Stopped(SyncReport(outcome, source, workflows or [], problems=[problem]))


class FleetSync:
    def __init__(self, settings: Settings, client: ConfigClient | None = None) -> None:
        self.settings = settings
        self.store = FleetStore(settings.dags_folder)
        self._client = client
        self._records: dict[str, Record | None] = {}
        self._rows: dict[str, str] = {}  # per-workflow problems found before planning (for the report)
        self._hidden_rejected = 0
        self._elided: list[str] = []
        self._rejected_ids = 0

    @property
    def client(self) -> ConfigClient:
        if self._client is None:
            self._client = ConfigClient.from_settings(self.settings)
        return self._client

    # -- the sync ---------------------------------------------------------------------------
    def sync(self) -> SyncReport:
        started = time.time()
        with self.store.locked():
            self._records = {}
            self._rows, self._hidden_rejected, self._elided, self._rejected_ids = {}, 0, [], 0
            try:
                report = self._sync()
            except _Stopped as stopped:
                report = stopped.report
            fleetstatus.record_sync(self.store, report, started)
        if self._client is not None:
            report.requests, report.bytes = self._client.requests_sent, self._client.bytes_received
        return report

    def _record(self, workflow_id: str) -> Record | None:
        """The stored record, read at most once per sync."""
        if workflow_id not in self._records:
            self._records[workflow_id] = self.store.record(workflow_id)
        return self._records[workflow_id]

    def _sync(self) -> SyncReport:
        manifest = self.store.manifest()
        state = self.store.sync_state()
        listing, source, problems = self._fetch_list(manifest, state)
        entries, dupes = self._valid_entries(listing.entries, problems)
        for workflow_id in self._foreign(entries, manifest):
            del entries[workflow_id]
            problems.append(_taken(workflow_id))
            self._rows[workflow_id] = _taken(workflow_id)
        if not entries and not dupes and manifest and not self.settings.allow_empty and source == "api":
            raise _stop(
                Outcome.KEPT_LAST_KNOWN_GOOD,
                f"config API returned no workflows; kept the {len(manifest)} generated DAG(s) "
                "(set DAGFLEET_ALLOW_EMPTY=true to let an empty list remove them)",
                sorted(set(manifest.values())),
            )
        configs, fetched = self._resolve(entries, listing, state)
        plan = make_plan(
            configs,
            lambda i: self._inputs(i, fetched.get(i)),
            manifest,
            set(manifest.values()) if listing.unreadable else dupes,  # an unknown ID may be any: prune nothing
            self.settings.template_library(),
            __version__,
            time.time(),
            self.settings.declared(),
        )
        plan.problems[:0] = problems
        final = self._apply(plan, manifest)
        report = SyncReport.from_plan(plan, source, sorted(set(final.values())), self._rows)
        report.hidden_rejected, report.elided = self._hidden_rejected, list(self._elided)
        report.rejected_ids = self._rejected_ids
        complete = not any(isinstance(f, str) for f in fetched.values()) and not listing.problems
        self._save_state(state, listing, report, source, complete)
        return report

    def _inputs(self, workflow_id: str, fetched: tuple[str | None, Any] | str | None) -> Inputs:
        path = self.store.dag_path(workflow_id)
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            current = None
        if isinstance(fetched, str):
            return Inputs(self._record(workflow_id), current, fetch_error=fetched)
        etag = fetched[0] if fetched else None
        return Inputs(self._record(workflow_id), current, etag)

    def _apply(self, plan: Plan, manifest: dict[str, str]) -> dict[str, str]:
        """Write the plan: the manifest names every file before it exists, so a killed sync
        never leaves an unlisted generated file behind. Returns the final manifest."""
        self.store.save_manifest({**manifest, **plan.written()})
        changed = False
        for index, step in enumerate(plan.steps):
            try:
                changed |= self._write(step, create_only=step.file_name not in manifest)
            except FileTakenError:  # a user's file appeared under the name during this sync
                plan.steps[index] = Step(
                    step.workflow_id, Action.REJECT, problem=_taken(step.workflow_id), has_file=False
                )
            except Exception as err:  # noqa: BLE001 - one workflow's failure must not stop the others
                problem = f"workflow {step.workflow_id!r}: could not be written ({one_line(err)}); kept as it was"
                plan.steps[index] = Step(step.workflow_id, Action.REJECT, problem=problem,
                                         has_file=step.file_name in manifest, unavailable=True)  # fmt: skip
        for name, workflow_id in plan.prune.items():
            self.store.remove(name, workflow_id)
        final = plan.files()
        self.store.save_manifest(final)
        if changed or plan.prune or self._unpublished() or self._removal_due():
            self._publish(final)
            os.sync()  # one flush to disk for the whole sync instead of one fsync per file
        return final

    def _bundles(self) -> list[str]:
        return shards.bundle_names(self.settings.shards)

    def _unpublished(self) -> bool:
        """A bundle has no version yet (a first sync, or a new DAGFLEET_SHARDS) or one no longer in use has."""
        return any(versions.current(self.store.dags, b) is None for b in self._bundles()) or bool(
            versions.trees(self.store.dags) - set(self._bundles())
        )

    def _removal_due(self) -> bool:
        return any(
            versions.removal_due(self.store.dags, self.settings.removed_grace, bundle=b) for b in self._bundles()
        )

    def _publish(self, final: dict[str, str]) -> None:
        """A new version of the fleet for the dagfleet bundle; on failure the bundle stays at the
        last published version (runs keep working) until the next change."""
        try:
            versions.publish_all(
                self.store, final, self.settings.version_keep_hours, self.settings.removed_grace, self.settings.shards
            )
        except OSError as err:
            log.warning(
                "could not publish a version of the fleet (%s); runs stay on the last version until the next change",
                one_line(err),
            )

    def _write(self, step: Step, create_only: bool) -> bool:
        """One workflow's record, then its DAG file. A file not in the manifest before this sync
        is created, never replaced: if something holds its name, that file stays (FileTakenError)."""
        if step.dag is not None and create_only and os.path.lexists(self.store.dag_path(step.workflow_id)):
            raise FileTakenError(step.file_name)
        changed = False
        if step.record is not None:
            changed |= self.store.write_record(step.record)
        if step.dag is not None:
            try:
                changed |= self.store.write_dag(step.workflow_id, step.dag, create_only=create_only)
            except FileTakenError:
                self.store.remove_record(step.workflow_id)
                raise
        return changed

    def _foreign(self, entries: dict[str, Entry], manifest: dict[str, str]) -> list[str]:
        """IDs whose DAG file name is taken by a file dagfleet did not create (not in the manifest)."""
        taken = []
        for workflow_id in sorted(entries):
            if self.store.dag_path(workflow_id).name not in manifest and os.path.lexists(
                self.store.dag_path(workflow_id)
            ):
                taken.append(workflow_id)
        return taken

    def _fetch_list(self, manifest: dict[str, str], state: dict[str, Any]) -> tuple[ListResult, str, list[str]]:
        """The workflow list from the API (or the static list), its source and its problems."""
        static = [Entry(i, {}) for i in self.settings.static_workflows]
        if not self.settings.api_url:
            if static:
                return ListResult(static), "DAGFLEET_STATIC_WORKFLOWS", []
            raise _stop(
                Outcome.NOTHING_USABLE,
                "no workflows: set DAGFLEET_API_URL to the config API, or DAGFLEET_STATIC_WORKFLOWS to a list of IDs",
            )
        have_all = manifest and all((self.store.dags / name).exists() for name in manifest)
        etag = state.get("list_etag") if have_all and state.get("complete") else None
        try:
            listing = self._list(etag)
        except ConfigApiError as err:
            if manifest:
                kept = sorted(set(manifest.values()))
                problem = f"{err}; kept the last known good set of {len(kept)} DAG(s)"
                raise _stop(Outcome.KEPT_LAST_KNOWN_GOOD, problem, kept) from None
            if static:
                problem = f"{err}; using DAGFLEET_STATIC_WORKFLOWS ({len(static)} workflow(s))"
                return ListResult(static), "DAGFLEET_STATIC_WORKFLOWS", [problem]
            problem = f"{err}; there is no last known good set and no DAGFLEET_STATIC_WORKFLOWS fallback"
            raise _stop(Outcome.NOTHING_USABLE, problem) from None
        if listing.not_modified:
            # Nothing changed upstream: the listing is what we stored last time.
            ids_only = bool(state.get("ids_only"))
            entries = [Entry(i, None if ids_only else self._stored_config(i)) for i in state.get("ids", [])]
            return ListResult(entries, [], etag, not_modified=True), "api", []
        return listing, "api", list(listing.problems)

    def _list(self, etag: str | None) -> ListResult:
        try:
            return self.client.list_workflows(etag)
        except ConfigApiError:
            raise
        except Exception as unexpected:  # noqa: BLE001 - whatever the answer holds: one line, last known good
            raise ConfigApiError(
                f"config API answer for the workflow list could not be read ({one_line(unexpected)})"
            ) from None

    def _stored_config(self, workflow_id: str) -> dict[str, Any] | None:
        record = self._record(workflow_id)
        return record.config if record is not None else None

    def _valid_entries(self, entries: list[Entry], problems: list[str]) -> tuple[dict[str, Entry], set[str]]:
        """Entries with valid, unique IDs; the duplicated IDs (kept as they were) are returned apart.
        Past MAX_REJECTED_IDS_SHOWN log lines of a kind, one line sums up the rest; the status
        lists every one up to MAX_REJECTED_IDS_LISTED and counts the rest (``hidden_rejected``)."""
        ids = []
        rejected: list[tuple[str, str]] = []
        for entry in entries:
            try:
                ids.append(workflow_ids.validate(entry.workflow_id))
            except Exception as err:  # noqa: BLE001 - WorkflowIdError, or anything else: that ID only
                shown = str(err) if isinstance(err, WorkflowIdError) else f"workflow ID check: {one_line(err)}"
                rejected.append((_row_key(entry.workflow_id), f"{shown}; skipped (fix the ID in the config API)"))
        self._list_rejected(rejected, problems, "… and {:,} more rejected IDs (not shown)")
        dupes = workflow_ids.duplicates(ids)
        line = (
            "workflow {!r}: its ID appears more than once in the list (IDs must be unique, case-insensitively); "
            "kept as it was"
        )
        more = "… and {:,} more IDs that appear more than once (not shown); kept as they were"
        self._list_rejected([(d, line.format(d)) for d in sorted(dupes)], problems, more)
        valid = set(ids)  # a set: membership in the list made a 100,000-entry list take minutes
        return {e.workflow_id: e for e in entries if e.workflow_id in valid and e.workflow_id not in dupes}, dupes

    def _list_rejected(self, rejected: list[tuple[str, str]], problems: list[str], more: str) -> None:
        """``(status row, line)`` pairs: the first MAX_REJECTED_IDS_SHOWN lines are logged, then one
        line sums up the rest (not kept in the status, which has a row per ID up to
        MAX_REJECTED_IDS_LISTED and counts every other one, so its count is exact)."""
        problems.extend(line for _, line in rejected[:MAX_REJECTED_IDS_SHOWN])
        listed = dict(rejected[:MAX_REJECTED_IDS_LISTED])
        self._rows.update(listed)
        self._rejected_ids += len(rejected)
        self._hidden_rejected += len(rejected) - len(listed)  # past the cap, or one row for two equal raw IDs
        hidden = len(rejected) - MAX_REJECTED_IDS_SHOWN
        if hidden > 0:
            problems.append(more.format(hidden))
            self._elided.append(problems[-1])

    def _resolve(
        self, entries: dict[str, Entry], listing: ListResult, state: dict[str, Any]
    ) -> tuple[dict[str, dict[str, Any] | None], dict[str, tuple[str | None, Any] | str]]:
        """Each workflow's raw config (``None``: the stored one is current) and, for configs
        fetched one by one, ``(etag, config)`` or the error string."""
        need_fetch = [i for i, e in entries.items() if e.config is None and e.problem is None]
        fetched: dict[str, tuple[str | None, Any] | str] = {i: e.problem for i, e in entries.items() if e.problem}
        if need_fetch and self.settings.api_url:
            with ThreadPoolExecutor(max_workers=min(FETCH_WORKERS, len(need_fetch))) as pool:
                for workflow_id, result in zip(need_fetch, pool.map(self._fetch_one, need_fetch), strict=True):
                    fetched[workflow_id] = result
        configs: dict[str, dict[str, Any] | None] = {}
        for workflow_id, entry in entries.items():
            result = fetched.get(workflow_id)
            configs[workflow_id] = entry.config if entry.config is not None else (
                result[1] if isinstance(result, tuple) else None
            )  # fmt: skip
        return configs, fetched

    def _fetch_one(self, workflow_id: str) -> tuple[str | None, Any] | str:
        stored = self._record(workflow_id)
        etag = stored.etag if stored is not None else None
        try:
            result = self.client.get_config(workflow_id, etag)
        except ConfigApiError as err:
            return str(err)
        except Exception as err:  # noqa: BLE001 - that workflow only
            return f"its config could not be fetched ({one_line(err)})"
        return result.etag or etag, (None if result.not_modified else result.config)

    def _save_state(
        self, state: dict[str, Any], listing: ListResult, report: SyncReport, source: str, complete: bool
    ) -> None:
        ids_only = all(e.config is None for e in listing.entries) if listing.entries else False
        self.store.save_sync_state(
            {
                "list_etag": listing.etag if complete else None,
                "complete": complete,
                "ids": report.workflows if listing.not_modified else [e.workflow_id for e in listing.entries],
                "ids_only": bool(state.get("ids_only")) if listing.not_modified else ids_only,
                "source": source,
                "last_success": time.time(),
            }
        )


def _taken(workflow_id: str) -> str:
    name = FleetStore.file_name(workflow_id)
    return (
        f"workflow {workflow_id!r}: its DAG file {name} already exists in the dags folder and was not created by "
        "dagfleet; left that file untouched and skipped the workflow (rename the workflow in the config API, "
        "or move that file away)"
    )


def _row_key(raw: object) -> str:
    """How a rejected raw ID is named in the status (escaped, ASCII only, at most 60 characters)."""
    text = raw if isinstance(raw, str) else repr(raw)[:61]
    return ascii(text[:60])[1:-1] + ("..." if len(text) > 60 else "")
