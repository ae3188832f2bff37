"""The fleet's health as the last sync left it, on disk: ``<dags>/.dagfleet/status.json``.

Every sync (``dagfleet sync``, ``run``'s start-up sync, each round of ``watch``) records its
outcome here through ``record_sync``, the only writer (called once per sync, inside the sync
lock, through ``dagfleet.fleet.store``); ``load`` is the only reader, used by
``dagfleet status`` and the Fleet page in Airflow's UI. Both need nothing but the dags folder,
so they work in any pod that mounts it (and in ``docker exec``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagfleet.fleet import versions
from dagfleet.fleet.errors import WorkflowIdError
from dagfleet.fleet.store import FleetStore, workflow_id_from_file
from dagfleet.sync.report import Outcome, SyncReport

if TYPE_CHECKING:
    from dagfleet.fleet.settings import Settings

STATUS_VERSION = 1
MAX_LISTED = 1000  # rejected IDs with a row (dagfleet.sync.apply.MAX_REJECTED_IDS_LISTED)


class State(StrEnum):
    """What the last sync did with one workflow (also the ``state`` label of ``dagfleet_workflows``)."""

    SYNCED = "synced"  # its DAG matches what the config API (or the static list) says
    KEPT = "kept_last_known_good"  # its config could not be fetched: its last known good DAG stays
    REJECTED = "rejected"  # its ID or config is invalid (an existing DAG keeps its last good config)
    PRUNED = "pruned"  # gone from the list: its DAG was removed by the last sync
    NOT_CREATED = "not_created"  # new, but its config could not be fetched: no DAG yet
    UNKNOWN = "unknown"  # a generated DAG with no recorded sync (state written by an older dagfleet)


# The states the metrics always export (0 included), in display order.
METRIC_STATES = (State.SYNCED, State.KEPT, State.REJECTED, State.PRUNED)

SOURCE_API = "config API"
SOURCE_STATIC = "static list"
SOURCE_KEPT = "last known good"


@dataclass(frozen=True)
class WorkflowStatus:
    workflow_id: str
    state: State
    source: str  # SOURCE_API, SOURCE_STATIC, SOURCE_KEPT or "-"
    template: str = "-"  # the template its DAG is built from (from its record; "-" when there is none)
    stored_at: float | None = None  # when its record (config, template) was last stored
    problem: str | None = None
    dag_file: str | None = None  # the generated file, when there is one
    # the fleet version that first held its current DAG file: what a run created now pins (dagfleet show --version)
    version: str | None = None

    @property
    def has_dag(self) -> bool:
        """Airflow has a DAG for it: a generated file built from a stored (valid) config. A new
        workflow rejected before any good config has a file that only raises its import error."""
        return self.dag_file is not None and self.stored_at is not None


@dataclass(frozen=True)
class FleetStatus:
    outcome: str  # "synced", "kept_last_known_good", "nothing_usable" or "never" (no sync recorded)
    summary: str  # the last sync's one-line summary
    attempted_at: float | None = None  # when the last sync started
    duration_seconds: float | None = None
    last_success: float | None = None  # when a sync last ended "synced"
    source: str = "-"
    problems: list[str] = field(default_factory=list)  # fleet-level problems (the list, the API)
    workflows: list[WorkflowStatus] = field(default_factory=list)
    # Rejected IDs without a row: past MAX_REJECTED_IDS_LISTED (dagfleet.sync.apply), counted in "rejected".
    unlisted_rejected: int = 0
    # One row per DAG bundle (shard, DAGFLEET_SHARDS): {"bundle", "version", "kept", "workflows"}.
    shards: list[dict[str, Any]] = field(default_factory=list)
    fleet_version: str | None = None  # the current version of the dagfleet bundle; None before the first publish

    def counts(self) -> dict[str, int]:
        counts = {str(s): 0 for s in METRIC_STATES}
        for workflow in self.workflows:
            counts[str(workflow.state)] = counts.get(str(workflow.state), 0) + 1
        counts[str(State.REJECTED)] += self.unlisted_rejected
        return counts

    @property
    def healthy(self) -> bool:
        """The last sync succeeded and no workflow has a problem."""
        return (
            self.outcome == "synced"
            and not self.problems
            and not self.unlisted_rejected
            and all(w.problem is None for w in self.workflows)
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        data["counts"] = self.counts()
        return data


def _source_label(source: str) -> str:
    return SOURCE_STATIC if source == "DAGFLEET_STATIC_WORKFLOWS" else SOURCE_API


def workflow_states(report: SyncReport) -> dict[str, tuple[State, str]]:
    """workflow ID -> (state, where its config came from), from one sync's report (itself derived
    from the sync's plan)."""

    if report.outcome is not Outcome.SYNCED:
        return dict.fromkeys(report.workflows, (State.KEPT, SOURCE_KEPT))
    source = _source_label(report.source)
    rejected, kept, unavailable = set(report.rejected), set(report.kept), set(report.unavailable)
    problems = report.workflow_problems
    states: dict[str, tuple[State, str]] = {}
    for workflow_id in report.workflows:
        if workflow_id in unavailable:  # not fetched (or not written): its DAG stays as it was
            states[workflow_id] = (State.KEPT, SOURCE_KEPT)
        elif workflow_id in problems and (workflow_id in rejected or workflow_id in kept):
            states[workflow_id] = (State.REJECTED, SOURCE_KEPT if workflow_id in kept else source)
        elif workflow_id in kept:
            states[workflow_id] = (State.KEPT, SOURCE_KEPT)
        else:
            states[workflow_id] = (State.SYNCED, source)
    for workflow_id in problems:  # rows without a DAG: rejected IDs (the first few), not created yet
        states.setdefault(workflow_id, (State.NOT_CREATED if workflow_id in unavailable else State.REJECTED, "-"))
    for file_name in report.pruned:
        try:
            states.setdefault(workflow_id_from_file(file_name), (State.PRUNED, "-"))
        except WorkflowIdError:
            continue
    return states


