"""A template of the chart harness (tests/harness/test_pinning.py): what did each task run with?

``first`` waits until the Airflow Variable ``dagfleet_pin_gate`` exists (the test sets it once it
has changed the workflow), then ``first`` and ``second`` each return "<spec.value>/<MARK>" as their
XCom, read back through the REST API whichever executor ran them. The test edits ``MARK`` in the
templates ConfigMap to change the template.
"""

from __future__ import annotations

import time

from airflow.sdk import DAG, Variable, task

from dagfleet import workflow

MARK = "t1"
GATE = "dagfleet_pin_gate"
GATE_TIMEOUT = 600
wf = workflow(__file__)


def seen() -> str:
    return f"{wf.spec['value']}/{MARK}"


with DAG(**wf.dag_args()) as dag:

    @task
    def first() -> str:
        deadline = time.monotonic() + GATE_TIMEOUT
        while Variable.get(GATE, default=None) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Airflow Variable {GATE} was not set within {GATE_TIMEOUT} s")
            time.sleep(1)
        return seen()

    @task
    def second() -> str:
        return seen()

    first() >> second()
