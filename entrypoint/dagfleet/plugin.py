"""Airflow plugin that pre-imports dagfleet where Airflow parses DAGs.

The DAG processor loads plugins once and then forks a child per DAG file. With dagfleet
already imported, each generated file costs about what a hand-written DAG costs instead of
re-importing dagfleet's config model in every child (see docs/benchmarks.md).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

import dagfleet.authoring  # noqa: F401 - the point of this plugin


class DagfleetPlugin(AirflowPlugin):
    name = "dagfleet"
