"""dagfleet: Apache Airflow 3 with one generated DAG per workflow, described by a config API.

The public, stable authoring API for templates (base DAGs) is what ``__all__`` names; see
docs/templates.md. Everything else in the package is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
    "Workflow": "dagfleet.authoring",
    "workflow": "dagfleet.authoring",
    "item_kwargs": "dagfleet.authoring",
    "item_name": "dagfleet.authoring",
    "pod_kwargs": "dagfleet.authoring",
    "PodOperator": "dagfleet.k8s",
}

if TYPE_CHECKING:
    from dagfleet.authoring import Workflow, item_kwargs, item_name, pod_kwargs, workflow
    from dagfleet.k8s import DagfleetPodOperator as PodOperator


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'dagfleet' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(_LAZY[name])
    value = getattr(module, "DagfleetPodOperator" if name == "PodOperator" else name)
    globals()[name] = value
    return value
