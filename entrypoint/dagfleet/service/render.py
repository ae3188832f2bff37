"""``dagfleet render``: a workflow's tasks and the pods it would launch, offline (docs/templates.md).

No cluster and no metadata database: the workflow's DAG file is parsed with Airflow's ``DagBag``
(from the dags folder's stored record, or from a workflows file and its template, written to a
temporary folder first); the TaskFlow tasks a mapped pod task takes its items from (the planning
task) run in this process with the run's ``conf``; each pod is built by the provider's own code,
``render_template_fields`` then ``build_pod_request_obj(dry_run=True)``. The output is
deterministic: pod names without the operator's random suffix, secret volumes numbered in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from dagfleet.fleet import __version__
from dagfleet.fleet.check import check_workflow
from dagfleet.fleet.errors import DagfleetError, one_line
from dagfleet.fleet.store import FleetStore, Record, dag_bytes
from dagfleet.fleet.template_library import TemplateLibrary

RUN_ID = "manual__render"
_SECRET_VOLUME = re.compile(r"secretvol[0-9a-f-]{36}")


class RenderError(DagfleetError):
    """The workflow cannot be rendered: one line naming it and why."""


class _RenderTI(SimpleNamespace):
    """The task instance a render context needs: XComs come from the tasks render ran."""

    def xcom_pull(self, task_ids: str, key: str = "return_value", default: Any = None, **_: Any) -> Any:
        return self.outputs.get((task_ids, key), default)


def render_context(
    dag: Any, task: Any, conf: Mapping[str, Any] | None = None, map_index: int = -1, outputs: Any = None
) -> dict[str, Any]:
    """The context KubernetesPodOperator needs to render its pod without a cluster (a stand-in
    run and task instance: ``params``, ``dag_run.conf``, ``ti``, ``run_id``, ``dag``, ``task``)."""
    conf = dict(conf or {})
    params = {**dag.params.dump(), **conf}
    run = SimpleNamespace(conf=conf, run_id=RUN_ID, dag_id=dag.dag_id)
    ti = _RenderTI(
        dag_id=dag.dag_id,
        task_id=task.task_id,
        run_id=RUN_ID,
        map_index=map_index,
        try_number=1,
        outputs=outputs if outputs is not None else {},
    )
    return {"params": params, "dag_run": run, "ti": ti, "run_id": RUN_ID, "dag": dag, "task": task}


# -- the DAG file --------------------------------------------------------------------------------
@contextlib.contextmanager
def _dags_folder(folder: Path) -> Iterator[None]:
    """``workflow(__file__)`` reads its record from ``folder`` while the DAG file is parsed."""
    before = os.environ.get("DAGFLEET_DAGS_FOLDER")
    os.environ["DAGFLEET_DAGS_FOLDER"] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DAGFLEET_DAGS_FOLDER", None)
        else:
            os.environ["DAGFLEET_DAGS_FOLDER"] = before


def parse_dag(workflow_id: str, folder: Path) -> Any:
    """The workflow's DAG from ``<folder>/<id>-mydag.py`` (Airflow's DagBag; no database)."""
    path = FleetStore(folder).dag_path(workflow_id)
    if not path.is_file() or FleetStore(folder).record(workflow_id) is None:
        raise RenderError(
            f"workflow {workflow_id!r}: no generated DAG with a stored record in {folder}; "
            "run `dagfleet sync` first, or give --file workflows.yaml"
        )
    from airflow.dag_processing.dagbag import DagBag  # after the cheap check: importing Airflow takes seconds

    with _dags_folder(folder):
        bag = DagBag(dag_folder=str(path))
    if bag.import_errors:
        error = " ".join(str(next(iter(bag.import_errors.values()))).split())[-300:]
        raise RenderError(f"workflow {workflow_id!r}: its DAG file does not import: {error}")
    if workflow_id not in bag.dags:
        raise RenderError(f"workflow {workflow_id!r}: its DAG file defines no DAG with that dag_id")
    return bag.dags[workflow_id]


def stage_from_file(workflow_id: str, entries: list[tuple[Any, Any]], library: TemplateLibrary, folder: Path) -> None:
    """Write what ``dagfleet sync`` would for one workflow of a file (validated the same way)."""
    raw = next((config for wid, config in entries if wid == workflow_id), None)
    if raw is None:
        raise RenderError(f"workflow {workflow_id!r} is not in the workflows file")
    template = check_workflow(workflow_id, raw, library)
    record = Record(workflow_id, dict(raw), template.name)
    store = FleetStore(folder)
    store.dag_path(workflow_id).write_bytes(dag_bytes(template.source, record, __version__))
    store.write_record(record)


# -- running the planning tasks ------------------------------------------------------------------
def _is_pod_task(task: Any) -> bool:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    cls = task.operator_class if task.is_mapped else type(task)
    return isinstance(cls, type) and issubclass(cls, KubernetesPodOperator)


def _needed(dag: Any) -> set[str]:
    """Task IDs whose output a mapped pod task's items come from, transitively."""
    from airflow.sdk.definitions.xcom_arg import XComArg

    todo = [t for t in dag.tasks if t.is_mapped and _is_pod_task(t)]
    needed: set[str] = set()
    while todo:
        task = todo.pop()
        refs = XComArg.iter_xcom_references(task._get_specified_expand_input()) if task.is_mapped else ()
        refs = [*refs, *XComArg.iter_xcom_references(getattr(task, "op_kwargs", None) or {})]
        for operator, _key in refs:
            if operator.task_id not in needed:
                needed.add(operator.task_id)
                todo.append(operator)
    return needed


