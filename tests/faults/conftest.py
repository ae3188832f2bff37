"""Fault-suite plumbing: the fault ledger (its summary line ends the pytest output) and fixtures.

Every fault test asks for the ``fault`` fixture and names the fault(s) it injects:
``fault("HTTP 503 on the workflow list")``. A fault counts as survived when its test passed.
At the end of the session one line reports them, e.g.::

    fault suite: 412 faults tried, 412 survived (300 SIGKILLs)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.faultserver import FaultServer
from support.sandbox import Sandbox


@dataclass
class FaultLedger:
    tried: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # nodeid -> [(kind, name)]
    failed: set[str] = field(default_factory=set)

    def add(self, nodeid: str, name: str, kind: str = "fault", count: int = 1) -> None:
        self.tried.setdefault(nodeid, []).extend([(kind, name)] * count)

    def totals(self) -> tuple[int, int, Counter[str]]:
        tried = sum(len(v) for v in self.tried.values())
        survived = sum(len(v) for k, v in self.tried.items() if k not in self.failed)
        kinds: Counter[str] = Counter(kind for v in self.tried.values() for kind, _ in v)
        return tried, survived, kinds

    def summary(self) -> str:
        tried, survived, kinds = self.totals()
        extra = ", ".join(f"{n} {kind}s" for kind, n in sorted(kinds.items()) if kind != "fault")
        return f"fault suite: {tried} faults tried, {survived} survived" + (f" ({extra})" if extra else "")


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
