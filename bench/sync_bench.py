"""Part 1 of issue #8: ``dagfleet sync`` scaling, requests and bytes, counted at the server.

For each size N and each list format of the reference config API:

* ``objects``: ``GET /airflowconfigs`` carries every config (one request);
* ``ids``: the list carries IDs only, then one ``GET /airflowconfigs/{id}`` per workflow;

measure a cold sync (empty dags folder), a re-sync with nothing changed (ETag / 304) and a
re-sync after one workflow changed, in-process (``Materializer(settings, client).sync()``) and
as the real CLI (``dagfleet sync`` in a subprocess: interpreter start and imports included).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import apiserver, workload
from bench.common import BIN, base_env, log
from dagfleet.client import ConfigClient
from dagfleet.materializer import Materializer
from dagfleet.settings import Settings


def _in_process(url: str, dags: Path) -> dict[str, Any]:
    settings = Settings(api_url=url, dags_folder=dags)
    client = ConfigClient.from_settings(settings)
    start = time.perf_counter()
    report = Materializer(settings, client).sync()
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
        wire_bytes=stats["wire_bytes"],
    )
    return result


def run(sizes: list[int], work: Path, cli_sizes: list[int] | None = None) -> dict[str, Any]:
    cli_sizes = sizes if cli_sizes is None else cli_sizes
    results: list[dict[str, Any]] = []
    import dagfleet.config  # noqa: F401 - pydantic models: imported once, outside the timed in-process syncs

    for n in sizes:
        workflows = workload.fleet(n)
        for list_format in ("objects", "ids"):
            case = work / f"sync-{n}-{list_format}"
            shutil.rmtree(case, ignore_errors=True)
            file = workload.write_workflows(case / "workflows.json", workflows)
            with apiserver.running(file, list_format) as server:
                row: dict[str, Any] = {"n": n, "list_format": list_format}
                log(f"sync N={n} list={list_format}: cold (in-process)")
                row["cold"] = _measure(server, _in_process, case / "dags")
                log(f"sync N={n} list={list_format}: unchanged re-sync")
                row["unchanged"] = _measure(server, _in_process, case / "dags")
                changed = dict(workflows)
                first = next(iter(changed))
                changed[first] = {**changed[first], "description": "changed by the benchmark"}
                workload.write_workflows(file, changed)
                server.stats()  # the server re-reads the file on its next request, not in the timed sync
                log(f"sync N={n} list={list_format}: one workflow changed")
                row["one_changed"] = _measure(server, _in_process, case / "dags")
                if n in cli_sizes:
                    log(f"sync N={n} list={list_format}: cold + unchanged (CLI)")
                    row["cli_cold"] = _measure(server, _cli, case / "dags-cli")
                    row["cli_unchanged"] = _measure(server, _cli, case / "dags-cli")
            results.append(row)
            shutil.rmtree(case / "dags", ignore_errors=True)
            shutil.rmtree(case / "dags-cli", ignore_errors=True)
    return {"rows": results}
