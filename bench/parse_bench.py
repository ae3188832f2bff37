"""Part 2 of issue #8: DAG parse time per file, measured by Airflow's own DAG processor.

Every variant's files sit side by side in one dags folder (top level, as dagfleet writes them)
and are parsed in one run of the real ``airflow dag-processor --num-runs 1``
(bench/airflow_parse.py): one forked child per file, the top-level ``airflow.*`` imports of
each file pre-imported by the parent, ``parsing_processes=1`` so that one file's time is not
another's wait, files interleaved (``rNNN_`` name prefixes, alphabetical order) so that a busy
moment of the shared machine hits every variant alike. The per-file time is Airflow's own
``last_duration`` (fork to result: what its "DAG File Processing Stats" table shows).

Variants (``pf`` = pod-free ``nightly_report``, ``pod`` = ``acme_sync`` with per-item pods):

run ``live`` (config API up):
  ``gen``         dagfleet's generated file, config stored by ``dagfleet sync`` (no network): a copy
                  of the shipped ``demo`` template, which is written only against the public
                  authoring API (``from dagfleet import workflow``; target <= 1.1x ``static``)
  ``static``      bench/fixtures/static_dag.py: the same tasks, hand-written (the floor)
  ``seed``        bench/fixtures/seed_dag.py: ``requests.get`` of its config at the top, no cache
  ``genlive``     generated file without a stored config: cold cache, one live request
  ``gencache``    generated file without a stored config: fresh parse-time cache entry
  ``dagfactory``  dag-factory loader + one YAML per DAG (when dag-factory is installed)
  ``loop``        one file generating all N DAGs with dagfleet's builder (time per DAG)
run ``dead`` (nothing listens on the API port: connection refused):
  ``gen``/``static`` controls, ``seed``, ``gendead`` (no stored config, no cache),
  ``genstale`` (no stored config, a stale cache entry: the last known good)
run ``hang`` (the API accepts connections and never answers):
  ``static`` control, ``seed`` (its 10 s timeout), ``genhang`` and ``genhangstale`` (bounded by
  ``DAGFLEET_PARSE_TIMEOUT``, default 5 s)
run ``preload`` (what-if): ``gen`` and ``static`` with ``$AIRFLOW_HOME/config/airflow_local_settings.py``
  importing ``dagfleet.authoring.workflow``, so the processor imports dagfleet once before forking
run ``plugin`` (what-if): the same through an ``airflow.plugins`` entry point that imports dagfleet
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import apiserver, workload
from bench.common import ROOT, airflow_env, base_env, log, summary
from dagfleet import __version__
from dagfleet.fleet.settings import SHIPPED_TEMPLATES
from dagfleet.fleet.store import FleetStore, Record, dag_bytes

FIXTURES = Path(__file__).parent / "fixtures"
DAGFACTORY_DIR = ROOT / ".cache" / "bench-deps" / "dag-factory"
KINDS = ("pf", "pod")
TEMPLATE = {"pf": workload.POD_FREE, "pod": workload.POD}
STALE_AGE = 24 * 3600.0

WARMUP_DAG = '''"""Warm-up file: makes the processor pre-import what every variant's DAG imports."""
from __future__ import annotations

import airflow.providers.cncf.kubernetes.operators.pod  # noqa: F401
import airflow.providers.cncf.kubernetes.secret  # noqa: F401
from airflow.sdk import DAG

with DAG(dag_id="bench_warmup", schedule=None):
    pass
'''


# What would make the generated DAG as cheap as the static one: the DAG processor imports
# airflow_local_settings (from $AIRFLOW_HOME/config) once, before it forks a child per file.
PRELOAD_SETTINGS = '''"""Pre-import dagfleet in the DAG processor, before it forks a child per DAG file."""
from __future__ import annotations

import dagfleet.authoring.workflow  # noqa: F401
'''


# The same through an Airflow plugin: a distribution with an ``airflow.plugins`` entry point whose
# module imports dagfleet; the DAG processor loads plugins before it forks (dag-factory 1.1.0
# ships such a plugin, which is why its loader files start warm). Built in a bench-only folder.
PLUGIN_MODULE = '''"""Airflow plugin whose only job is to import dagfleet in the DAG processor before it forks."""
from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

import dagfleet.authoring.workflow  # noqa: F401


class DagfleetPreload(AirflowPlugin):
    name = "dagfleet_preload"
