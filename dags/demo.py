"""dagfleet's demo template: every feature of the fleet config, with task bodies that only echo.

Written only against the public API (``from dagfleet import ...``, docs/templates.md).
Task ids are a contract used by the tests and the end-to-end checks (docs/config.md):

``read_context``          reads ``params`` and ``dag_run.conf``; returns the run's message
``plan_items``            the items of this run: ``conf["items"]`` -> ``params["items"]`` -> config
                          ``items``; one JSON dict per item (name, index, secret specs)
``process_item``          ``expand(item=...)``: one task per item name
``process_item_kwargs``   ``expand_kwargs(...)``: one task per item, several arguments
``summarize``             gathers both mapped stages
``pod_static``            only with ``pod``: one pod, ``pod.secrets`` at parse time
``pod_per_item``          only with ``pod.per_item``: one pod per item, each with its item's secret set
"""

from __future__ import annotations

from typing import Any

# The DAG processor pre-imports the top-level `airflow.*` imports of a DAG file once, before it
# forks to parse each file: naming the heavy ones here makes every generated file cheap to parse.
import airflow.providers.cncf.kubernetes.operators.pod  # KubernetesPodOperator
import airflow.sdk.definitions.decorators  # noqa: F401 - TaskFlow's @task
from airflow.sdk import DAG, TriggerRule, get_current_context, task

from dagfleet import PodOperator, item_kwargs, item_name, pod_kwargs, workflow

wf = workflow(__file__)


@task(task_id="read_context")
def read_context() -> dict[str, Any]:
    context = get_current_context()
    conf = dict(context["dag_run"].conf or {})
    params = dict(context["params"])  # the values of this run's params
    return {
        "workflow_id": wf.id,
        "run_id": context["run_id"],
        "message": conf.get("message", params.get("message")),
        "conf": conf,
        "params": params,
    }


@task(task_id="plan_items")
def plan_items() -> list[dict[str, Any]]:
    context = get_current_context()
    return wf.plan_items(context["dag_run"].conf, context["params"])


@task(task_id="process_item", map_index_template="{{ dagfleet_item }}")
def process_item(item: str) -> dict[str, Any]:
    get_current_context()["dagfleet_item"] = item  # type: ignore[typeddict-unknown-key]
    return {"item": item, "length": len(item)}


@task(task_id="process_item_kwargs", map_index_template="{{ dagfleet_item }}")
def process_item_kwargs(item: str, index: int, total: int) -> dict[str, Any]:
    get_current_context()["dagfleet_item"] = item  # type: ignore[typeddict-unknown-key]
    return {"item": item, "position": f"{index + 1}/{total}"}


@task(task_id="summarize", trigger_rule=TriggerRule.NONE_FAILED)
def summarize(context: dict[str, Any], processed: list[dict[str, Any]], positioned: list[dict[str, Any]]) -> dict:
    items = [result["item"] for result in processed]
    return {
        "workflow_id": wf.id,
        "message": context["message"],
        "items": items,
        "count": len(items),
        "positions": [result["position"] for result in positioned],
    }


with DAG(**wf.dag_args()) as dag:
    run_context = read_context()
    planned = plan_items()
    run_context >> planned
    processed = process_item.expand(item=planned.map(item_name))
    positioned = process_item_kwargs.expand_kwargs(planned.map(item_kwargs))
    summarize(run_context, processed, positioned)
    if wf.config.pod is not None:
        pod = wf.pod_args()
        run_context >> PodOperator(task_id="pod_static", secret_specs=wf.pod_secrets(), **pod)
        if wf.config.pod.per_item:
            PodOperator.partial(task_id="pod_per_item", map_index_template="{{ task.item }}", **pod).expand_kwargs(
                planned.map(pod_kwargs)
            )
