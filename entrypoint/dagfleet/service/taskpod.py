"""KubernetesExecutor task pods, the pod-start half: run a task against the DAG and config the DAG
processor parsed (the parse-time half, the pod override, is dagfleet.authoring.podoverride).

The design (docs/helm.md, "KubernetesExecutor task pods"):

* At parse time, under the KubernetesExecutor, every task of a generated DAG gets
  ``executor_config={"pod_override": <a pod whose container "base" has DAGFLEET_TASK_WORKFLOW>}``.
  The variable holds ``{"workflow_id": …, "record": <the stored record the DAG was built from>,
  "dag": <the generated DAG file, base64>}`` (dagfleet.fleet.store owns both formats).
  The pod override is part of the serialized DAG, so the scheduler hands each task pod exactly the
  config that the DAG processor parsed, whatever the config API says by then.
* A task pod starts with ``dagfleet task -- <Airflow's args>`` (the chart's pod template sets the
  command; the KubernetesExecutor only sets the args). ``task`` writes that one workflow's DAG file
  (the base DAG shipped in the image) and its stored config into the pod's empty DAG folder, then
  execs the command through ``/entrypoint``: no config API call, so an API outage never fails a
  task, and the pod needs no API key. With the dagfleet bundle (issue #30) it also writes them as
  the snapshot of the run's bundle version (named in the workload Airflow passes in the args), which
  is where the task's parse looks.
* When the variable is absent (a DAG serialized before this existed, or an executor_config that
  replaced ours), ``task`` falls back to one bounded sync when the pod has a config API
  (``workers.syncFallback`` in the chart), else says so on one line and starts the task anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace

from dagfleet.fleet import shards, versions, workflow_ids
from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.settings import TASK_WORKFLOW, Settings, read_setting
from dagfleet.fleet.store import Record

log = logging.getLogger(__name__)

ENV_VAR = TASK_WORKFLOW.name  # set at parse time by dagfleet.authoring.podoverride


def payload_from_env(environ: Mapping[str, str]) -> tuple[Record, bytes] | None:
    """(record, DAG file) from ``DAGFLEET_TASK_WORKFLOW``, None when unset; raises when malformed."""
    text = read_setting(environ, ENV_VAR)
    if not text:
        return None
    problem = f"{ENV_VAR} is not the JSON object the DAG set; re-parse the DAG"
    try:
        payload = json.loads(text)
        workflow_id = payload["workflow_id"]
        dag = base64.b64decode(payload["dag"], validate=True)
        record = Record.from_json(workflow_id, payload["record"]) if isinstance(workflow_id, str) else None
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise DagfleetError(problem) from None
    if record is None:
        raise DagfleetError(problem)
    workflow_ids.validate(record.workflow_id)
    return record, dag


def materialize(settings: Settings, record: Record, dag: bytes) -> None:
    """Write the workflow's DAG file and record, as `dagfleet sync` wrote them where the DAG was parsed."""
    store = settings.store
    store.write_record(record)
    store.write_dag(record.workflow_id, dag)


def bundle_version(args: Sequence[str]) -> tuple[str, str] | None:
    """(bundle name, version) of the run from the workload Airflow put in the args
    (``execute_workload --json-string '{"bundle_info": {"name": …, "version": …}}'``), or None."""
    if "--json-string" not in args or args.index("--json-string") + 1 >= len(args):
        return None
    try:
        workload = json.loads(args[args.index("--json-string") + 1])
        version, name = workload["bundle_info"]["version"], workload["bundle_info"].get("name")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(version, str) or not versions.VERSION_RE.fullmatch(version):
        return None
    return (name if isinstance(name, str) else shards.BUNDLE_NAME), version


def prepare(settings: Settings, environ: Mapping[str, str] | None = None, args: Sequence[str] = ()) -> str:
    """Make the task's DAG available; returns how ("pod-override", "sync" or "none").

    With the dagfleet bundle the pod override's DAG and record also become the run's version
    snapshot (the override belongs to the task's DAG version, so they are that version's)."""
    payload = payload_from_env(os.environ if environ is None else environ)
    if payload is not None:
        record, dag = payload
        materialize(settings, record, dag)
        pinned = bundle_version(args)
        if pinned is not None:
            versions.materialize(settings.dags_folder, pinned[1], record, dag, bundle=pinned[0])
        log.info("task pod: workflow %r materialized from the config the DAG was parsed with", record.workflow_id)
        return "pod-override"
    if settings.api_url or settings.static_workflows:
        from dagfleet.sync.apply import FleetSync

        log.warning("task pod: no %s (DAG parsed without it): one bounded sync instead", ENV_VAR)
        # One attempt per request: a task start must not wait out the sidecar's retry budget.
        report = FleetSync(replace(settings, retries=1)).sync()
        log.info("task pod: %s", report.summary())
        return "sync"
    log.error(
        "task pod: no %s and no config API to fall back to: the task's DAG file may be missing; "
        "re-parse the DAG (dag-processor) or set workers.syncFallback",
        ENV_VAR,
    )
    return "none"


def command(args: Sequence[str]) -> list[str]:
    """The command after ``--``: what the KubernetesExecutor put in the container's args."""
    if not args:
        raise DagfleetError("no command given: dagfleet task -- python -m airflow.sdk.execution_time.execute_workload")
    return list(args)
