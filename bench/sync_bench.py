"""Part 1 of issue #8: ``dagfleet sync`` scaling, requests and bytes, counted at the server.

For each size N and each list format of the reference config API:

* ``objects``: ``GET /airflowconfigs`` carries every config (one request);
* ``ids``: the list carries IDs only, then one ``GET /airflowconfigs/{id}`` per workflow;

measure a cold sync (empty dags folder), a re-sync with nothing changed (ETag / 304) and a
re-sync after one workflow changed, in-process (``FleetSync(settings, client).sync()``) and
as the real CLI (``dagfleet sync`` in a subprocess: interpreter start and imports included).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any
from unittest import mock

from bench import apiserver, workload
from bench.common import BIN, base_env, log
from dagfleet.api.client import ConfigClient
from dagfleet.fleet.settings import Settings
from dagfleet.sync import apply
from dagfleet.sync.apply import FleetSync


def _in_process(url: str, dags: Path) -> dict[str, Any]:
    settings = Settings(api_url=url, dags_folder=dags)
    client = ConfigClient.from_settings(settings)
    start = time.perf_counter()
    report = FleetSync(settings, client).sync()
    wall = time.perf_counter() - start
    client.close()
    return {
        "wall_s": wall,
        "outcome": int(report.outcome),
        "workflows": len(report.workflows),
        "written": len(report.written),
        "problems": len(report.problems),
        "client_requests": report.requests,
        "client_bytes": report.bytes,
    }


def _cli(url: str, dags: Path) -> dict[str, Any]:
    env = base_env(DAGFLEET_API_URL=url, DAGFLEET_DAGS_FOLDER=str(dags), DAGFLEET_LOG_LEVEL="WARNING")
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "dagfleet"), "sync"], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        log(f"dagfleet sync exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return {"wall_s": wall, "exit": done.returncode}


def _measure(server: apiserver.ApiServer, run: Any, dags: Path) -> dict[str, Any]:
    server.reset()
    result = run(server.url, dags)
    stats = server.stats()
    result.update(
        requests=stats["requests"],
        statuses=stats["statuses"],
        body_bytes=stats["body_bytes"],
    )
    return result


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's counts, with the median wall time of all runs (the machine is shared)."""
    result = dict(runs[0])
    result["wall_s"] = statistics.median(r["wall_s"] for r in runs)
    result["wall_s_all"] = [r["wall_s"] for r in runs]
    return result


def _without_fsync(url: str, dags: Path) -> dict[str, Any]:
    """What-if: the same cold sync without flushing to disk (the sync's one ``os.sync`` skipped;
    not how dagfleet runs)."""
    with mock.patch.object(apply.os, "sync", lambda: None):
        return _in_process(url, dags)


def _validation_time(workflows: dict[str, dict[str, Any]]) -> float:
    from dagfleet.fleet.config import validate_config

    start = time.perf_counter()
    for workflow_id, config in workflows.items():
        validate_config(workflow_id, config)
    return time.perf_counter() - start


def _one_changed(
    server: apiserver.ApiServer, file: Path, workflows: dict[str, dict[str, Any]], rounds: int, dags: Path
) -> dict[str, Any]:
    """Re-syncs after one more workflow changed, ``rounds`` times (median wall time)."""
    runs = []
    changed = dict(workflows)
    for k, workflow_id in enumerate(list(changed)[:rounds]):
        changed[workflow_id] = {**changed[workflow_id], "description": f"changed by the benchmark ({k})"}
        workload.write_workflows(file, changed)
        server.stats()  # the server re-reads the file now, not in the timed sync
        runs.append(_measure(server, _in_process, dags))
    return _median_of(runs)


def run(
    sizes: list[int],
    work: Path,
    cli_sizes: dict[str, tuple[int, ...]] | None = None,
    repeats: int = 3,
    repeat_max_n: int = 1000,
) -> dict[str, Any]:
    """Every size with ``objects`` and ``ids`` lists.

    ``cli_sizes``: per list format, the sizes also measured with the CLI (default: all). Re-syncs
    are repeated ``repeats`` times up to ``repeat_max_n`` workflows (median wall time).
    """
    results: list[dict[str, Any]] = []
    import dagfleet.fleet.config  # noqa: F401 - pydantic models: imported once, outside the timed in-process syncs

    for n in sizes:
        workflows = workload.fleet(n)
        rounds = repeats if n <= repeat_max_n else 1
        for mode in ("objects", "ids"):
            case = work / f"sync-{n}-{mode}"
            shutil.rmtree(case, ignore_errors=True)
            file = workload.write_workflows(case / "workflows.json", workflows)
            with apiserver.running(file, mode) as server:
                row: dict[str, Any] = {"n": n, "list_format": mode}
                log(f"sync N={n} list={mode}: cold (in-process)")
                row["cold"] = _measure(server, _in_process, case / "dags")
                log(f"sync N={n} list={mode}: unchanged re-sync x{rounds}")
                row["unchanged"] = _median_of([_measure(server, _in_process, case / "dags") for _ in range(rounds)])
                log(f"sync N={n} list={mode}: one workflow changed x{rounds}")
                row["one_changed"] = _one_changed(server, file, workflows, rounds, case / "dags")
                if cli_sizes is None or n in cli_sizes.get(mode, ()):
                    log(f"sync N={n} list={mode}: cold + unchanged (CLI)")
                    row["cli_cold"] = _measure(server, _cli, case / "dags-cli")
                    row["cli_unchanged"] = _measure(server, _cli, case / "dags-cli")
                if mode == "objects" and n == max(sizes):
                    log(f"sync N={n} list={mode}: what-if cold sync without fsync; validation alone")
                    row["cold_without_fsync"] = _measure(server, _without_fsync, case / "dags-nofsync")
                    row["validate_all_s"] = _validation_time(workflows)
            results.append(row)
            for folder in ("dags", "dags-cli", "dags-nofsync"):
                shutil.rmtree(case / folder, ignore_errors=True)
    return {"rows": results}
