"""Fault-suite plumbing: hooks keeping the fault ledger (its summary line ends the pytest output), and fixtures.

Every fault test asks for the ``fault`` fixture and names the fault(s) it injects:
``fault("HTTP 503 on the workflow list")``. A fault counts as survived when its test passed.
At the end of the session one line reports them, e.g.::

    fault suite: 412 faults tried, 412 survived (300 SIGKILLs)
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from support.faultledger import FaultLedger
from support.faultserver import FaultServer
from support.sandbox import Sandbox

LEDGER_KEY = pytest.StashKey[FaultLedger]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[LEDGER_KEY] = FaultLedger()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.config.stash[LEDGER_KEY].failed.add(item.nodeid)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    ledger = config.stash.get(LEDGER_KEY, None)
    if ledger is None or not ledger.tried:
        return
    lost = [
        f"  not survived: {name} ({nodeid})"
        for nodeid in sorted(ledger.failed & set(ledger.tried))
        for name in sorted({n for _, n in ledger.tried[nodeid]})
    ]
    for line in lost[:50]:
        terminalreporter.write_line(line)
    terminalreporter.write_line(ledger.summary(), bold=True, red=bool(lost), green=not lost)


Fault = Callable[..., None]


@pytest.fixture
def fault(request: pytest.FixtureRequest) -> Fault:
    """``fault(name, kind="fault", count=1)``: register the fault(s) this test injects."""
    ledger = request.config.stash[LEDGER_KEY]

    def register(name: str, kind: str = "fault", count: int = 1) -> None:
        ledger.add(request.node.nodeid, name, kind, count)

    return register


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """Fresh dags folder, cwd, HOME, TMPDIR and AIRFLOW_HOME; asserts at the end that only dags changed."""
    box = Sandbox(tmp_path)
    yield box
    box.assert_nothing_written_outside()


@pytest.fixture
def api() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
