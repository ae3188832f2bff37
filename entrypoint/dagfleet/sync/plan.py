"""The sync's decisions, made without writing anything: stored state + listing -> a typed plan.

``plan_workflow`` decides one workflow (write, update config, keep, reject); ``Plan`` gathers
them with the files to prune. ``FleetSync`` applies a plan; its report is derived from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dagfleet.fleet.check import check_workflow
from dagfleet.fleet.config import Declared
from dagfleet.fleet.errors import WorkflowConfigError, one_line
from dagfleet.fleet.store import Record, dag_bytes, dag_file_name, template_body
from dagfleet.fleet.template_library import TemplateLibrary

STUB = '''"""dagfleet: this workflow's Airflow DAG could not be generated; the import error says why."""

raise ImportError({message!r})
'''


class Action(StrEnum):
    WRITE = "written"  # a new DAG file, or its template changed
    UPDATE_CONFIG = "config updated"  # only its record (and so the file's trailer line) changed
    KEEP = "unchanged"
    REJECT = "rejected"  # kept its last known good DAG, or (new) an import-error stub


@dataclass(frozen=True)
class Step:
    workflow_id: str
    action: Action
    record: Record | None = None  # to store (None: leave the stored record as it is)
    dag: bytes | None = None  # the DAG file's new content (None: leave the file)
    problem: str | None = None
    has_file: bool = True  # False: a rejected new workflow whose DAG could not even be written
    # True: rejected not for its config but because it could not be fetched (or its DAG written):
    # its DAG, if any, stays as it was (`dagfleet status` shows it kept, or not created).
    unavailable: bool = False

    @property
    def file_name(self) -> str:
        return dag_file_name(self.workflow_id)


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # fleet-level: the list, IDs, duplicates
    keep: set[str] = field(default_factory=set)  # IDs whose files stay although they have no step
    prune: dict[str, str] = field(default_factory=dict)  # file name -> workflow ID

    def ids(self, *actions: Action) -> list[str]:
        return [s.workflow_id for s in self.steps if not actions or s.action in actions]

    def files(self) -> dict[str, str]:
        """file name -> workflow ID of every generated file this plan keeps or writes."""
        ids = {s.workflow_id for s in self.steps if s.has_file} | self.keep
        return {dag_file_name(i): i for i in ids}

    def written(self) -> dict[str, str]:
        """file name -> workflow ID of the files this plan writes."""
        return {s.file_name: s.workflow_id for s in self.steps if s.dag is not None}


@dataclass(frozen=True)
class Inputs:
    """What the planner needs to know about one workflow besides its raw config."""

    stored: Record | None
    current_dag: bytes | None  # the DAG file as it is on disk (None: there is none)
    etag: str | None = None
    fetch_error: str | None = None


def stub(message: str) -> bytes:
    """A DAG file that only raises ``message``: Airflow shows it as the workflow's import error."""
    return STUB.format(message=message).encode()


def _reject(workflow_id: str, inputs: Inputs, problem: str) -> Step:
    if inputs.current_dag is not None and inputs.stored is not None:
        return Step(workflow_id, Action.REJECT, problem=f"{problem}; kept its last known good config")
    message = f"{problem}; its DAG will show this as an import error"
    return Step(workflow_id, Action.REJECT, dag=stub(problem), problem=message)


def plan_workflow(
    workflow_id: str,
    raw: dict[str, Any] | None,
    inputs: Inputs,
    library: TemplateLibrary,
    version: str,
    now: float,
    declared: Declared | None = None,
) -> Step:
    """One workflow: ``raw`` is its config from the API (``None``: unchanged, use the stored one)."""
    if inputs.fetch_error is not None:
        problem = f"workflow {workflow_id!r}: {inputs.fetch_error}"
        if inputs.current_dag is not None:
            return Step(
                workflow_id, Action.REJECT, problem=f"{problem}; kept its last known good DAG", unavailable=True
            )
        return Step(workflow_id, Action.REJECT, problem=f"{problem}; not created yet", has_file=False, unavailable=True)
    if raw is None:
        raw = inputs.stored.config if inputs.stored is not None else {}
    try:
        template = check_workflow(workflow_id, raw, library, declared)
    except WorkflowConfigError as err:
        return _reject(workflow_id, inputs, str(err))
    except Exception as err:  # noqa: BLE001 - whatever one config holds: that workflow only
        line = (
            f"workflow {workflow_id!r}: its config could not be validated ({one_line(err)}); fix it in the config API"
        )
        return _reject(workflow_id, inputs, line)
    etag = inputs.etag if inputs.etag is not None else (inputs.stored.etag if inputs.stored else None)
    record = Record(workflow_id, dict(raw), template.name, etag, now)
    dag = dag_bytes(template.source, record, version)
    return _classify(workflow_id, inputs, record, dag, template.source)


def _classify(workflow_id: str, inputs: Inputs, record: Record, dag: bytes, template: bytes) -> Step:
    """KEEP: the file is already right; UPDATE_CONFIG: only the config changed (the file's trailer
    follows); WRITE: anything else (new, another template or its edit, another dagfleet version)."""
    stored = inputs.stored
    same_record = stored is not None and stored.digest() == record.digest()
    if inputs.current_dag == dag:
        return Step(workflow_id, Action.KEEP, record=None if same_record and stored.etag == record.etag else record)
    body = template_body(inputs.current_dag or b"")
    if stored is not None and not same_record and body.rstrip(b"\n") == template.rstrip(b"\n"):
        return Step(workflow_id, Action.UPDATE_CONFIG, record=record, dag=dag)
    return Step(workflow_id, Action.WRITE, record=record, dag=dag)


def make_plan(
    configs: dict[str, dict[str, Any] | None],
    inputs: Callable[[str], Inputs],
    manifest: dict[str, str],
    keep: set[str],
    library: TemplateLibrary,
    version: str,
    now: float,
    declared: Declared | None = None,
) -> Plan:
    """The whole fleet: one step per listed workflow, ``keep`` (e.g. duplicates) left alone,
    every other generated file pruned."""
    plan = Plan(keep=keep & set(manifest.values()))
    for workflow_id in sorted(configs):
        plan.steps.append(
            plan_workflow(workflow_id, configs[workflow_id], inputs(workflow_id), library, version, now, declared)
        )
    kept = plan.files()
    plan.prune = {name: wid for name, wid in sorted(manifest.items()) if name not in kept}
    return plan
