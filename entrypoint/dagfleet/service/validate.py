"""``dagfleet validate``: check a workflows file or the live config API, offline of Airflow.

For the config team's CI: workflow IDs (valid, unique), the fleet fields of every config, that
its template exists and that its ``spec`` satisfies the template's schema. One line per problem;
nothing is written anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagfleet.fleet import workflow_ids
from dagfleet.fleet.check import check_workflow
from dagfleet.fleet.config import Declared
from dagfleet.fleet.errors import ConfigApiError, WorkflowConfigError, WorkflowIdError
from dagfleet.fleet.template_library import TemplateLibrary


@dataclass
class Validation:
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verdict = "all valid" if not self.problems else f"{len(self.problems)} problem(s)"
        return f"validated {self.checked} workflow(s): {verdict}"


def validate_entries(
    entries: Iterable[tuple[Any, Any]], library: TemplateLibrary, declared: Declared | None = None
) -> Validation:
    """``(workflow_id, raw config)`` pairs, as a file or the API gives them; with ``declared``, a
    workflow's pool and executor must be among the deployment's (DAGFLEET_POOLS, DAGFLEET_EXECUTORS)."""
    result = Validation()
    pairs = list(entries)
    ids = []
    for workflow_id, _ in pairs:
        try:
            ids.append(workflow_ids.validate(workflow_id))
        except WorkflowIdError as err:
            result.problems.append(f"{err} (fix the ID)")
    dupes = workflow_ids.duplicates(ids)
    result.problems.extend(
        f"workflow {d!r}: its ID appears more than once (IDs must be unique, case-insensitively)" for d in sorted(dupes)
    )
    valid = set(ids)
    for workflow_id, raw in pairs:
        if workflow_id not in valid:
            continue
        result.checked += 1
        try:
            check_workflow(workflow_id, raw, library, declared)
        except WorkflowConfigError as err:
            result.problems.extend(getattr(err, "lines", None) or [str(err)])  # one line per problem
    return result


def validate_file(path: Path, library: TemplateLibrary, declared: Declared | None = None) -> Validation:
    from dagfleet.service.server import load_workflows

    return validate_entries(load_workflows(path), library, declared)


def validate_api(client: Any, library: TemplateLibrary, declared: Declared | None = None) -> Validation:
    """The live config API: the list, then every config the list does not carry."""
    listing = client.list_workflows()
    pairs: list[tuple[Any, Any]] = []
    errors: list[str] = list(listing.problems)
    for entry in listing.entries:
        config = entry.config
        if config is None:
            try:
                config = client.get_config(entry.workflow_id).config
            except ConfigApiError as err:
                errors.append(f"workflow {entry.workflow_id!r}: {err}")
                continue
        pairs.append((entry.workflow_id, config))
    result = validate_entries(pairs, library, declared)
    result.problems[:0] = errors
    return result