def run_planning_tasks(dag: Any, conf: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """Run, in order, the TaskFlow tasks that mapped pod tasks take their items from."""
    outputs: dict[tuple[str, str], Any] = {}
    needed = _needed(dag)
    for task in dag.topological_sort():
        if task.task_id not in needed:
            continue
        if task.is_mapped or not callable(getattr(task, "python_callable", None)):
            raise RenderError(
                f"workflow {dag.dag_id!r}: task {task.task_id!r} feeds a mapped pod task but is not a plain "
                "TaskFlow task, so render cannot run it offline"
            )
        outputs[(task.task_id, "return_value")] = _run_task(dag, task, conf, outputs)
    return outputs


def _run_task(dag: Any, task: Any, conf: Mapping[str, Any], outputs: dict[tuple[str, str], Any]) -> Any:
    """One TaskFlow task, as the task runner would call it (rendered, in its context)."""
    from airflow.sdk.bases.operator import ExecutorSafeguard
    from airflow.sdk.execution_time.context import set_current_context

    context = render_context(dag, task, conf, outputs=outputs)
    token = ExecutorSafeguard.tracker.set(task)  # what the task runner sets: execute() is called by us
    try:
        with set_current_context(context):  # type: ignore[arg-type]
            task.render_template_fields(context)
            return task.execute(context)
    except DagfleetError:
        raise
    except Exception as err:  # noqa: BLE001 - the template's code: one line, not a traceback
        raise RenderError(f"workflow {dag.dag_id!r}: task {task.task_id!r} failed: {one_line(err)}") from None
    finally:
        ExecutorSafeguard.tracker.reset(token)


# -- the pods ------------------------------------------------------------------------------------
def _map_length(dag: Any, task: Any, conf: Mapping[str, Any], outputs: dict[tuple[str, str], Any]) -> int:
    from airflow.sdk.definitions._internal.expandinput import ListOfDictsExpandInput

    expand = task._get_specified_expand_input()
    context = render_context(dag, task, conf, outputs=outputs)
    if isinstance(expand, ListOfDictsExpandInput):
        value = expand.value
        return len(value if isinstance(value, list) else value.resolve(context))
    length = 1
    for value in expand.value.values():
        length *= len(value if isinstance(value, list | tuple | dict) else value.resolve(context))
    return length


def _pod(dag: Any, task: Any, conf: Mapping[str, Any], map_index: int, outputs: Any) -> dict[str, Any]:
    """One pod, built by the provider's own code from a rendered (and, if mapped, expanded) task."""
    from kubernetes.client import ApiClient

    context = render_context(dag, task, conf, map_index, outputs)
    task.render_template_fields(context)  # a mapped task: context["task"] becomes this item's operator
    operator = context["task"]
    operator.random_name_suffix = False  # deterministic: the operator adds 8 random characters
    pod = ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(context, dry_run=True))
    return {
        "task_id": task.task_id,
        "map_index": map_index,
        "item": getattr(operator, "item", None),
        "pod": _number_secret_volumes(pod),
    }