def record_sync(store: FleetStore, report: SyncReport, started: float) -> None:
    """Write the outcome of the sync that started at ``started`` (the one writer of status.json;
    the sync calls it once, holding the sync lock)."""
    previous = store.status()
    outcome = report.outcome.name.lower()
    last_success = started if outcome == "synced" else previous.get("last_success")
    before = previous.get("workflows") if isinstance(previous.get("workflows"), dict) else {}
    workflows = {}
    for workflow_id, (state, source) in sorted(workflow_states(report).items()):
        problem = report.workflow_problems.get(workflow_id)
        if outcome != "synced" and isinstance(before.get(workflow_id), dict):
            # Nothing was touched: a workflow's own problem from the last sync that saw it still holds.
            problem = before[workflow_id].get("problem")
        workflows[workflow_id] = {"state": str(state), "source": source, "problem": problem}
    row_problems = {*report.workflow_problems.values(), *report.elided}  # the status lists what the log elides
    fleet_problems = [p for p in report.problems if p not in row_problems]
    unlisted = report.hidden_rejected if outcome == "synced" else 0
    if unlisted:
        fleet_problems.append(f"{unlisted:,} more rejected IDs (past the status's {MAX_LISTED:,} rows; not listed)")
    store.save_status(
        {
            "version": STATUS_VERSION,
            "outcome": outcome,
            "summary": report.summary(),
            "attempted_at": started,
            "duration_seconds": round(time.time() - started, 3),
            "last_success": last_success,
            "source": _source_label(report.source) if outcome == "synced" else SOURCE_KEPT,
            "problems": fleet_problems,
            "workflows": workflows,
            "unlisted_rejected": unlisted,
        }
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _version(value: Any) -> str | None:
    return value if isinstance(value, str) and versions.VERSION_RE.fullmatch(value) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _manifest_ids(store: FleetStore) -> dict[str, str]:
    """workflow ID -> file name of every generated DAG that exists."""
    return {i: n for n, i in store.manifest().items() if (store.dags / n).exists()}


def from_json(data: dict[str, Any]) -> FleetStatus:
    """A FleetStatus back from its ``to_json`` (what a watch's /status.json serves); raises
    ValueError (or KeyError, TypeError) on anything else."""
    workflows = [
        WorkflowStatus(
            workflow_id=str(w["workflow_id"]),
            state=State(w["state"]),
            source=str(w["source"]),
            template=str(w.get("template", "-")),
            stored_at=_number(w.get("stored_at")),
            problem=w["problem"] if isinstance(w.get("problem"), str) else None,
            dag_file=w["dag_file"] if isinstance(w.get("dag_file"), str) else None,
            version=_version(w.get("version")),
        )
        for w in data["workflows"]
    ]
    return FleetStatus(
        outcome=str(data["outcome"]),
        summary=str(data["summary"]),
        attempted_at=_number(data.get("attempted_at")),
        duration_seconds=_number(data.get("duration_seconds")),
        last_success=_number(data.get("last_success")),
        source=str(data.get("source", "-")),
        problems=[str(p) for p in data.get("problems") or []],
        workflows=workflows,
        unlisted_rejected=_count(data.get("unlisted_rejected")),
        shards=_shard_rows(data.get("shards")),
        fleet_version=_version(data.get("fleet_version")),
    )


def _shard_rows(rows: Any) -> list[dict[str, Any]]:
    """The shard rows of a /status.json, each field checked (it comes over the network)."""
    if not isinstance(rows, list):
        return []
    return [
        {
            "bundle": str(r.get("bundle")),
            "version": r["version"] if isinstance(r.get("version"), str) else None,
            "kept": _count(r.get("kept")),
            "workflows": _count(r.get("workflows")),
        }
        for r in rows
        if isinstance(r, dict)
    ]


def _stored_status(
    store: FleetStore, workflow_id: str, entry: Any, dag_file: str | None, version: str | None = None
) -> WorkflowStatus:
    """One workflow from its entry in status.json (anything but a dict: nothing recorded), its
    record and its version."""
    entry = entry if isinstance(entry, dict) else {}
    try:
        state = State(entry.get("state", State.UNKNOWN))
    except ValueError:
        state = State.UNKNOWN
    problem = entry.get("problem")
    try:
        record = store.record(workflow_id)
    except (WorkflowIdError, OSError):  # a rejected raw ID has no record
        record = None
    return WorkflowStatus(
        workflow_id=workflow_id,
        state=state,
        source=str(entry.get("source", "-")),
        template=record.template if record is not None else "-",
        stored_at=record.stored_at if record is not None else None,
        problem=problem if isinstance(problem, str) else None,
        dag_file=dag_file,
        version=version,
    )


def _never(dags: Path) -> str:
    return (
        f"no sync recorded yet in {dags}: if your fleet is elsewhere, set DAGFLEET_DAGS_FOLDER "
        "(`make run`'s: .run/airflow/dags, or use `make status`)"
    )


def load(settings: Settings) -> FleetStatus:
    """The fleet as the last recorded sync left it, completed from the files on disk (the
    manifest, and each workflow's record for its template and stored time)."""
    store = settings.store
    data = store.status()
    data = data if data.get("version") == STATUS_VERSION else {}
    recorded = data.get("workflows") if isinstance(data.get("workflows"), dict) else {}
    files = _manifest_ids(store)
    own = versions.workflow_versions(store.dags, settings.shards)
    workflows = [
        _stored_status(store, workflow_id, recorded.get(workflow_id), files.get(workflow_id), own.get(workflow_id))
        for workflow_id in sorted(set(recorded) | set(files))
    ]
    problems = data.get("problems")
    return FleetStatus(
        outcome=str(data.get("outcome", "never")),
        summary=str(data.get("summary", _never(store.dags))),
        attempted_at=_number(data.get("attempted_at")),
        duration_seconds=_number(data.get("duration_seconds")),
        last_success=_number(data.get("last_success")),
        source=str(data.get("source", "-")),
        problems=[str(p) for p in problems] if isinstance(problems, list) else [],
        workflows=workflows,
        unlisted_rejected=_count(data.get("unlisted_rejected")),
        shards=versions.shard_rows(store.dags, settings.shards, files),
        fleet_version=versions.current(store.dags),
    )
