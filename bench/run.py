"""Run every part of the benchmark of issue #8 and write the results JSON and markdown table.

``python -m bench [--quick] [--out DIR] [--update-docs]`` (``make bench``; ``BENCH_QUICK=1`` for a
smoke run). Results go to ``bench/results/<UTC time>/`` and ``bench/results/latest.{json,md}``;
``--update-docs`` (full runs) also refreshes the generated part of docs/benchmarks.md and
docs/benchmarks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import dagproc_bench, freshness_bench, parse_bench, report, sync_bench
from bench.common import ROOT, log, machine


@dataclass(frozen=True)
class Plan:
    sync_sizes: tuple[int, ...]
    cli_sizes_objects: tuple[int, ...]
    cli_sizes_ids: tuple[int, ...]
    parse_files: int
    parse_dead_files: int
    parse_hang_files: int
    fresh_interval: float
    fresh_changes: int
    # issue #15: real dag-processor, Airflow's defaults vs dagfleet's (bench/dagproc_bench.py)
    dagproc_sizes: tuple[int, ...] = (1000, 10000)
    dagproc_sync_interval: float = 10.0
    dagproc_steady_window: float = 60.0
    dagproc_events: int = 12
    dagproc_event_timeout: float = 330.0
    dagproc_settings: tuple[str, ...] = ("airflow", "dagfleet")
    dagproc_cold_only: bool = False
    # issue #31: the fleet split over this many dag-processors, each count in turn (--dagproc-shards 1,2)
    dagproc_shards: tuple[int, ...] = (1,)


FULL = Plan((10, 100, 1000, 10000), (10, 100, 1000, 10000), (10, 100, 1000), 50, 20, 2, 5.0, 10)
QUICK = Plan((10, 100), (10, 100), (10, 100), 6, 4, 1, 2.0, 3, (100,), 10.0, 20.0, 3, 60.0)
PARTS = ("sync", "parse", "freshness", "dagproc")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--update-docs", action="store_true", help="refresh docs/benchmarks.{md,json} (full runs)")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only these parts")
    parser.add_argument(
        "--dagproc-sizes", type=lambda v: tuple(int(x) for x in v.split(",")), help="fleet sizes for dagproc, e.g. 1000"
    )
    parser.add_argument(
        "--dagproc-settings",
        type=lambda v: tuple(v.split(",")),
        help="dag-processor settings to compare, in this order (default: airflow,dagfleet)",
    )
    parser.add_argument(
        "--dagproc-cold-only", action="store_true", help="dagproc: measure only the cold full pass of each setting"
    )
    parser.add_argument(
        "--dagproc-shards",
        type=lambda v: tuple(int(x) for x in v.split(",")),
        help="dagproc: shard counts to compare, e.g. 1,2 (one dag-processor per shard, same total parsing processes)",
    )
    options = parser.parse_args(argv)
    plan = QUICK if options.quick else FULL
    if options.dagproc_sizes:
        plan = replace(plan, dagproc_sizes=options.dagproc_sizes)
    if options.dagproc_cold_only:
        plan = replace(plan, dagproc_cold_only=True)
    if options.dagproc_settings:
        plan = replace(plan, dagproc_settings=options.dagproc_settings)
    if options.dagproc_shards:
        plan = replace(plan, dagproc_shards=options.dagproc_shards)
    parts = set(options.only or PARTS)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = options.out / stamp
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": stamp,
        "quick": options.quick,
        "plan": asdict(plan),
        "machine": machine(),
    }
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="dagfleet-bench-"))
    try:
        if "sync" in parts:
            t = time.perf_counter()
            results["sync"] = sync_bench.run(
                list(plan.sync_sizes),
                work,
                {"objects": plan.cli_sizes_objects, "ids": plan.cli_sizes_ids},
            )
            results["sync"]["elapsed_s"] = time.perf_counter() - t
        if "parse" in parts:
            t = time.perf_counter()
            results["parse"] = parse_bench.run(plan.parse_files, work, plan.parse_dead_files, plan.parse_hang_files)
            results["parse"]["elapsed_s"] = time.perf_counter() - t
        if "freshness" in parts:
            t = time.perf_counter()
            results["freshness"] = freshness_bench.run(work, plan.fresh_interval, plan.fresh_changes)
            results["freshness"]["elapsed_s"] = time.perf_counter() - t
        if "dagproc" in parts:
            t = time.perf_counter()
            results["dagproc"] = dagproc_bench.run(
                work,
                list(plan.dagproc_sizes),
                plan.dagproc_sync_interval,
                plan.dagproc_steady_window,
                plan.dagproc_events,
                plan.dagproc_event_timeout,
                plan.dagproc_settings,
                plan.dagproc_cold_only,
                plan.dagproc_shards,
            )
            results["dagproc"]["elapsed_s"] = time.perf_counter() - t
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    results["elapsed_s"] = time.perf_counter() - started
    results["derived"] = report.derive(results)
    markdown = report.render(results)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(markdown)
    shutil.copyfile(out / "results.json", options.out / "latest.json")
    shutil.copyfile(out / "results.md", options.out / "latest.md")
    log(f"done in {results['elapsed_s']:.0f}s: {out / 'results.md'}")
    if options.update_docs:
        if options.quick or parts != set(PARTS):
            log("not updating docs/benchmarks.md from a quick or partial run")
        else:
            report.update_docs(results, markdown)
            log("updated docs/benchmarks.md and docs/benchmarks.json")
    print(markdown)
    return 0
