"""The chart harness runs only when asked (`make harness`, DAGFLEET_HARNESS=1): it takes minutes.

Without the variable its tests are deselected with one line at the end of the run, so `make test`
stays as fast as before; `.ci/run` runs `make harness` as its own step.
"""

from __future__ import annotations

import os

import pytest

from support.setaside import SetAside

_set_aside = SetAside("DESELECTED")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("DAGFLEET_HARNESS") == "1":
        return
    ours = [item for item in items if item.get_closest_marker("harness")]
    if ours:
        _set_aside.take(config, items, ours, "harness scenarios: run them with `make harness`")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _set_aside.summary(terminalreporter)
