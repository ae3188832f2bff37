"""KubernetesExecutor task pods, the parse-time half: the pod override a generated DAG's tasks carry.

Under the KubernetesExecutor every task gets ``executor_config={"pod_override": ...}`` whose
container ``base`` has ``DAGFLEET_TASK_WORKFLOW``: the stored record the DAG was built from and the
DAG file, as the parse read them (``Workflow`` carries both: nothing is read again here). The task
pod writes them back before the task runs (dagfleet.service.taskpod; docs/helm.md).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from dagfleet.fleet.settings import TASK_WORKFLOW
from dagfleet.fleet.store import Record

log = logging.getLogger(__name__)

ENV_VAR = TASK_WORKFLOW.name
# Kubernetes keeps a whole Pod object under ~1.5 MB; a config this big is certainly a mistake.
MAX_PAYLOAD = 256 * 1024


def uses_kubernetes_executor() -> bool:
    """Whether Airflow's configured executor list names the KubernetesExecutor."""
    from airflow.configuration import conf

    return "KubernetesExecutor" in conf.get("core", "executor", fallback="")


def task_defaults(workflow_id: str, record: Record | None, dag: bytes | None) -> dict[str, Any]:
    """``default_args`` entries for the tasks of ``workflow_id``: the pod override, or nothing.

    ``record`` is the stored record the parse built the config from (None: the config came from
    the cache or the live API, and the task pod takes the fallback path); ``dag`` the DAG file the
    parse read. Only under the KubernetesExecutor; other executors ignore executor_config."""
    if not uses_kubernetes_executor():
        return {}
    if record is None or dag is None:
        log.warning("workflow %r: config not stored on disk; its task pods will sync to find it", workflow_id)
        return {}
    payload = json.dumps(
        {"workflow_id": workflow_id, "record": record.to_json(), "dag": base64.b64encode(dag).decode()},
        sort_keys=True,
        separators=(",", ":"),
    )
    if len(payload) > MAX_PAYLOAD:
        log.warning("workflow %r: config over %d bytes; its task pods will sync to find it", workflow_id, MAX_PAYLOAD)
        return {}
    from kubernetes.client import models as k8s

    override = k8s.V1Pod(
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", env=[k8s.V1EnvVar(name=ENV_VAR, value=payload)])])
    )
    return {"executor_config": {"pod_override": override}}
