"""dagfleet: Apache Airflow 3 with one generated DAG per workflow, described by a config API.

The public, stable authoring API for templates (base DAGs) is what ``__all__`` names; see
docs/templates.md. Everything else in the package is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dagfleet.fleet import __version__

__all__ = [
    "PodOperator",
    "Workflow",
    "__version__",
    "item_kwargs",
    "item_name",
    "pod_kwargs",
    "workflow",
]

# Imported on first use: the CLI must not pay for pydantic, the Kubernetes client or Airflow.
_LAZY = {
    "Workflow": "dagfleet.authoring.workflow",
    "workflow": "dagfleet.authoring.workflow",
    "item_kwargs": "dagfleet.authoring.workflow",
    "item_name": "dagfleet.authoring.workflow",
    "pod_kwargs": "dagfleet.authoring.workflow",
    "PodOperator": "dagfleet.authoring.operator",
}

if TYPE_CHECKING:
    from dagfleet.authoring.operator import DagfleetPodOperator as PodOperator
    from dagfleet.authoring.workflow import Workflow, item_kwargs, item_name, pod_kwargs, workflow


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dagfleet' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_LAZY[name])
    value = getattr(module, "DagfleetPodOperator" if name == "PodOperator" else name)
    globals()[name] = value
    return value
