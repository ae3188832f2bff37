"""The chart's helpers stay readable: no define over 50 lines (docs/architecture.md names the rule)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.chart import CHART_DIR

pytestmark = pytest.mark.helm  # runs with the chart's tests (no helm needed to read the files)

MAX_LINES = 50
TAG = re.compile(r"\{\{-?\s*(if|with|range|define|block|end)\b")


def defines(text: str) -> dict[str, int]:
    """define name -> its length in lines, from its `define` to its matching `end`."""
    found: dict[str, int] = {}
    depth, current = 0, None
    for number, line in enumerate(text.split("\n")):
        for tag in TAG.finditer(line):
            if tag.group(1) == "end":
                depth -= 1
                if depth == 0 and current is not None:
                    found[current[0]] = number - current[1] + 1
                    current = None
                continue
            if tag.group(1) == "define" and depth == 0:
                current = (re.search(r'define\s+"([^"]+)"', line[tag.start() :]).group(1), number)
            depth += 1
    return found


def all_defines() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(Path(CHART_DIR, "templates").rglob("*")):
        if path.is_file():
            found |= defines(path.read_text(encoding="utf-8"))
    return found


def test_the_counter_sees_a_define_and_its_end() -> None:
    text = '{{- define "a" -}}\n{{- if .x }}\ny\n{{- end }}\n{{- end }}\n{{- define "b" -}}\nz\n{{- end }}\n'
    assert defines(text) == {"a": 5, "b": 3}


def test_no_define_is_over_50_lines() -> None:
    found = all_defines()
    assert "dagfleet.workerPod" in found and "dagfleet.validate" in found
    assert {name: n for name, n in found.items() if n > MAX_LINES} == {}
