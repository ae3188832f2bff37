"""Versions of the fleet: immutable, content-addressed snapshots of the generated DAGs (issue #30).

After a sync that changed anything, ``publish`` builds ``<dags>/.dagfleet/versions/<version>/``
from hard links to the current generated DAG files and their records (same layout as the dags
folder, so a DAG parsed from a snapshot reads the record next to it) and points
``versions/current`` at it atomically. ``<version>`` is a digest over the (file name, content
digest) pairs of the generated DAG files; each file's trailer already names its record's digest,
so the DAG files alone identify the fleet's configs and templates.

Airflow reaches the snapshots through ``dagfleet.service.bundle.FleetBundle`` (a versioned DAG bundle): a
run pins the version current when it was created, and each of its tasks parses that snapshot.

A version stays on disk until it has not been current for ``DAGFLEET_VERSION_KEEP_HOURS``; the
current one is never pruned. A workflow removed from the config API leaves the dags folder at
once, but new versions keep its DAG, unscheduled, for ``DAGFLEET_REMOVED_GRACE`` seconds: Airflow
never schedules the tasks of a stale DAG's runs, so this is what lets an active run finish.
``versions/.airflowignore`` hides every snapshot from an Airflow that lists the live dags folder
(the plain-folder mode), so no DAG is ever seen twice.

Nothing here imports Airflow: sync (the watch sidecar) and ``dagfleet task`` use it too.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dagfleet.fleet import shards
from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.fsutil import atomic_write, atomic_write_json, read_json
from dagfleet.fleet.store import STATE_DIR, SUFFIX, FleetStore, Record, workflow_id_from_file

VERSIONS_DIR = "versions"
POINTER = "current"
HISTORY = "history.json"
REMOVED = "removed.json"
# The history row of a tree no bundle serves any more (not a version: never a snapshot's name).
RETIRED = "retired"
WORKFLOWS = "workflows.json"  # each workflow's version (workflow_versions)
REMOVED_DIGEST = "removed"  # a removed workflow kept unscheduled: its version is the one that unscheduled it
REMOVED_MARK = b"# dagfleet: removed from the config API; kept unscheduled while its active runs finish\n"
IGNORE_FILE = ".airflowignore"
VERSION_RE = re.compile(r"[0-9a-f]{20}")
# How long a version stays after it stopped being current (DAGFLEET_VERSION_KEEP_HOURS' default).
DEFAULT_KEEP_HOURS = 48.0
# How long a removed workflow's DAG stays in new versions, unscheduled (DAGFLEET_REMOVED_GRACE's default).
DEFAULT_REMOVED_GRACE = 3600.0


class VersionGoneError(DagfleetError):
    """A run asked for a version that is no longer kept."""


def versions_dir(dags: Path, bundle: str = shards.BUNDLE_NAME) -> Path:
    """The version tree of ``bundle``: ``<dags>/.dagfleet/versions`` for the unsharded fleet,
    ``<dags>/.dagfleet/versions/dagfleet-<k>`` for shard k (each its own pointer, history, snapshots)."""
    root = Path(dags) / STATE_DIR / VERSIONS_DIR
    shard = shards.shard_from_bundle(bundle)
    return root if shard is None else root / shards.bundle_name(shard)


def version_path(dags: Path, version: str, bundle: str = shards.BUNDLE_NAME) -> Path:
    """Where the snapshot of ``version`` lives (it may be gone)."""
    if not VERSION_RE.fullmatch(version):
        raise VersionGoneError(f"{version!r} is not a version of the dagfleet bundle (expected 20 hex digits)")
    return versions_dir(dags, bundle) / version


def is_snapshot(folder: Path) -> bool:
    """Whether ``folder`` is a version snapshot (``<dags>/.dagfleet/versions/[dagfleet-<k>/]<version>``)."""
    folder = Path(folder)
    tree = folder.parent
    if shards.SHARD_BUNDLE_RE.fullmatch(tree.name):
        tree = tree.parent
    return VERSION_RE.fullmatch(folder.name) is not None and tree.name == VERSIONS_DIR and tree.parent.name == STATE_DIR


def current(dags: Path, bundle: str = shards.BUNDLE_NAME) -> str | None:
    """The current version, or None before the first publish (or when the pointer is unreadable)."""
    try:
        text = (versions_dir(dags, bundle) / POINTER).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if VERSION_RE.fullmatch(text) else None


def file_digests(store: FleetStore, manifest: dict[str, str]) -> dict[str, str]:
    """File name -> content digest of every generated DAG file that exists (reads each file once)."""
    digests = {}
    folder = os.fspath(store.dags)
    for name in sorted(manifest):
        try:
            with open(f"{folder}/{name}", "rb") as handle:  # plain strings: this runs per file
                data = handle.read()
        except FileNotFoundError:
            continue
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def fleet_digest(
    store: FleetStore, manifest: dict[str, str], removed: Iterable[str] = (), digests: dict[str, str] | None = None
) -> str:
    """The version of the generated DAG files as they are now (names and contents), plus the
    removed workflows still kept for their active runs."""
    digests = file_digests(store, manifest) if digests is None else digests
    outer = hashlib.sha256()
    for name in sorted(digests):
        outer.update(f"{name}\0{digests[name]}\n".encode())
    for workflow_id in sorted(removed):
        outer.update(f"removed\0{workflow_id}\n".encode())
    return outer.hexdigest()[:20]


def publish(
    store: FleetStore,
    manifest: dict[str, str],
    keep_hours: float = DEFAULT_KEEP_HOURS,
    removed_grace: float = DEFAULT_REMOVED_GRACE,
    bundle: str = shards.BUNDLE_NAME,
    live: set[str] | None = None,
) -> str:
    """Snapshot the generated DAGs and records (hard links) of ``manifest`` into ``bundle``'s tree,
    make it current, prune old versions. ``live``: every workflow of the fleet (default: those of
    ``manifest``), so a workflow that moved to another shard is not kept here as removed.
    Call it with the store locked (a sync). Returns the current version."""
    top = versions_dir(store.dags)
    root = versions_dir(store.dags, bundle)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(top / IGNORE_FILE, b"*\n", tmp_dir=store.tmp)
    live = set(manifest.values()) if live is None else live
    removed = _still_removed(store.dags, live, removed_grace, time.time(), bundle)
    digests = file_digests(store, manifest)
    version = fleet_digest(store, manifest, removed, digests)
    target = root / version
    if not target.is_dir():
        _build(store, manifest, target, removed, bundle)
    _record_workflow_versions(root, version, {manifest[n]: d for n, d in digests.items()}, removed, store.tmp)
    if current(store.dags, bundle) != version:
        atomic_write(root / POINTER, f"{version}\n".encode(), tmp_dir=store.tmp)
        _remember(root, version)
    atomic_write_json(root / REMOVED, {"removed": removed}, store.tmp)
    prune(store.dags, keep_hours, bundle=bundle)
    return version


def publish_all(
    store: FleetStore,
    manifest: dict[str, str],
    keep_hours: float = DEFAULT_KEEP_HOURS,
    removed_grace: float = DEFAULT_REMOVED_GRACE,
    count: int = 1,
) -> dict[str, str]:
    """``publish`` each of the ``count`` shards' part of ``manifest`` into its own tree (a shard
    whose files did not change keeps its version); retire the trees of bundles no longer in use
    (after a change of ``DAGFLEET_SHARDS``). Returns bundle -> current version."""
    live = set(manifest.values())
    parts = shards.split(manifest, count)
    published = {b: publish(store, part, keep_hours, removed_grace, b, live) for b, part in parts.items()}
    for bundle in trees(store.dags) - set(parts):
        retire(store, bundle, keep_hours)
    return published


def trees(dags: Path) -> set[str]:
    """The bundles with a current version on disk."""
    return {b for b in _all_trees(dags) if current(dags, b) is not None}


def retire(store: FleetStore, bundle: str, keep_hours: float) -> None:
    """A tree no bundle serves any more: its current version stops being current now (kept
    ``keep_hours`` for the runs pinned to it, like any other), then pruned."""
    root = versions_dir(store.dags, bundle)
    (root / POINTER).unlink(missing_ok=True)
    _remember(root, RETIRED)
    prune(store.dags, keep_hours, bundle=bundle)


def _build(store: FleetStore, manifest: dict[str, str], target: Path, removed: dict[str, float], bundle: str) -> None:
    """The snapshot in a temp folder, renamed into place complete (never seen half-built)."""
    staging = versions_dir(store.dags, bundle) / f".build-{os.getpid()}-{time.monotonic_ns()}"
    records = staging / STATE_DIR / "records"
    records.mkdir(parents=True)
    live, live_records, to, to_records = (os.fspath(p) for p in (store.dags, store.records, staging, records))
    try:
        for name, workflow_id in manifest.items():
            if name != f"{workflow_id}{SUFFIX}" or "/" in name:  # only what dagfleet would name so
                continue
            _link(f"{live}/{name}", f"{to}/{name}")
            _link(f"{live_records}/{workflow_id}.json", f"{to_records}/{workflow_id}.json")
        _keep_removed(store, staging, removed, bundle)
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not target.is_dir():
            raise


# -- each workflow's version: the fleet version that first held its current DAG file ---------------
def _record_workflow_versions(
    root: Path, version: str, digests: dict[str, str], removed: dict[str, float], tmp: Path
) -> None:
    """workflow ID -> {version, digest} for every workflow of ``version``: a workflow whose DAG file
    is unchanged keeps the version it had, a changed (or newly removed) one gets ``version``."""
    before = _workflow_rows(root)
    rows: dict[str, dict[str, str]] = {}
    for workflow_id, digest in [*digests.items(), *((w, REMOVED_DIGEST) for w in removed)]:
        old = before.get(workflow_id, {})
        kept = old.get("digest") == digest and VERSION_RE.fullmatch(str(old.get("version")))
        rows[workflow_id] = {"version": str(old["version"]) if kept else version, "digest": digest}
    atomic_write_json(root / WORKFLOWS, {"workflows": rows}, tmp)


def _workflow_rows(root: Path) -> dict[str, dict[str, Any]]:
    data = read_json(root / WORKFLOWS, {})
    rows = data.get("workflows", {}) if isinstance(data, dict) else {}
    return {str(k): v for k, v in rows.items() if isinstance(v, dict)} if isinstance(rows, dict) else {}


def workflow_versions(dags: Path, count: int = 1) -> dict[str, str]:
    """workflow ID -> the version (of its shard's bundle, with ``count`` shards) that first held its
    current DAG file: the version a run of it created now pins (Airflow re-parses only a changed
    file), and what ``dagfleet show --version`` takes. Workflows of the current versions only;
    empty before the first publish."""
    rows: dict[str, dict[str, Any]] = {}
    for bundle in shards.bundle_names(count):
        rows.update(_workflow_rows(versions_dir(dags, bundle)))
    return {k: str(v["version"]) for k, v in rows.items() if VERSION_RE.fullmatch(str(v.get("version")))}


# -- removed workflows: kept, unscheduled, while their active runs finish -------------------------
def _removed_since(dags: Path, bundle: str) -> dict[str, float]:
    data = read_json(versions_dir(dags, bundle) / REMOVED, {})
    rows = data.get("removed", {}) if isinstance(data, dict) else {}
    return {str(k): float(v) for k, v in rows.items() if isinstance(v, int | float)} if isinstance(rows, dict) else {}


def _still_removed(dags: Path, live: set[str], grace: float, now: float, bundle: str) -> dict[str, float]:
    """workflow ID -> when it was removed, for the workflows of the current version that are no
    longer live and were removed less than ``grace`` seconds ago."""
    previous = current(dags, bundle)
    if previous is None:
        return {}
    known = _removed_since(dags, bundle)
    removed = {}
    for path in version_path(dags, previous, bundle).glob(f"*{SUFFIX}"):
        try:
            workflow_id = workflow_id_from_file(path.name)
        except DagfleetError:
            continue
        since = known.get(workflow_id, now)
        if workflow_id not in live and now - since < grace:
            removed[workflow_id] = since
    return removed


def removal_due(dags: Path, grace: float, now: float | None = None, bundle: str = shards.BUNDLE_NAME) -> bool:
    """Whether a removed workflow's grace is over (the next sync publishes a version without it)."""
    now = time.time() if now is None else now
    return any(now - since >= grace for since in _removed_since(dags, bundle).values())


def _keep_removed(store: FleetStore, staging: Path, removed: dict[str, float], bundle: str) -> None:
    """A removed workflow's DAG file and record from the current version, its schedule turned off:
    Airflow keeps the DAG (not stale), so its active runs finish; nothing new is scheduled."""
    previous = current(store.dags, bundle)
    if not removed or previous is None:
        return
    source = FleetStore(version_path(store.dags, previous, bundle))
    target = FleetStore(staging)
    for workflow_id in removed:
        record = source.record(workflow_id)
        if record is None:
            continue
        # new bytes (a new mtime): Airflow re-parses only a file whose mtime changed
        data = source.dag_path(workflow_id).read_bytes()
        if not data.endswith(REMOVED_MARK):
            data += REMOVED_MARK
        atomic_write(target.dag_path(workflow_id), data, tmp_dir=store.tmp)
        unscheduled = Record(workflow_id, {**record.config, "schedule": None}, record.template, record.etag,
                             record.stored_at)  # fmt: skip
        atomic_write_json(target.record_path(workflow_id), unscheduled.to_json(), store.tmp)


def _link(source: str | Path, destination: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.link(source, destination)


def _remember(root: Path, version: str) -> None:
    """Append (version, when it became current) to the history that pruning reads."""
    history = _history(root)
    history.append({"version": version, "since": time.time()})
    atomic_write_json(root / HISTORY, {"history": history[-10000:]}, root.parent / "tmp")


def _history(root: Path) -> list[dict[str, Any]]:
    data = read_json(root / HISTORY, {})
    rows = data.get("history", []) if isinstance(data, dict) else []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("version"), str)
            and isinstance(r.get("since"), int | float)]  # fmt: skip


