"""Part 4 of issue #8: seconds from a change in the config API to the change on disk.

``dagfleet watch`` runs as a subprocess against the counting reference server. At a random
moment within a sync interval the benchmark changes one workflow's config in the served file,
then polls (every 10 ms) until the workflow's stored record (dagfleet.fleet.store) holds the new config (the
DAG file itself is the same base DAG for every workflow: a config change only changes the stored
config, which the DAG reads at its next parse). It also adds a new workflow and waits for its
``<id>-mydag.py`` to appear. Expected mean: interval / 2 + one sync.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import apiserver, workload
from bench.common import BIN, base_env, log, summary
from dagfleet.fleet.store import FleetStore

POLL = 0.01


def _wait_for(check: Any, timeout: float) -> float | None:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if check():
            return time.perf_counter() - start
        time.sleep(POLL)
    return None


def _stored_description(dags: Path, workflow_id: str) -> str | None:
    try:
        record = FleetStore(dags).record(workflow_id)
        return record.config.get("description") if record is not None else None
    except (OSError, ValueError):
        return None


def run(work: Path, interval: float, changes: int, n_workflows: int = 100, seed: int = 8) -> dict[str, Any]:
    rng = random.Random(seed)
    case = work / "freshness"
    dags = case / "dags"
    workflows = workload.fleet(n_workflows)
    file = workload.write_workflows(case / "workflows.json", workflows)
    env = base_env(DAGFLEET_DAGS_FOLDER=str(dags), DAGFLEET_SYNC_INTERVAL=f"{interval:g}", DAGFLEET_LOG_LEVEL="WARNING")
    changed: list[float] = []
    added: list[float] = []
    with apiserver.running(file, "objects") as server:
        env["DAGFLEET_API_URL"] = server.url
        watch = subprocess.Popen([str(BIN / "dagfleet"), "watch"], env=env, stderr=subprocess.DEVNULL)
        try:
            first = _wait_for(lambda: _stored_description(dags, f"wf{n_workflows - 1:05d}") is not None, 120)
            if first is None:
                raise RuntimeError("dagfleet watch did not complete its first sync within 120 s")
            log(f"freshness: watch up (first sync after {first:.1f}s), interval {interval:g}s")
            server.reset()
            started = time.perf_counter()
            for k in range(changes):
                time.sleep(rng.uniform(0, interval))
                workflow_id = f"wf{k:05d}"
                text = f"changed #{k} at {time.time():.3f}"
                workflows[workflow_id] = {**workflows[workflow_id], "description": text}
                workload.write_workflows(file, workflows)
                latency = _wait_for(
                    lambda wid=workflow_id, t=text: _stored_description(dags, wid) == t, interval * 3 + 30
                )
                changed.append(latency if latency is not None else float("nan"))
                log(f"freshness: change {k + 1}/{changes}: {latency if latency is not None else 'timeout'}s")
            for k in range(max(1, changes // 3)):
                time.sleep(rng.uniform(0, interval))
                workflow_id = f"new{k:05d}"
                workflows[workflow_id] = workload.example(workload.POD_FREE)
                workload.write_workflows(file, workflows)
                path = dags / f"{workflow_id}-mydag.py"
                latency = _wait_for(path.exists, interval * 3 + 30)
                added.append(latency if latency is not None else float("nan"))
                log(f"freshness: new workflow {k + 1}: {latency if latency is not None else 'timeout'}s")
            elapsed = time.perf_counter() - started
            traffic = server.stats()
        finally:
            watch.send_signal(signal.SIGTERM)
            try:
                watch.wait(30)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
    return {
        "interval_s": interval,
        "workflows": n_workflows,
        "config_changed_s": summary([x for x in changed if x == x]),
        "workflow_added_s": summary([x for x in added if x == x]),
        "timeouts": sum(1 for x in changed + added if x != x),
        "expected_mean_s": interval / 2,
        "watch_requests": traffic["requests"],
        "watch_body_bytes": traffic["body_bytes"],
        "watch_elapsed_s": elapsed,
        "watch_statuses": traffic["statuses"],
    }
