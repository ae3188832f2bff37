"""Airflow plugin of dagfleet: the Fleet page, and a pre-import of dagfleet where Airflow parses DAGs.

The DAG processor loads plugins once and then forks a child per DAG file. With dagfleet
already imported, each generated file costs about what a hand-written DAG costs instead of
re-importing dagfleet's config model in every child (see docs/benchmarks.md). It also registers
dagfleet's param-schema dialect (``dagfleet.fleet.schemas``) with jsonschema in every Airflow process that
loads plugins (the api-server validates a trigger's conf with it; docs/config.md).

The Fleet page (``dagfleet.service.fleetui``, docs/operations.md) is a FastAPI app plus a navigation
entry; the app is built only when the api-server asks for it, so other components import
neither FastAPI nor Airflow's API security for it.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

import dagfleet.authoring.workflow  # the point of this plugin
import dagfleet.fleet.schemas  # noqa: F401 - registers the RE2 param dialect where Airflow validates params
from dagfleet.service import fleetui


class DagfleetPlugin(AirflowPlugin):
    name = "dagfleet"
    external_views = [fleetui.EXTERNAL_VIEW]  # noqa: RUF012 - the AirflowPlugin interface

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return [fleetui.fastapi_app()]
