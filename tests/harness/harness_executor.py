"""The KubernetesExecutor of the harness's scheduler: Airflow's own code builds each task pod.

Everything up to the Kubernetes API call is the provider's: `execute_async` (executor_config →
pod override), `AirflowKubernetesScheduler.run_next` → `_build_pod_request` (the pod template
file, `workload_to_command_args`, `PodGenerator.construct_pod`). Only `run_pod_async` differs: the
pod is written as JSON into HARNESS_POD_OUTBOX, where the harness (tests/harness/kubelet.py) runs
it like a kubelet and answers with `<pod>.exit` (the main container's exit code). `sync` turns
those answers into the executor events a pod watcher would have produced.
"""

from __future__ import annotations

import json
import os
import queue
from pathlib import Path
from typing import Any

from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor
from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import AirflowKubernetesScheduler
from kubernetes.client import ApiClient

OUTBOX = Path(os.environ.get("HARNESS_POD_OUTBOX", "/opt/harness/outbox"))


class OutboxScheduler(AirflowKubernetesScheduler):
    """Builds pods exactly as the provider does; "creates" them by writing them to the outbox."""

    def __init__(self, kube_config: Any, scheduler_job_id: str, keys: dict[str, Any]) -> None:
        # No Kubernetes client and no pod watchers: nothing here talks to an API server.
        self.kube_config = kube_config
        self.scheduler_job_id = scheduler_job_id
        self.namespace = kube_config.kube_namespace
        self.supports_task_instance_uuid = False
        self.keys = keys
        self._current_key: Any = None

    def run_next(self, next_job: Any) -> None:
        self._current_key = next_job.key
        super().run_next(next_job)

    def run_pod_async(self, pod: Any, **kwargs: Any) -> None:
        body = ApiClient().sanitize_for_serialization(pod)
        name = body["metadata"]["name"]
        self.keys[name] = self._current_key
        tmp = OUTBOX / f".{name}.tmp"
        tmp.write_text(json.dumps(body))
        tmp.replace(OUTBOX / f"{name}.json")


class HarnessKubernetesExecutor(KubernetesExecutor):
    def start(self) -> None:
        self.scheduler_job_id = str(self.job_id)
        self.task_queue = queue.Queue()
        self.result_queue = queue.Queue()
        self.pod_keys: dict[str, Any] = {}
        OUTBOX.mkdir(parents=True, exist_ok=True)
        self.kube_scheduler = OutboxScheduler(self.kube_config, self.scheduler_job_id, self.pod_keys)

    def sync(self) -> None:
        while True:
            try:
                job = self.task_queue.get_nowait()
            except queue.Empty:
                break
            self.kube_scheduler.run_next(job)
            self.task_queue.task_done()
        for answer in OUTBOX.glob("*.exit"):
            key = self.pod_keys.pop(answer.stem, None)
            if key is not None:
                (self.success if answer.read_text().strip() == "0" else self.fail)(key)
            answer.unlink()

    def end(self) -> None:
        self.task_queue = None
        self.result_queue = None

    def try_adopt_task_instances(self, tis: Any) -> Any:
        return tis  # nothing to adopt: no pods exist anywhere
