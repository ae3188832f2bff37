"""The chart harness runs only when asked (`make harness`, DAGFLEET_HARNESS=1): it takes minutes.

Without the variable its tests are deselected with one line at the end of the run, so `make test`
stays as fast as before; `.ci/run` runs `make harness` as its own step.

A test that takes the `release` fixture runs once per scenario (`values/<scenario>.yaml`): every
scenario by default, or the ones `@pytest.mark.scenarios("local", "celery")` names. One release
runs at a time (2 cores): tests are grouped by scenario, every test of a scenario shares its
started release, and the release stops before the next scenario starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import release as harness

from support.setaside import SetAside

SCENARIOS = ("local", "celery", "kubernetes", "pgbouncer", "shards")
_set_aside = SetAside("DESELECTED")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenarios(*names): the harness scenarios a test runs in (default: all)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "release" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("scenarios")
        metafunc.parametrize("release", marker.args if marker else SCENARIOS, indirect=True)


def _scenario_order(item: pytest.Item) -> int:
    callspec = getattr(item, "callspec", None)
    name = callspec.params.get("release") if callspec else None
    return SCENARIOS.index(name) if name in SCENARIOS else len(SCENARIOS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DAGFLEET_HARNESS") == "1":
        items.sort(key=_scenario_order)  # stable: module order within a scenario
        return
    ours = [item for item in items if item.get_closest_marker("harness")]
    if ours:
        _set_aside.take(config, items, ours, "harness scenarios: run them with `make harness`")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _set_aside.summary(terminalreporter)


@pytest.fixture(scope="session")
def releases() -> Iterator[Callable[[str], harness.Release]]:
    """Start a scenario's release on first use; stop the previous one first (one at a time)."""
    running: dict[str, harness.Release] = {}

    def get(scenario: str) -> harness.Release:
        if scenario not in running:
            for other in running.values():
                other.close()
            running.clear()
            started = harness.render(scenario)
            try:
                harness.start(started)
            except BaseException:
                started.close()
                raise
            running[scenario] = started
        return running[scenario]

    yield get
    for release in running.values():
        release.close()


@pytest.fixture
def release(request: pytest.FixtureRequest, releases: Callable[[str], harness.Release]) -> harness.Release:
    return releases(request.param)