def retired_at(dags: Path, bundle: str = shards.BUNDLE_NAME) -> dict[str, float]:
    """version -> when it last stopped being current (the current version is not in it)."""
    rows = _history(versions_dir(dags, bundle))
    retired: dict[str, float] = {}
    for row, after in itertools.pairwise(rows):
        retired[row["version"]] = after["since"]
    now = current(dags, bundle)
    if now:
        retired.pop(now, None)
    return retired


def prune(dags: Path, keep_hours: float, now: float | None = None, bundle: str = shards.BUNDLE_NAME) -> list[str]:
    """Remove the snapshots that stopped being current more than ``keep_hours`` ago, any snapshot
    the history does not know and any half-built one (a killed sync's); never the current one.
    Call it with the store locked."""
    root = versions_dir(dags, bundle)
    now = time.time() if now is None else now
    keep = current(dags, bundle)
    retired = retired_at(dags, bundle)
    removed = []
    for staging in root.glob(".build-*") if root.is_dir() else []:  # a killed sync's (we hold the lock)
        shutil.rmtree(staging, ignore_errors=True)
    for entry in _snapshots(root):
        if entry.name == keep:
            continue
        if entry.name in retired and now - retired[entry.name] <= keep_hours * 3600:
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def _snapshots(root: Path) -> Iterable[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.iterdir() if p.is_dir() and VERSION_RE.fullmatch(p.name)]


