"""dagfleet's Airflow cluster policy (entry point ``airflow.policy``): a workflow's ``outlets``.

Airflow calls ``dag_policy`` for every DAG it parses, in the dag-processor and in each worker,
right after the DAG file was imported (``DagBag.bag_dag``). For a DAG whose ``Workflow.dag_args()``
registered outlet assets (``dagfleet.fleet.assets.OUTLETS``), the DAG's leaf tasks (its final tasks,
those with nothing downstream) get them as ``outlets``: when such a task succeeds, Airflow
records an asset event and runs the DAGs scheduled on that asset. A template needs no code for
it (docs/config.md). Other DAGs are left exactly as they are.
"""

from __future__ import annotations

from typing import Any

from airflow.policies import hookimpl

from dagfleet.fleet.assets import OUTLETS, outlet_assets


@hookimpl
def dag_policy(dag: Any) -> None:
    uris = OUTLETS.get(dag.dag_id)
    if not uris:
        return
    for task in dag.leaves:
        present = {getattr(o, "uri", None) for o in task.outlets}
        task.outlets = [*task.outlets, *(a for a in outlet_assets(uris) if a.uri not in present)]
