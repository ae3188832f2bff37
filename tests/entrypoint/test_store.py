"""The dags folder's layout (dagfleet.store): what a generated DAG file holds."""

from __future__ import annotations

import pytest

from dagfleet.store import TRAILER_PREFIX, Record, dag_bytes


@pytest.mark.parametrize("template", [b"x = 1", b"x = 1\n"])
def test_the_trailer_is_a_line_of_its_own_whatever_the_template_ends_with(template: bytes) -> None:
    data = dag_bytes(template, Record("acme", {}, "demo", stored_at=0.0), "1.2.3")
    body, trailer = data.split(TRAILER_PREFIX)
    assert body == b"x = 1\n"
    assert trailer.endswith(b"\n") and trailer.count(b"\n") == 1


def test_an_empty_template_gets_the_trailer_alone() -> None:
    data = dag_bytes(b"", Record("acme", {}, "demo", stored_at=0.0), "1.2.3")
    assert data.startswith(TRAILER_PREFIX) and data.count(b"\n") == 1
