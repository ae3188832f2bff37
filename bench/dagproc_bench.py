"""Issue #15: parse work and freshness inside Airflow, Airflow's defaults vs dagfleet's.

For each fleet size and each setting (``airflow``: Airflow's own dag-processor defaults;
``dagfleet``: dagfleet.service.dagprocessor.DAG_PROCESSOR_DEFAULTS) one after the other, on the same machine
and in the same run:

1. ``dagfleet watch`` (sync interval ``sync_interval``) syncs ``n`` workflows from the counting
   reference server into a fresh DAG folder; a fresh SQLite metadata DB (copied from one migrated
   template) and one real ``airflow dag-processor`` are started.
2. **cold**: seconds from starting the dag-processor until every workflow has a serialized DAG.
3. **steady**: CPU of the dag-processor's process tree (itself, its parser children, reaped or
   alive) over ``steady_window`` seconds with nothing changing, in cores (CPU seconds / wall
   seconds). The watch sidecar's CPU is reported separately.
4. **events**, at random moments about ``sync_interval / 2`` apart, all measured from the moment
   the config API's file changed, by polling Airflow's database (every ``POLL`` s):
   - config changed: the workflow's ``description`` changed; done when ``dag.description`` in the
     DB holds the new text (it is written with the new serialized DAG);
   - new workflow: *visible* when its ``dag`` row exists, *runnable* when it also has a
     serialized DAG and is not stale (what the scheduler needs to create a run);
   - removed workflow: done when its ``dag`` row is ``is_stale``.
   Every event has a deadline (``event_timeout`` after it); a missed one counts as a timeout and
   is reported as such, never silently dropped.
5. One of the new workflows is triggered with ``airflow dags trigger`` to show it is runnable.

Every loop is bounded in time and count. Nothing here is a test: it measures.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import apiserver, workload
from bench.common import BIN, airflow_env, base_env, log
from dagfleet.fleet import store
from dagfleet.fleet.shards import bundle_names
from dagfleet.service.dagprocessor import (
    DAG_PROCESSOR_DEFAULTS,
    PLAIN_FOLDER_CONFIG_LIST,
    bundle_config_list,
    env_name,
)

POLL = 0.5
EVENT_KEYS = (("change", "config_change_s"), ("new", "new_runnable_s"), ("remove", "removed_stale_s"))
SETTINGS: dict[str, dict[str, str]] = {
    "airflow": {},
    "dagfleet": dict(DAG_PROCESSOR_DEFAULTS),
    # what-if (--dagproc-settings): dagfleet's settings with Airflow's 300 s folder listing
    "dagfleet-list300": {**DAG_PROCESSOR_DEFAULTS, "refresh_interval": "300"},
    # what-if: Airflow's defaults with dagfleet's 10 s listing
    "airflow-list10": {"refresh_interval": DAG_PROCESSOR_DEFAULTS["refresh_interval"]},
    # issue #30: dagfleet's settings with the plain dags folder instead of the versioned dagfleet bundle
    "dagfleet-plain": {**DAG_PROCESSOR_DEFAULTS, "dag_bundle_config_list": PLAIN_FOLDER_CONFIG_LIST},
}
# With the dagfleet bundle a removed workflow stays, unscheduled, for DAGFLEET_REMOVED_GRACE (1 h)
# so its active runs finish: "removed -> stale" is measured with a 1 s grace (stale one sync later).
REMOVED_GRACE = "1"


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    return {"n": len(ordered), "p50": pick(0.5), "p95": pick(0.95), "max": ordered[-1], "min": ordered[0]}


def _migrate_template(work: Path) -> Path:
    home = work / "dagproc-template"
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        log("dagproc: airflow db migrate (template metadata DB, copied per setting)")
        subprocess.run(
            [str(BIN / "airflow"), "db", "migrate"],
            env=base_env(AIRFLOW_HOME=str(home)),
            check=True,
            capture_output=True,
            timeout=600,
        )
    return home


class Db:
    """Read-only look at the dag-processor's SQLite metadata DB."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, args).fetchall()
        finally:
            connection.close()

    def serialized_count(self) -> int:
        return int(self._query("SELECT count(DISTINCT dag_id) FROM serialized_dag")[0][0])

    def dags(self) -> dict[str, tuple[str | None, bool, bool]]:
        """dag_id -> (description, is_stale, has a serialized DAG).

        Two plain reads joined here: a correlated ``EXISTS`` over ``serialized_dag`` is a full scan
        per DAG in SQLite (no usable index), i.e. O(N²): ~0.07 s a poll at 1,000 DAGs, seconds at
        10,000, holding a read lock the dag-processor's writes wait for."""
        serialized = {r[0] for r in self._query("SELECT DISTINCT dag_id FROM serialized_dag")}
        rows = self._query("SELECT dag_id, description, is_stale FROM dag")
        return {r[0]: (r[1], bool(r[2]), r[0] in serialized) for r in rows}


