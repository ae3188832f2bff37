"""The JSON bounds (dagfleet.api.jsonlimits), and the list parser that applies them per entry."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from dagfleet.api import jsonlimits
from dagfleet.api.client import parse_list_body
from dagfleet.fleet.errors import ConfigApiError

DEEP = "[" * 5000 + "]" * 5000


def test_within_the_bounds_is_plain_json() -> None:
    text = json.dumps({"a": [1, 2.5, "x", None, True, {"b": 10**99}]})
    assert jsonlimits.loads(text) == json.loads(text)
    nested: object = []
    for _ in range(jsonlimits.MAX_DEPTH - 1):
        nested = [nested]
    assert jsonlimits.loads(json.dumps(nested)) == nested  # exactly MAX_DEPTH levels


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (DEEP, "nested deeper than the 64 levels"),
        ("[" * 65 + "]" * 65, "nested deeper than the 64 levels"),
        ("1" + "0" * 100, "a 101-digit number (at most 100 digits)"),
        ('{"n": -' + "9" * 5000 + "}", "a 5,000-digit number"),
    ],
)
def test_beyond_a_bound_is_one_clear_error(text: str, says: str) -> None:
    with pytest.raises(jsonlimits.JsonLimitError, match=re.escape(says)):
        jsonlimits.loads(text)


def test_split_array_skips_strings_and_nesting() -> None:
    text = ' [ "a,]", {"id": "b", "config": {"x": [1, {"y": "}"}]}}, 3 ] '
    assert [json.loads(e) for e in jsonlimits.split_array(text) or []] == [
        "a,]",
        {"id": "b", "config": {"x": [1, {"y": "}"}]}},
        3,
    ]
    assert jsonlimits.split_array("[]") == []
    assert jsonlimits.split_array('{"a": 1}') is None
    assert jsonlimits.split_array("[1] trailing") is None
    assert jsonlimits.split_array("[1, 2") is None


def test_find_id_reads_the_entrys_own_id_only() -> None:
    assert jsonlimits.find_id('{"config": {"id": "inner"}, "id": "outer"}') == "outer"
    assert jsonlimits.find_id('{"id": "a\\u0301"}') == "a\u0301"
    assert jsonlimits.find_id('{"id": 5}') is None
    assert jsonlimits.find_id(DEEP) is None


def test_a_list_entry_beyond_a_bound_is_that_entry_only() -> None:
    body = '["a", {"id": "b", "config": {"p": ' + DEEP + "}}, " + DEEP + ', "c"]'
    entries, problems, unreadable = parse_list_body(body.encode())
    assert [(e.workflow_id, e.problem is not None) for e in entries] == [("a", False), ("b", True), ("c", False)]
    assert unreadable == 1
    assert problems == ["entry #2 of the workflow list is nested deeper than the 64 levels an answer may have: "
                        "skipped; nothing is pruned"]  # fmt: skip


@pytest.mark.parametrize("body", [DEEP, '{"workflows": ' + DEEP + "}", "[1" + "0" * 5000 + "]"])
def test_a_list_that_cannot_be_read_is_one_error(body: str) -> None:
    with pytest.raises(ConfigApiError, match="config API sent a workflow list that"):
        parse_list_body(body.encode())


def test_the_depth_scan_skips_strings() -> None:
    assert jsonlimits.text_depth('{"a": "[[[[{{{{", "b": [1, [2]], "c": "\\"]]]"}') == 3
    assert jsonlimits.text_depth("5") == 0


def test_the_depth_bound_does_not_depend_on_the_recursion_limit() -> None:
    """With the recursion limit raised far above the document's depth, a document deeper than the
    bound is still refused before ``json`` parses it (``json`` would recurse 200,000 levels in C)."""
    script = (
        "import sys; sys.setrecursionlimit(10**6)\n"
        "from dagfleet.api import jsonlimits\n"
        "try:\n"
        "    jsonlimits.loads('[' * 200_000 + ']' * 200_000)\n"
        "except jsonlimits.JsonLimitError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (done.returncode, done.stderr[-500:])
    assert "nested deeper than the 64 levels" in done.stdout
