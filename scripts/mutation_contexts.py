"""pytest plugin of ``make mutation``'s coverage run (``-p mutation_contexts``): which test runs which line.

Each test's node ID becomes coverage's dynamic context in the pytest process and, through
``MUTATION_CONTEXT`` (the static context of the rcfile ``scripts/mutation.py`` writes), in every
``dagfleet`` a test starts as a subprocess. Each test's duration goes to ``MUTATION_DURATIONS`` (a
JSON file), so a mutant runs its covering tests fastest first; a test that failed (a flaky one on a
loaded machine) is left out of that file, so no mutant is counted as killed by it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from pathlib import Path

import coverage
import pytest

_durations: dict[str, float] = {}
_failed: set[str] = set()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    del nextitem
    cov = coverage.Coverage.current()
    os.environ["MUTATION_CONTEXT"] = item.nodeid
    if cov is not None:
        cov.switch_context(item.nodeid)
    started = time.monotonic()
    try:
        return (yield)
    finally:
        _durations[item.nodeid] = time.monotonic() - started
        os.environ.pop("MUTATION_CONTEXT", None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        _failed.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    del session, exitstatus
    target = os.environ.get("MUTATION_DURATIONS")
    if target:
        passed = {test: seconds for test, seconds in _durations.items() if test not in _failed}
        Path(target).write_text(json.dumps(passed, indent=1), encoding="utf-8")
