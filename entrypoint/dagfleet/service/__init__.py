"""Processes and Airflow hooks: the CLI, watch, metrics, Fleet page, plugin, bundle, reference server,
task-pod start (docs/architecture.md).
"""

from __future__ import annotations