@dataclass
class Tree:
    """CPU seconds of a process and all its descendants, including reaped children."""

    process: psutil.Process

    def cpu(self) -> float:
        try:
            times = self.process.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in self.process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    c = child.cpu_times()
                    total += c.user + c.system
        except psutil.Error:
            return float("nan")
        return total


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGINT the process group, then SIGTERM, then SIGKILL (each bounded)."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def _started(argv: list[str], env: dict[str, str], log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log_file.open("wb") as handle:
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            _stop(process)


def _wait(check: Any, timeout: float, what: str, *processes: subprocess.Popen[bytes]) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: the process exited with {process.returncode}")
        time.sleep(POLL)
    return None


def shard_config(settings: dict[str, str], shards: int) -> dict[str, str]:
    """``settings`` for one of ``shards`` dag-processors (issue #31): the shards' bundle list, and
    the parsing processes split between them (same total: 2 shards x 1 = 1 shard x 2)."""
    if shards == 1:
        return dict(settings)
    total = int(settings.get("parsing_processes", "2"))
    return {**settings, "dag_bundle_config_list": bundle_config_list(shards),
            "parsing_processes": str(max(1, total // shards))}  # fmt: skip


@contextlib.contextmanager
def _processors(shards: int, env: dict[str, str], case: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ``airflow dag-processor``, or one per shard (``--bundle-name dagfleet-<k>``)."""
    argv = [str(BIN / "airflow"), "dag-processor"]
    with contextlib.ExitStack() as stack:
        if shards == 1:
            yield [stack.enter_context(_started(argv, env, case / "dag-processor.log"))]
            return
        names = bundle_names(shards)
        yield [stack.enter_context(_started([*argv, "--bundle-name", b], env, case / f"dag-processor-{b}.log"))
               for b in names]  # fmt: skip


@dataclass
class Event:
    kind: str  # "change" | "new" | "remove"
    workflow_id: str
    at: float
    text: str = ""
    visible: float | None = None
    done: float | None = None


def _run_events(
    db: Db,
    file: Path,
    workflows: dict[str, dict[str, Any]],
    plan: list[tuple[str, str]],
    sync_interval: float,
    event_timeout: float,
    rng: random.Random,
    processors: list[subprocess.Popen[bytes]],
) -> list[Event]:
    """Apply ``plan`` to the served file at random moments; poll the DB until every event is
    done or past its deadline."""
    events: list[Event] = []
    pending: list[Event] = []
    next_at = time.perf_counter() + rng.uniform(0, sync_interval)
    queue = list(plan)
    hard_stop = time.perf_counter() + len(plan) * sync_interval + event_timeout + 60
    while (queue or pending) and time.perf_counter() < hard_stop:
        now = time.perf_counter()
        if queue and now >= next_at:
            kind, workflow_id = queue.pop(0)
            event = Event(kind, workflow_id, 0.0)
            if kind == "change":
                event.text = f"changed at {time.time():.3f}"
                workflows[workflow_id] = {**workflows[workflow_id], "description": event.text}
            elif kind == "new":
                workflows[workflow_id] = workload.example(workload.POD_FREE)
            else:
                workflows.pop(workflow_id)
            workload.write_workflows(file, workflows)
            event.at = time.perf_counter()
            events.append(event)
            pending.append(event)
            next_at = event.at + rng.uniform(0, sync_interval)
        for processor in processors:
            if processor.poll() is not None:
                raise RuntimeError(f"dag-processor exited with {processor.returncode}")
        if pending:
            dags = db.dags()
            now = time.perf_counter()
            for event in list(pending):
                row = dags.get(event.workflow_id)
                if event.kind == "change" and row is not None and row[0] == event.text:
                    event.done = now - event.at
                elif event.kind == "new" and row is not None:
                    if event.visible is None:
                        event.visible = now - event.at
                    if row[2] and not row[1]:
                        event.done = now - event.at
                elif event.kind == "remove" and row is not None and row[1]:
                    event.done = now - event.at
                if event.done is not None or now - event.at > event_timeout:
                    pending.remove(event)
        time.sleep(POLL)
    return events


def _trigger(env: dict[str, str], dag_id: str, log_file: Path) -> bool:
    """``airflow dags trigger``: the new DAG is runnable (a queued run in the DB)."""
    with log_file.open("ab") as handle:
        for argv in (["dags", "unpause", dag_id], ["dags", "trigger", dag_id]):
            result = subprocess.run(
                [str(BIN / "airflow"), *argv],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=300,
                check=False,
            )
            if result.returncode != 0:
                return False
    return True


def run_one(
    work: Path,
    template: Path,
    setting: str,
    n: int,
    sync_interval: float,
    steady_window: float,
    events: int,
    event_timeout: float,
    cold_timeout: float,
    seed: int = 15,
    cold_only: bool = False,
    shards: int = 1,
) -> dict[str, Any]:
    rng = random.Random(seed)
    case = work / f"dagproc-{setting}-{n}-s{shards}"
    shutil.rmtree(case, ignore_errors=True)
    dags = case / "dags"
    home = case / "airflow-home"
    home.mkdir(parents=True)
    shutil.copyfile(template / "airflow.db", home / "airflow.db")
    workflows = workload.fleet(n)
    file = workload.write_workflows(case / "workflows.json", workflows)
    config = shard_config(SETTINGS[setting], shards)
    processor_env = airflow_env(home, dags, **{env_name(k): v for k, v in config.items()})
    result: dict[str, Any] = {"setting": setting, "workflows": n, "config": config, "shards": shards}
    db = Db(home / "airflow.db")
    with apiserver.running(file, "objects") as server:
        watch_env = base_env(
            DAGFLEET_DAGS_FOLDER=str(dags),
            DAGFLEET_SYNC_INTERVAL=f"{sync_interval:g}",
            DAGFLEET_LOG_LEVEL="WARNING",
            DAGFLEET_API_URL=server.url,
            DAGFLEET_SHARDS=str(shards),
            DAGFLEET_REMOVED_GRACE=REMOVED_GRACE,
        )
        with _started([str(BIN / "dagfleet"), "watch"], watch_env, case / "watch.log") as watch:
            last = dags / store.dag_file_name(f"wf{n - 1:05d}")
            if _wait(last.exists, 600, "dagfleet watch", watch) is None:
                raise RuntimeError("dagfleet watch did not complete its first sync within 600 s")
            with _processors(shards, processor_env, case) as procs:
                started = time.perf_counter()
                trees = [Tree(psutil.Process(p.pid)) for p in procs]
                cold = _wait(
                    lambda: db.path.exists() and db.serialized_count() >= n, cold_timeout, "dag-processor", *procs
                )
                result["cold_cpu_s"] = sum(t.cpu() for t in trees)  # fresh processes: all of it is the pass's
                result["cold_core_s_per_file"] = result["cold_cpu_s"] / n
                result["cold_full_pass_s"] = cold if cold is not None else None
                result["cold_timeout_s"] = cold_timeout
                log(f"dagproc {setting} n={n}: cold full pass {cold if cold is not None else 'timeout'} s")
                if cold_only:
                    return result
                time.sleep(min(10.0, steady_window / 3))
                watch_tree = Tree(psutil.Process(watch.pid))
                cpu0, wcpu0, t0 = sum(t.cpu() for t in trees), watch_tree.cpu(), time.perf_counter()
                time.sleep(steady_window)
                cpu1, wcpu1, t1 = sum(t.cpu() for t in trees), watch_tree.cpu(), time.perf_counter()
                result["steady_cores"] = (cpu1 - cpu0) / (t1 - t0)
                result["watch_cores"] = (wcpu1 - wcpu0) / (t1 - t0)
                result["steady_window_s"] = t1 - t0
                result["loadavg_steady"] = os.getloadavg()[0]  # the machine is shared: how busy it was
                log(f"dagproc {setting} n={n}: steady {result['steady_cores']:.3f} cores")
                n_new = max(1, events // 3)
                plan: list[tuple[str, str]] = []
                changed = rng.sample(range(n), events + n_new)
                for k in range(max(events, n_new)):
                    if k < events:
                        plan.append(("change", f"wf{changed[k]:05d}"))
                    if k < n_new:
                        plan.append(("new", f"new{k:05d}"))
                        plan.append(("remove", f"wf{changed[events + k]:05d}"))
                done = _run_events(db, file, workflows, plan, sync_interval, event_timeout, rng, procs)
                result["elapsed_s"] = time.perf_counter() - started
                for kind, key in EVENT_KEYS:
                    mine = [e for e in done if e.kind == kind]
                    result[key] = percentiles([e.done for e in mine if e.done is not None])
                    result[key]["timeouts"] = sum(1 for e in mine if e.done is None)
                    result[key]["events"] = len(mine)
                new = [e for e in done if e.kind == "new"]
                result["new_visible_s"] = percentiles([e.visible for e in new if e.visible is not None])
                result["event_timeout_s"] = event_timeout
                log(
                    f"dagproc {setting} n={n}: change {result['config_change_s']}, new {result['new_runnable_s']}, "
                    f"removed {result['removed_stale_s']}"
                )
                runnable = next((e for e in new if e.done is not None), None)
                result["trigger_ok"] = (
                    _trigger(processor_env, runnable.workflow_id, case / "trigger.log") if runnable else None
                )
    return result


def run(
    work: Path,
    sizes: list[int],
    sync_interval: float,
    steady_window: float,
    events: int,
    event_timeout: float,
    settings: tuple[str, ...] = ("airflow", "dagfleet"),
    cold_only: bool = False,
    shards: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown dag-processor settings {unknown}: choose from {sorted(SETTINGS)}")
    template = _migrate_template(work)
    runs: list[dict[str, Any]] = []
    for n in sizes:
        for setting in settings:
            for count in shards:  # issue #31: 1 shard vs N shards, same total parsing processes
                runs.append(
                    run_one(
                        work,
                        template,
                        setting,
                        n,
                        sync_interval,
                        steady_window,
                        events,
                        event_timeout,
                        cold_timeout=max(600.0, n * 0.6),
                        cold_only=cold_only,
                        shards=count,
                    )
                )
                shutil.rmtree(work / f"dagproc-{setting}-{n}-s{count}", ignore_errors=True)
    return {"sync_interval_s": sync_interval, "runs": runs}