def kept(dags: Path, bundle: str = shards.BUNDLE_NAME) -> list[str]:
    """The versions on disk, current first."""
    names = sorted(p.name for p in _snapshots(versions_dir(dags, bundle)))
    now = current(dags, bundle)
    return ([now] if now in names else []) + [n for n in names if n != now]


def record_at(
    dags: Path, workflow_id: str, version: str | None = None, bundle: str = shards.BUNDLE_NAME
) -> Record | None:
    """The record ``workflow_id`` had in ``version`` of ``bundle`` (its current version when None)."""
    version = version or current(dags, bundle)
    if version is None:
        return None
    folder = version_path(dags, version, bundle)
    if not folder.is_dir():
        raise VersionGoneError(gone_message(version))
    return FleetStore(folder).record(workflow_id)


def gone_message(version: str, keep_hours: float | None = None) -> str:
    kept_for = f" (kept {keep_hours:g} h after it stops being current)" if keep_hours is not None else ""
    return (
        f"version {version} of the dagfleet bundle is no longer kept{kept_for}: "
        "clear the run to re-run it on the current version"
    )


def materialize(dags: Path, version: str, record: Record, dag: bytes, bundle: str = shards.BUNDLE_NAME) -> Path:
    """A task pod's snapshot of one workflow at ``version`` of ``bundle`` (from its pod override):
    the DAG file and its record, so the bundle finds ``version`` without any shared volume."""
    target = version_path(dags, version, bundle)
    store = FleetStore(target)
    store.write_record(record)
    store.write_dag(record.workflow_id, dag)
    return target