'''


def _preload_plugin(folder: Path) -> Path:
    dist = folder / "dagfleet_preload-0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (folder / "dagfleet_preload.py").write_text(PLUGIN_MODULE)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dagfleet-preload\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[airflow.plugins]\ndagfleet_preload = dagfleet_preload:DagfleetPreload\n")
    return folder


def dagfactory_available() -> bool:
    return (DAGFACTORY_DIR / "dagfactory" / "__init__.py").exists()


def _kind(index: int) -> str:
    return KINDS[index % 2]


def _dagfactory_yaml(dag_id: str, kind: str) -> dict[str, Any]:
    config = workload.example(TEMPLATE[kind])
    defaults = config.get("default_args", {})
    tasks: list[dict[str, Any]] = [
        {
            "task_id": "read_context",
            "decorator": "airflow.sdk.task",
            "python_callable": "dagfactory_callables.read_context",
        },
        {
            "task_id": "plan_items",
            "decorator": "airflow.sdk.task",
            "python_callable": "dagfactory_callables.plan_items",
            "dependencies": ["read_context"],
        },
        {
            "task_id": "process_item",
            "decorator": "airflow.sdk.task",
            "python_callable": "dagfactory_callables.process_item",
            "expand": {"item": "+plan_items"},
            "dependencies": ["plan_items"],
        },
        {
            "task_id": "process_item_kwargs",
            "decorator": "airflow.sdk.task",
            "python_callable": "dagfactory_callables.process_item",
            "expand": {"item": "+plan_items"},
            "dependencies": ["plan_items"],
        },
        {
            "task_id": "summarize",
            "decorator": "airflow.sdk.task",
            "python_callable": "dagfactory_callables.summarize",
            "dependencies": ["process_item", "process_item_kwargs"],
            "trigger_rule": "none_failed",
        },
    ]
    pod = config.get("pod")
    if pod:
        kpo = "airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator"
        common = {
            "image": pod["image"],
            "cmds": pod["cmds"],
            "namespace": pod["namespace"],
            "on_finish_action": "delete_pod",
        }
        secrets = [
            {
                "__type__": "airflow.providers.cncf.kubernetes.secret.Secret",
                **{k: s.get(k) for k in ("deploy_type", "deploy_target", "secret", "key")},
            }
            for s in pod["secrets"]
        ]
        tasks.append(
            {
                "task_id": "pod_static",
                "operator": kpo,
                "arguments": pod["arguments"],
                "env_vars": pod["env"],
                "secrets": secrets,
                "dependencies": ["read_context"],
                **common,
            }
        )
        tasks.append(
            {
                "task_id": "pod_per_item",
                "operator": kpo,
                "partial": common,
                "expand": {"arguments": [[f"echo {item}"] for item in ("tenant-a", "tenant-b", "shared-1")]},
                "dependencies": ["plan_items"],
            }
        )
    return {
        dag_id: {
            "default_args": {
                "owner": "dagfleet",
                "retries": defaults.get("retries", 0),
                "start_date": str(config.get("start_date", "2024-01-01"))[:10],
            },
            "description": config.get("description"),
            "schedule": config.get("schedule") if isinstance(config.get("schedule"), str) else None,
            "catchup": False,
            "tags": ["dag-factory", *config.get("tags", [])],
            "tasks": tasks,
        }
    }


class Layout:
    """Builds one dags folder: per round ``rNNN_`` one file of each variant, all at the top level."""

    def __init__(self, dags: Path) -> None:
        self.dags = dags
        self.variants: dict[str, list[str]] = {}  # variant -> relative paths
        self.ids: dict[str, list[str]] = {}  # variant -> workflow IDs served by the API
        self.served: dict[str, dict[str, Any]] = {}
        self.store = FleetStore(dags)
        self.template = (SHIPPED_TEMPLATES / "demo.py").read_bytes()
        dags.mkdir(parents=True)
        (dags / "_warmup.py").write_text(WARMUP_DAG)

    def _add(self, variant: str, rel: str, workflow_id: str | None = None) -> Path:
        self.variants.setdefault(variant, []).append(rel)
        if workflow_id:
            self.ids.setdefault(variant, []).append(workflow_id)
        path = self.dags / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def generated(self, variant: str, index: int, *, stored: bool, cache_age: float | None, served: bool) -> None:
        kind = _kind(index)
        workflow_id = f"r{index:03d}_{variant}_{kind}"
        path = self._add(variant, f"{workflow_id}-mydag.py", workflow_id)
        config = workload.example(TEMPLATE[kind])
        record = Record(workflow_id, config, "demo")
        path.write_bytes(dag_bytes(self.template, record, __version__))  # what `dagfleet sync` writes
        if stored:
            self.store.write_record(record)
        if cache_age is not None:
            self.store.cache_dir.mkdir(parents=True, exist_ok=True)
            entry = {"workflow_id": workflow_id, "stored_at": time.time() - cache_age, "config": config}
            (self.store.cache_dir / f"{workflow_id}.json").write_text(json.dumps(entry))
        if served:
            self.served[workflow_id] = config

    def fixture(self, variant: str, fixture: str, index: int, *, served: bool = False) -> None:
        kind = _kind(index)
        name = f"r{index:03d}_{variant}_{kind}"
        shutil.copyfile(FIXTURES / fixture, self._add(variant, f"{name}.py", name))
        if served:
            self.served[name] = workload.example(TEMPLATE[kind])

    def dagfactory(self, index: int) -> None:
        kind = _kind(index)
        name = f"r{index:03d}_dagfactory_{kind}"
        path = self._add("dagfactory", f"{name}.py")
        shutil.copyfile(FIXTURES / "dagfactory_dag.py", path)
        path.with_suffix(".dagfactory.yml").write_text(yaml.safe_dump(_dagfactory_yaml(name, kind), sort_keys=False))
        if not (self.dags / "dagfactory_callables.py").exists():
            shutil.copyfile(FIXTURES / "dagfactory_callables.py", self.dags / "dagfactory_callables.py")

    def loop(self, n: int) -> None:
        shutil.copyfile(FIXTURES / "loop_dags.py", self._add("loop", f"r{n // 2:03d}x_loop_dags.py"))
        configs = {f"loop_{i:03d}_{_kind(i)}": workload.example(TEMPLATE[_kind(i)]) for i in range(n)}
        for workflow_id, config in configs.items():
            self.store.write_record(Record(workflow_id, config, "demo"))
        (self.dags / "loop_configs.json").write_text(json.dumps(sorted(configs)))

    def write_served(self, path: Path) -> Path:
        return workload.write_workflows(path, self.served or {"placeholder": {}})


def _migrate_template(work: Path) -> Path:
    home = work / "airflow-template"
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        log("airflow db migrate (template metadata DB, copied per run)")
        env = base_env(AIRFLOW_HOME=str(home))
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
        )
    return home


def _process(
    run_dir: Path,
    dags: Path,
    template: Path,
    api_url: str,
    timeout: float,
    local_settings: str | None = None,
    plugin: bool = False,
) -> tuple[dict[str, Any], float]:
    """One ``airflow dag-processor --num-runs 1`` over ``dags``; its per-file stats and wall time."""
    home = run_dir / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    if local_settings is not None:
        (home / "config").mkdir(exist_ok=True)
        (home / "config" / "airflow_local_settings.py").write_text(local_settings)
    shutil.copyfile(template / "airflow.db", home / "airflow.db")
    pythonpath = [str(ROOT), str(dags)]
    if dagfactory_available():
        pythonpath.append(str(DAGFACTORY_DIR))
    if plugin:
        pythonpath.append(str(_preload_plugin(run_dir / "plugin")))
    env = airflow_env(
        home,
        dags,
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
        AIRFLOW__DAG_PROCESSOR__FILE_PARSING_SORT_MODE="alphabetical",
        DAGFLEET_API_URL=api_url,
        SEED_API_URL=api_url,
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
        PYTHONPATH=os.pathsep.join(pythonpath),
    )
    out = run_dir / "stats.json"
    log_file = run_dir / "dag-processor.log"
    start = time.perf_counter()
    with log_file.open("w") as handle:
        subprocess.run(
            [sys.executable, str(Path(__file__).parent / "airflow_parse.py"), str(out)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=True,
        )
    return json.loads(out.read_text()), time.perf_counter() - start


def _variant_rows(layout: Layout, stats: dict[str, Any], requests: dict[str, int]) -> dict[str, Any]:
    by_path = {f["path"]: f for f in stats["files"]}
    rows: dict[str, Any] = {}
    for variant, paths in layout.variants.items():
        files = [by_path[p] for p in paths if p in by_path]
        row: dict[str, Any] = {
            "files": len(paths),
            "parsed": len(files),
            "dags": sum(f["num_dags"] for f in files),
            "import_errors": sum(f["import_errors"] for f in files),
            "api_requests": sum(requests.get(i, 0) for i in layout.ids.get(variant, [])),
        }
        for kind in (*KINDS, "all"):
            durations = [
                f["duration"] for f in files if f["duration"] is not None and (kind == "all" or f"_{kind}" in f["path"])
            ]
            if variant == "loop" and durations:
                row["file_s"] = durations[0]
                durations = [durations[0] / max(row["dags"], 1)]  # time per generated DAG
            row[kind] = summary(durations)
        rows[variant] = row
    return rows


def _requests_by_id(stats: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for path, count in stats.get("paths", {}).items():
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) == 2:
            counts[parts[1]] = counts.get(parts[1], 0) + count
    return counts


def run(n_files: int, work: Path, n_dead: int, n_hang: int) -> dict[str, Any]:
    template = _migrate_template(work)
    results: dict[str, Any] = {"n_files": n_files, "dagfactory": dagfactory_available(), "runs": {}}

    # -- run "live" ---------------------------------------------------------------------
    run_dir = work / "parse-live"
    shutil.rmtree(run_dir, ignore_errors=True)
    layout = Layout(run_dir / "dags")
    for i in range(n_files):
        layout.generated("gen", i, stored=True, cache_age=None, served=False)
        layout.fixture("static", "static_dag.py", i)
        layout.fixture("seed", "seed_dag.py", i, served=True)
        layout.generated("genlive", i, stored=False, cache_age=None, served=True)
        layout.generated("gencache", i, stored=False, cache_age=0.0, served=False)
        if dagfactory_available():
            layout.dagfactory(i)
    layout.loop(n_files)
    served = layout.write_served(run_dir / "workflows.json")
    with apiserver.running(served, "objects") as server:
        log(f"parse run 'live': {sum(len(v) for v in layout.variants.values())} files")
        server.reset()
        stats, wall = _process(run_dir, layout.dags, template, server.url, timeout=1800)
        requests = _requests_by_id(server.stats(paths=True))
    results["runs"]["live"] = {"wall_s": wall, **_stats_meta(stats), "variants": _variant_rows(layout, stats, requests)}

    # -- run "dead" ---------------------------------------------------------------------
    run_dir = work / "parse-dead"
    shutil.rmtree(run_dir, ignore_errors=True)
    layout = Layout(run_dir / "dags")
    for i in range(n_dead):
        layout.generated("gen", i, stored=True, cache_age=None, served=False)
        layout.fixture("static", "static_dag.py", i)
        layout.fixture("seed", "seed_dag.py", i)
        layout.generated("gendead", i, stored=False, cache_age=None, served=False)
        layout.generated("genstale", i, stored=False, cache_age=STALE_AGE, served=False)
    log(f"parse run 'dead': {sum(len(v) for v in layout.variants.values())} files")
    stats, wall = _process(run_dir, layout.dags, template, apiserver.dead_url(), timeout=1800)
    results["runs"]["dead"] = {"wall_s": wall, **_stats_meta(stats), "variants": _variant_rows(layout, stats, {})}

    # -- run "hang" ---------------------------------------------------------------------
    run_dir = work / "parse-hang"
    shutil.rmtree(run_dir, ignore_errors=True)
    layout = Layout(run_dir / "dags")
    for i in range(n_hang):
        layout.fixture("static", "static_dag.py", i)
        layout.fixture("seed", "seed_dag.py", i)
        layout.generated("genhang", i, stored=False, cache_age=None, served=False)
        layout.generated("genhangstale", i, stored=False, cache_age=STALE_AGE, served=False)
    with apiserver.hanging() as url:
        log(f"parse run 'hang': {sum(len(v) for v in layout.variants.values())} files")
        stats, wall = _process(run_dir, layout.dags, template, url, timeout=1800)
    results["runs"]["hang"] = {"wall_s": wall, **_stats_meta(stats), "variants": _variant_rows(layout, stats, {})}

    # -- runs "preload" and "plugin" (what-ifs) --------------------------------------------
    for run_name in ("preload", "plugin"):
        run_dir = work / f"parse-{run_name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        layout = Layout(run_dir / "dags")
        for i in range(n_dead):
            layout.generated("gen", i, stored=True, cache_age=None, served=False)
            layout.fixture("static", "static_dag.py", i)
        log(f"parse run {run_name!r}: {sum(len(v) for v in layout.variants.values())} files")
        stats, wall = _process(
            run_dir,
            layout.dags,
            template,
            apiserver.dead_url(),
            timeout=1800,
            local_settings=PRELOAD_SETTINGS if run_name == "preload" else None,
            plugin=run_name == "plugin",
        )
        results["runs"][run_name] = {
            "wall_s": wall,
            **_stats_meta(stats),
            "variants": _variant_rows(layout, stats, {}),
        }
    return results


def _stats_meta(stats: dict[str, Any]) -> dict[str, Any]:
    return {"import_airflow_s": stats.get("import_airflow_s"), "loop_s": stats.get("loop_s")}
