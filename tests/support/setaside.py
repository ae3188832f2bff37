"""Take a folder's tests out of a run and say so in one line at its end (instead of N skip lines)."""

from __future__ import annotations

import pytest


class SetAside:
    """Deselects tests during collection; ``summary`` prints one ``<WORD> <count> <what>`` line each."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.lines: list[str] = []

    def take(self, config: pytest.Config, items: list[pytest.Item], ours: list[pytest.Item], what: str) -> None:
        """Remove ``ours`` from ``items``; ``what`` completes the line, e.g. "image tests: no Docker"."""
        items[:] = [item for item in items if item not in ours]
        config.hook.pytest_deselected(items=ours)
        self.lines.append(f"{len(ours)} {what}")

    def summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for line in self.lines:
            terminalreporter.write_line(f"{self.word} {line}", yellow=True)