def show(dags: Path, workflow_id: str, version: str | None = None, count: int = 1) -> dict[str, Any]:
    """What ``dagfleet show`` prints: the workflow's config, template and digests at ``version``
    (its bundle's current version when None; a version of any bundle's tree, so one from before a
    change of ``DAGFLEET_SHARDS`` too); raises when the version or the workflow is not there."""
    bundle = shards.bundle_of(workflow_id, count)
    if version is not None and not version_path(dags, version, bundle).is_dir():
        bundle = next((b for b in sorted(_all_trees(dags)) if version_path(dags, version, b).is_dir()), bundle)
    version = version or current(dags, bundle)
    if version is None:
        raise DagfleetError("no version of the fleet is published yet: run dagfleet sync first")
    record = record_at(dags, workflow_id, version, bundle)
    if record is None:
        raise DagfleetError(f"workflow {workflow_id!r} is not in version {version} of the fleet (see dagfleet status)")
    dag_file = version_path(dags, version, bundle) / FleetStore.file_name(workflow_id)
    return {
        "workflow_id": workflow_id,
        "bundle": bundle,
        "version": version,
        "current": version == current(dags, bundle),
        "template": record.template,
        "dag_digest": hashlib.sha256(dag_file.read_bytes()).hexdigest()[:16] if dag_file.exists() else None,
        "stored_at": record.stored_at,
        "config": record.config,
    }


