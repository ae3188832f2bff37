"""The step budget of one workflow's validation (docs/config.md, "Sizes and work").

Kept apart from ``dagfleet.fleet.schemas`` so that a sync with no schemas never imports jsonschema:
``budget()`` opens the budget around one workflow, ``tick()`` spends one step (every keyword a
dagfleet validator evaluates) and raises ``BudgetExceeded`` once it is spent.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

MAX_STEPS = 100_000
_local = threading.local()


class BudgetExceeded(Exception):
    """A workflow's schemas took more than ``MAX_STEPS`` keyword evaluations."""


@contextlib.contextmanager
def budget(steps: int = MAX_STEPS) -> Iterator[None]:
    """One workflow's validation: at most ``steps`` steps (nested: the outer budget counts)."""
    if getattr(_local, "left", None) is not None:
        yield
        return
    _local.left = steps
    try:
        yield
    finally:
        _local.left = None


def tick() -> None:
    """Spend one step of the open budget (none open, e.g. inside Airflow: free)."""
    left = getattr(_local, "left", None)
    if left is None:
        return
    if left <= 0:
        raise BudgetExceeded
    _local.left = left - 1
