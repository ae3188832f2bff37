"""What a workflow ID may be: a valid Airflow dag_id that is also a safe file name."""

from __future__ import annotations

import re
from collections.abc import Iterable

from dagfleet.fleet.errors import WorkflowIdError

MAX_LENGTH = 200  # Airflow allows 250 for a dag_id; the file name adds store.SUFFIX and NAME_MAX is 255.
_ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# What a template (base DAG) may be called: the one rule for config, settings and the template library.
TEMPLATE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def validate(workflow_id: object) -> str:
    """Return the ID unchanged, or raise ``WorkflowIdError`` saying why it cannot be a DAG."""
    if not isinstance(workflow_id, str):
        raise WorkflowIdError(f"workflow ID {ascii(workflow_id)[:60]} is not a string")
    # Escaped, ASCII only: a Cyrillic look-alike shows as '\u0430cme', never as 'acme'.
    shown = ascii(workflow_id) if len(workflow_id) <= 60 else ascii(workflow_id[:60]) + "..."
    if not workflow_id:
        raise WorkflowIdError("workflow ID '' is empty")
    if len(workflow_id) > MAX_LENGTH:
        raise WorkflowIdError(
            f"workflow ID {shown} is {len(workflow_id)} characters long; at most {MAX_LENGTH} are allowed"
        )
    if not _ALLOWED.fullmatch(workflow_id):
        raise WorkflowIdError(
            f"workflow ID {shown} is not allowed: use ASCII letters, digits, '_', '.' and '-', "
            "starting with a letter or digit (no path separators, spaces or other characters)"
        )
    if ".." in workflow_id:
        raise WorkflowIdError(f"workflow ID {shown} contains '..'")
    return workflow_id


def duplicates(workflow_ids: Iterable[str]) -> set[str]:
    """IDs that occur more than once, case-insensitively (file names must not collide anywhere)."""
    seen: dict[str, str] = {}
    dupes: set[str] = set()
    for workflow_id in workflow_ids:
        key = workflow_id.lower()
        if key in seen:
            dupes.update({workflow_id, seen[key]})
        else:
            seen[key] = workflow_id
    return dupes
