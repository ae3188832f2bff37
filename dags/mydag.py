"""dagfleet base DAG: `dagfleet sync` copies it to `<workflow_id>-mydag.py`, once per workflow.

The dag_id comes from this file's name and the DAG from the workflow's config (docs/config.md);
the logic lives in the dagfleet package (dagfleet.dagbuild).
"""

from __future__ import annotations

# The DAG processor pre-imports the top-level `airflow.*` imports of a DAG file once, before it
# forks to parse each file: naming the heavy ones here makes every generated file cheap to parse.
import airflow.providers.cncf.kubernetes.operators.pod  # KubernetesPodOperator
import airflow.sdk.definitions.decorators  # noqa: F401 - TaskFlow's @task
from airflow.sdk import DAG

from dagfleet.dagbuild import build_dag

dag: DAG = build_dag(__file__)
