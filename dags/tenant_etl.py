"""tenant_etl: per-tenant extract/load, one mapped task (or pod) per table.

A template written only against dagfleet's public API (docs/templates.md). Its own settings
live in the workflow's ``spec`` and are checked by ``tenant_etl.schema.json`` at sync time:

    spec:
      source_conn_id: acme_postgres      # the tenant's source database (an Airflow connection)
      tables: [orders, customers]         # one mapped task per table
      target_schema: acme_raw             # where the tables land
      mode: incremental                   # or full

Without ``pod`` in the config each table is a TaskFlow task (the copy itself is left to you:
here it only reports what it would do). With ``pod`` each table runs in its own pod with the
tenant's secrets: the secret set its item names, else ``pod.default_secret_set``. A run may
choose a subset of the tables with ``{"tables": [...]}`` as its conf.
"""

from __future__ import annotations

from typing import Any

# Heavy imports at the top level: the DAG processor pre-imports them once before forking.
import airflow.providers.cncf.kubernetes.operators.pod  # KubernetesPodOperator
import airflow.sdk.definitions.decorators  # noqa: F401 - TaskFlow's @task
from airflow.sdk import DAG, get_current_context, task

from dagfleet import PodOperator, pod_kwargs, workflow

wf = workflow(__file__)
spec = wf.spec
mode = spec.get("mode", "incremental")


@task(task_id="plan_tables")
def plan_tables() -> list[dict[str, Any]]:
    """The run's tables (``conf["tables"]`` or the spec's), each with the tenant's secret specs."""
    conf = dict(get_current_context()["dag_run"].conf or {})
    return wf.plan_items({"items": conf.get("tables") or spec.get("tables", [])})


@task(task_id="load_table", map_index_template="{{ table }}")
def load_table(item: str, index: int, total: int) -> dict[str, Any]:
    get_current_context()["table"] = item  # type: ignore[typeddict-unknown-key]
    target = f"{spec['target_schema']}.{item}"
    print(f"[{index + 1}/{total}] {mode} copy of {item} from {spec['source_conn_id']} into {target}")
    return {"table": item, "source": spec["source_conn_id"], "target": target, "mode": mode}


@task(task_id="report")
def report(loaded: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"workflow_id": wf.id, "tables": [row["table"] for row in loaded or []], "mode": mode}


def _table_kwargs(planned: dict[str, Any]) -> dict[str, Any]:
    return {"item": planned["item"], "index": planned["index"], "total": planned["total"]}


with DAG(**wf.dag_args()) as dag:
    tables = plan_tables()
    if wf.config.pod is None:
        report(load_table.expand_kwargs(tables.map(_table_kwargs)))
    else:
        pod = wf.pod_args()
        pod["env_vars"] = {
            **pod["env_vars"],
            "SOURCE_CONN_ID": spec["source_conn_id"],
            "TARGET_SCHEMA": spec["target_schema"],
            "LOAD_MODE": mode,
        }
        pods = PodOperator.partial(task_id="load_table", map_index_template="{{ task.item }}", **pod).expand_kwargs(
            tables.map(pod_kwargs)
        )
        pods >> report()
