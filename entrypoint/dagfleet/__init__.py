"""dagfleet: Apache Airflow 3 with one generated DAG per workflow, described by a config API."""

from __future__ import annotations

__version__ = "0.1.0"
