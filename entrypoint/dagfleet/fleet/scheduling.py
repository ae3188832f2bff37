"""A config's scheduling controls as Airflow arguments (docs/config.md, "Scheduling controls").

``Workflow.dag_args()`` merges them in: the task-level ones (pool, pool_slots, priority_weight,
weight_rule, queue, executor) as ``default_args``, so every task of every template gets them;
the DAG-level ones (max_active_tasks, dagrun_timeout, an asset schedule, notifications, a deadline) as
``DAG(...)`` arguments. Outlets are registered for ``dagfleet.authoring.policy`` to attach to leaf tasks.
"""

from __future__ import annotations

import functools
from typing import Any

from dagfleet.fleet.assets import OUTLETS, AssetCondition
from dagfleet.fleet.config import Problem, WorkflowConfig

TASK_FIELDS = ("pool", "pool_slots", "priority_weight", "weight_rule", "queue", "executor")


def task_args(config: WorkflowConfig) -> dict[str, Any]:
    """``default_args`` entries: the task-level fields the config sets (unset: Airflow's default)."""
    return {name: getattr(config, name) for name in TASK_FIELDS if getattr(config, name) is not None}


def dag_kwargs(workflow_id: str, config: WorkflowConfig) -> dict[str, Any]:
    """``DAG(...)`` arguments: schedule, max_active_tasks, dagrun_timeout, callbacks (set ones only)."""
    from dagfleet.fleet.notify import callbacks, deadline_alert

    kwargs: dict[str, Any] = {}
    if isinstance(config.schedule, AssetCondition):
        kwargs["schedule"] = config.schedule.to_airflow()
    if config.max_active_tasks is not None:
        kwargs["max_active_tasks"] = config.max_active_tasks
    if config.dagrun_timeout is not None:
        kwargs["dagrun_timeout"] = config.dagrun_timeout
    kwargs.update(callbacks(config.notify))
    if config.deadline is not None:
        kwargs["deadline"] = deadline_alert(config.deadline)
    if config.outlets:
        OUTLETS[workflow_id] = tuple(config.outlets)
    else:
        OUTLETS.pop(workflow_id, None)
    return kwargs


def asset_problems(config: WorkflowConfig) -> list[Problem]:
    """Asset URIs Airflow itself would refuse when it parses the DAG (a provider's URI rules, e.g.
    ``postgres://`` needs database, schema and table): found at sync, so the workflow keeps its last
    known good DAG instead of becoming an import error. Without Airflow installed: not checked."""
    named = [("outlets", index, uri) for index, uri in enumerate(config.outlets)]
    if isinstance(config.schedule, AssetCondition):
        named += [("schedule", None, uri) for uri in config.schedule.uris()]
    problems: list[Problem] = []
    for field, index, uri in named:
        refused = _airflow_refuses(uri)
        if refused:
            problems.append(
                (field if index is None else f"{field}[{index}]", f"Airflow refuses the asset URI: {refused}")
            )
    return problems


@functools.lru_cache(maxsize=4096)
def _airflow_refuses(uri: str) -> str | None:
    try:
        from airflow.sdk import Asset
    except ImportError:  # `dagfleet validate` without Airflow: the URI's form was checked already
        return None
    try:
        Asset(uri)
    except ValueError as err:
        return " ".join(str(err).split())[:200]
    return None