def _number_secret_volumes(pod: dict[str, Any]) -> dict[str, Any]:
    """``secretvol<uuid>`` (random per build) -> ``secretvol-1``, ``-2``, … in order of the volumes."""
    import json

    text = json.dumps(pod)
    names: dict[str, str] = {}
    for found in _SECRET_VOLUME.findall(text):
        names.setdefault(found, f"secretvol-{len(names) + 1}")
    for old, new in names.items():
        text = text.replace(old, new)
    return json.loads(text)


def _task_row(task: Any) -> dict[str, Any]:
    cls = task.operator_class if task.is_mapped else type(task)
    return {
        "task_id": task.task_id,
        "operator": getattr(cls, "__name__", str(cls)),
        "mapped": bool(task.is_mapped),
        "upstream": sorted(task.upstream_task_ids),
    }


def render_dag(dag: Any, conf: Mapping[str, Any] | None = None, item: int | None = None) -> dict[str, Any]:
    """The DAG's tasks and, per pod task, the pod of each item (``item``: only that map index)."""
    conf = dict(conf or {})
    outputs = run_planning_tasks(dag, conf)
    pods = []
    for task in dag.topological_sort():
        if not _is_pod_task(task):
            continue
        if not task.is_mapped:
            pods.append(_pod(dag, task, conf, -1, outputs))
            continue
        length = _map_length(dag, task, conf, outputs)
        if item is not None and not 0 <= item < length:
            raise RenderError(
                f"workflow {dag.dag_id!r}: --item {item}: task {task.task_id!r} maps over {length} item(s)"
                + (f" (0 to {length - 1})" if length else "")
            )
        indexes = [item] if item is not None else range(length)
        pods.extend(_pod(dag, task, conf, index, outputs) for index in indexes)
    tasks = [_task_row(t) for t in dag.topological_sort()]
    return {"workflow": dag.dag_id, "run_id": RUN_ID, "conf": conf, "tasks": tasks, "pods": pods}


def render(
    workflow_id: str,
    dags_folder: Path,
    conf: Mapping[str, Any] | None = None,
    item: int | None = None,
    staged: tuple[list[tuple[Any, Any]], TemplateLibrary] | None = None,
) -> dict[str, Any]:
    """Render from ``dags_folder`` (its stored record), or from ``staged`` (a workflows file's
    entries and the template library) written to a temporary folder first."""
    with _logs_to_stderr():
        if staged is None:
            return render_dag(parse_dag(workflow_id, dags_folder), conf, item)
        with tempfile.TemporaryDirectory(prefix="dagfleet-render-") as folder:
            stage_from_file(workflow_id, *staged, Path(folder))
            return render_dag(parse_dag(workflow_id, Path(folder)), conf, item)


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Airflow's logs (DagBag, the operators) go to stdout: send them to stderr meanwhile, so
    stdout holds the render alone (file descriptor 1 itself: the loggers keep their stream)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def to_text(result: dict[str, Any], output_format: str = "yaml") -> str:
    """The render as YAML (default) or JSON, keys in a stable order."""
    import json

    if output_format == "json":
        return json.dumps(result, indent=2) + "\n"
    import yaml

    return yaml.safe_dump(result, sort_keys=False, default_flow_style=False)