def _all_trees(dags: Path) -> set[str]:
    root = versions_dir(dags)
    names = {p.name for p in root.iterdir() if shards.SHARD_BUNDLE_RE.fullmatch(p.name)} if root.is_dir() else set()
    return names | {shards.BUNDLE_NAME}


def shard_rows(dags: Path, count: int, workflow_ids: Iterable[str]) -> list[dict[str, Any]]:
    """One row per bundle of the fleet: its name, current version, versions kept, workflows."""
    served = shards.counts(workflow_ids, count)
    return [
        {"bundle": b, "version": current(dags, b), "kept": len(kept(dags, b)), "workflows": served[b]}
        for b in shards.bundle_names(count)
    ]


def status_line(dags: Path, count: int = 1, workflow_ids: Iterable[str] = ()) -> str:
    """One line for ``dagfleet status``: the current version and how many are kept (per shard)."""
    if count > 1:
        rows = shard_rows(dags, count, workflow_ids)
        parts = [f"{r['bundle']} {r['version'] or 'none yet'} ({r['workflows']} workflows, {r['kept']} kept)"
                 for r in rows]  # fmt: skip
        return f"fleet versions, {count} shards: {'; '.join(parts)} (dagfleet show <workflow> [--version V])"
    now = current(dags)
    if now is None:
        return "fleet version: none published yet (the dagfleet bundle has nothing to serve)"
    return f"fleet version: {now} ({len(kept(dags))} kept on disk; dagfleet show <workflow> [--version V])"
