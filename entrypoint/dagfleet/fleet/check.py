"""One workflow's raw config checked in full: the fleet fields, its template, its spec against the
template's schema. Sync plans with it, ``dagfleet validate`` and ``render`` run it, and a DAG whose
config came from the API or the cache at parse time is checked with it (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from dagfleet.fleet.config import Declared, WorkflowConfig, config_error, validate_config
from dagfleet.fleet.errors import WorkflowConfigError
from dagfleet.fleet.scheduling import asset_problems
from dagfleet.fleet.steps import budget
from dagfleet.fleet.template_library import Template, TemplateError, TemplateLibrary


def _template_problem(workflow_id: str, raw: dict[str, Any], err: TemplateError) -> WorkflowConfigError:
    field_name = "template" if "template" in raw else "template (DAGFLEET_DEFAULT_TEMPLATE)"
    return config_error(workflow_id, [(field_name, str(err))])


def check_workflow(workflow_id: str, raw: Any, library: TemplateLibrary, declared: Declared | None = None) -> Template:
    """Validate one raw config: the fleet fields (with ``declared``: its pool and executor exist),
    its template exists, its spec against the template's schema. Returns the template, or raises
    ``WorkflowConfigError`` (one line)."""
    with budget():  # one workflow's schemas: at most MAX_STEPS keyword evaluations in all
        return check_config(workflow_id, validate_config(workflow_id, raw, declared), raw, library)


def check_config(workflow_id: str, config: WorkflowConfig, raw: Any, library: TemplateLibrary) -> Template:
    """``check_workflow`` for a config already validated from ``raw``: its assets, its template, its spec."""
    with budget():
        refused = asset_problems(config)  # imports Airflow, only when the config names assets
        if refused:
            raise config_error(workflow_id, refused)
        try:
            template = library.get(config.template)
        except TemplateError as err:
            raise _template_problem(workflow_id, raw, err) from None
        problems = template.spec_problems(raw.get("spec", {}))
    if problems:
        raise config_error(workflow_id, problems)
    return template
