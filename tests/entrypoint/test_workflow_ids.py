from __future__ import annotations

import pytest

from dagfleet.fleet import store, workflow_ids
from dagfleet.fleet.errors import WorkflowIdError


@pytest.mark.parametrize("good", ["a", "tenant_1", "Customer-42.eu", "x" * workflow_ids.MAX_LENGTH, "9lives"])
def test_valid_ids_are_kept_unchanged(good: str) -> None:
    assert workflow_ids.validate(good) == good
    assert store.workflow_id_from_file(store.dag_file_name(good)) == good


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("../x", "not allowed"),
        ("a/b", "not allowed"),
        ("..", "not allowed"),
        ("a..b", "'..'"),
        ("x" * 300, "300 characters"),
        ("with space", "not allowed"),
        ("tenant\u00e9", "not allowed"),
        ("\u0430dmin", "not allowed"),  # Cyrillic a: a look-alike
        (".hidden", "not allowed"),
        ("-flag", "not allowed"),
        ("/abs", "not allowed"),
        ("nul\x00byte", "not allowed"),
        ("", "empty"),
        (42, "workflow ID 42 is not a string"),  # the rejected value is shown
    ],
)
def test_bad_ids_are_rejected_with_a_reason(bad: object, why: str) -> None:
    with pytest.raises(WorkflowIdError, match="workflow ID") as err:
        workflow_ids.validate(bad)
    assert why in str(err.value)
    assert "\n" not in str(err.value)


def test_duplicates_are_found_case_insensitively() -> None:
    assert workflow_ids.duplicates(["a", "b", "A", "c", "c"]) == {"a", "A", "c"}


def test_file_name_must_carry_the_suffix() -> None:
    with pytest.raises(WorkflowIdError, match=r"-mydag\.py"):
        store.workflow_id_from_file("mydag.py")


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ("a b", "'a b'"),
        ("\u0430dmin", "'\\u0430dmin'"),  # escaped, ASCII only: never shown as 'admin'
        ("x" * 59 + " ", "'" + "x" * 59 + " '"),  # 60 characters: shown whole
        ("x" * 60 + " ", "'" + "x" * 60 + "'..."),  # 61: cut at 60, marked
        ("y" * 201, "'" + "y" * 60 + "'..."),
    ],
)
def test_a_rejected_id_is_shown_escaped_and_cut_at_60(bad: str, shown: str) -> None:
    with pytest.raises(WorkflowIdError) as err:
        workflow_ids.validate(bad)
    assert str(err.value).startswith(f"workflow ID {shown} is "), str(err.value)


def test_a_rejected_value_that_is_not_a_string_is_shown_cut_at_60() -> None:
    with pytest.raises(WorkflowIdError) as err:
        workflow_ids.validate(list(range(40)))
    assert str(err.value) == f"workflow ID {ascii(list(range(40)))[:60]} is not a string"


def test_the_reasons_read_in_full() -> None:
    with pytest.raises(WorkflowIdError) as empty:
        workflow_ids.validate("")
    assert str(empty.value) == "workflow ID '' is empty"
    with pytest.raises(WorkflowIdError) as bad:
        workflow_ids.validate("a b")
    assert str(bad.value) == (
        "workflow ID 'a b' is not allowed: use ASCII letters, digits, '_', '.' and '-', "
        "starting with a letter or digit (no path separators, spaces or other characters)"
    )
