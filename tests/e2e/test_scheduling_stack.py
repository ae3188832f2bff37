"""End to end (issue #29): scheduling controls in the `make run` stack, the `demo` template unchanged.

One real `airflow standalone` (scheduler, dag-processor, triggerer, api-server) behind
scripts/devstack.py, with pools declared in a pools file and a webhook connection in the
environment:

- workflow A (`producer`, in pool `tenant_a`) declares an outlet; workflow B (`consumer`) is
  scheduled on that asset: a run of A makes Airflow's scheduler start a run of B;
- B's `on_success` and C's (`failing`) `on_failure` notifiers post to a real loopback webhook;
- D (`lost`) names an undeclared pool: sync rejects it on one line, the others are unaffected;
- E (`late`) has a deadline alert one second after its run is queued: the run takes longer, so
  Airflow's scheduler marks the deadline missed and the LocalExecutor runs dagfleet's callback,
  which posts `deadline_missed` to the webhook.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from support.fleet import write_workflows
from support.stack import Airflow, devstack
from support.wait import wait_until
from support.webhook import webhook_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]

ORDERS = "s3://bucket/tenant-a/orders"
HOOK = {"connection": "e2e_hook"}
WORKFLOWS = {
    "producer": {"outlets": [ORDERS], "pool": "tenant_a", "priority_weight": 5},
    "consumer": {"schedule": {"assets": [ORDERS]}, "notify": {"on_success": HOOK}},
    "failing": {"notify": {"on_failure": HOOK}},
    "lost": {"pool": "tenant_z"},
    "late": {"deadline": {"after": {"seconds": 1}, **HOOK}},
}
POOLS = {"tenant_a": {"slots": 2, "description": "tenant A"}}


@pytest.fixture(scope="module")
def webhook() -> Iterator[Any]:
    with webhook_receiver() as server:
        yield server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, webhook: Any) -> Iterator[Airflow]:
    tmp = tmp_path_factory.mktemp("sched-stack")
    workflows_file = tmp / "workflows.yaml"
    write_workflows(workflows_file, WORKFLOWS)
    pools = tmp / "pools.json"
    pools.write_text(json.dumps(POOLS))
    hook = f"http://127.0.0.1:{webhook.server_port}/hooks/e2e"
    with devstack(tmp, workflows_file, 2, "--pools", str(pools), AIRFLOW_CONN_E2E_HOOK=hook) as airflow:
        yield airflow


def _events(webhook: Any, dag_id: str, event: str) -> list[dict[str, Any]]:
    return [body for _, body in webhook.received if (body["dag_id"], body["event"]) == (dag_id, event)]


def test_a_producer_run_triggers_the_consumer_through_its_asset(stack: Airflow, webhook: Any) -> None:
    for dag_id in ("producer", "consumer"):
        wait_until(f"DAG {dag_id}", lambda d=dag_id: stack.dag_visible(d), 180)
    stack.api("PATCH", "/dags/consumer", json={"is_paused": False})
    assert stack.api("GET", "/dags/consumer/dagRuns")["total_entries"] == 0

    stack.run_to_completion("producer", {})

    def consumer_run() -> dict[str, Any] | None:
        runs = stack.api("GET", "/dags/consumer/dagRuns")["dag_runs"]
        return next((r for r in runs if r["state"] == "success"), None)

    run = wait_until("the consumer's asset-triggered run", consumer_run, 180, every=2)
    assert run["run_type"] == "asset_triggered"
    events = stack.api("GET", "/assets/events", params={"source_dag_id": "producer"})["asset_events"]
    assert [e["uri"] for e in events] == [ORDERS]
    assert events[0]["source_task_id"] == "summarize"  # the demo template's leaf task, nothing else
    wait_until("consumer's on_success notification", lambda: _events(webhook, "consumer", "on_success"), 120)


def test_the_producer_ran_in_its_declared_pool(stack: Airflow) -> None:
    pool = stack.api("GET", "/pools/tenant_a")
    assert (pool["slots"], pool["description"]) == (2, "tenant A")
    runs = stack.api("GET", "/dags/producer/dagRuns")["dag_runs"]
    assert runs, "run the asset test first"
    tis = stack.api("GET", f"/dags/producer/dagRuns/{runs[0]['dag_run_id']}/taskInstances")["task_instances"]
    assert {(t["pool"], t["priority_weight"] >= 5, t["state"]) for t in tis} == {("tenant_a", True, "success")}


def test_a_failed_run_notifies_its_webhook(stack: Airflow, webhook: Any) -> None:
    wait_until("DAG failing", lambda: stack.dag_visible("failing"), 180)
    run_id = stack.trigger("failing", {"items": [{"name": "x", "secret_set": "undeclared"}]})
    assert stack.finished("failing", run_id)["state"] == "failed"
    sent = wait_until("failing's on_failure notification", lambda: _events(webhook, "failing", "on_failure"), 120)
    assert (sent[0]["run_id"], sent[0]["state"]) == (run_id, "failed")


def test_an_undeclared_pool_is_rejected_alone(stack: Airflow) -> None:
    def lost_error() -> list[dict[str, Any]]:
        errors = stack.api("GET", "/importErrors")["import_errors"]
        return [e for e in errors if "lost-mydag.py" in e["filename"]]

    errors = wait_until("the lost workflow's import error", lost_error, 180)
    assert (
        "config field 'pool': pool 'tenant_z' is not declared (declared: default_pool, tenant_a)"
        in (errors[0]["stack_trace"])
    )
    assert stack.api("GET", "/importErrors")["total_entries"] == 1


def test_a_run_past_its_deadline_calls_the_deadline_webhook(stack: Airflow, webhook: Any) -> None:
    wait_until("DAG late", lambda: stack.dag_visible("late"), 180)
    run_id = stack.trigger("late", {})
    assert stack.finished("late", run_id)["state"] == "success"  # a deadline alerts, it does not fail the run
    sent = wait_until("late's deadline notification", lambda: _events(webhook, "late", "deadline_missed"), 120)
    assert [body["run_id"] for body in sent] == [run_id]
    assert sent[0]["reason"].startswith("not finished by its deadline ")
