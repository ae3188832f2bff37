"""The one retry policy (dagfleet.api.retry) on a real loopback server: what retries, how long it waits, when it stops.

Every client call runs through ``retry_policy``; here its sleeps are recorded instead of slept
(``Retrying.copy(sleep=...)``), so the waits it chose are asserted without waiting for them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from dagfleet.api.client import ConfigClient
from dagfleet.api.retry import MAX_RETRY_AFTER, retry_policy
from dagfleet.fleet.errors import ConfigApiError
from support.faultserver import LIST_PATH, Behaviour, FaultServer

KEY = "retry-key-5b0c7e"
WORKFLOWS = {"alpha": {}}


@pytest.fixture
def api() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.serve_workflows(WORKFLOWS)
        yield server


def _client(api: FaultServer, sleeps: list[float], attempts: int = 4, **policy: float) -> ConfigClient:
    """A client whose policy records each sleep it would take (``sleeps``) instead of sleeping."""
    retrying = retry_policy(attempts, **policy).copy(sleep=sleeps.append)
    return ConfigClient(api.url, KEY, connect_timeout=2, read_timeout=5, retrying=retrying)


def _busy(status: int, retry_after: str | None = None) -> Behaviour:
    headers = (("Retry-After", retry_after),) if retry_after is not None else ()
    return Behaviour.json({"error": "busy"}, status=status, headers=headers)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_busy_and_server_errors_are_retried(api: FaultServer, status: int) -> None:
    api.queue(LIST_PATH, _busy(status), _busy(status))
    sleeps: list[float] = []
    listing = _client(api, sleeps, initial=0).list_workflows()
    assert [e.workflow_id for e in listing.entries] == ["alpha"]
    assert api.count(LIST_PATH) == 3
    assert len(sleeps) == 2


@pytest.mark.parametrize("drop", [Behaviour.close(), Behaviour.reset()], ids=["closed", "reset"])
def test_a_dropped_connection_is_retried(api: FaultServer, drop: Behaviour) -> None:
    api.queue(LIST_PATH, drop)
    sleeps: list[float] = []
    assert _client(api, sleeps, initial=0).list_workflows().entries
    assert api.count(LIST_PATH) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_client_errors_are_not_retried(api: FaultServer, status: int) -> None:
    api.set(LIST_PATH, _busy(status))
    sleeps: list[float] = []
    with pytest.raises(ConfigApiError, match=f"HTTP {status}"):
        _client(api, sleeps).list_workflows()
    assert api.count(LIST_PATH) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    ("retry_after", "slept"),
    [
        ("2", 2.0),
        ("0.25", 0.25),
        ("86400", MAX_RETRY_AFTER),  # a day: capped
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # an HTTP date in the past
    ],
)
def test_retry_after_is_honoured_within_bounds(api: FaultServer, retry_after: str, slept: float) -> None:
    api.queue(LIST_PATH, _busy(503, retry_after))
    sleeps: list[float] = []
    assert _client(api, sleeps, initial=5, maximum=10).list_workflows().entries
    assert sleeps == [slept]


@pytest.mark.parametrize("retry_after", ["not a number or a date", "NaN", "inf", "-inf", "1e999", "-5"])
def test_without_a_usable_retry_after_the_wait_is_jittered_exponential_and_capped(
    api: FaultServer, retry_after: str
) -> None:
    """Garbage, NaN, infinity and negative numbers are no delay: the backoff decides (#23)."""
    api.set(LIST_PATH, _busy(503, retry_after))
    sleeps: list[float] = []
    with pytest.raises(ConfigApiError):
        _client(api, sleeps, attempts=8, initial=0.5, maximum=3).list_workflows()
    assert len(sleeps) == 7
    for attempt, slept in enumerate(sleeps, 1):
        assert 0 <= slept <= min(0.5 * 2 ** (attempt - 1), 3), (attempt, sleeps)
    assert len(set(sleeps)) > 1  # jitter: not one fixed value


def test_it_gives_up_after_the_attempts_with_one_line(api: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    api.set(LIST_PATH, _busy(503))
    sleeps: list[float] = []
    with caplog.at_level(logging.WARNING, logger="dagfleet.api.retry"), pytest.raises(ConfigApiError) as err:
        _client(api, sleeps, attempts=3, initial=0).list_workflows()
    assert str(err.value) == "config API answered HTTP 503 for the workflow list"
    assert err.value.status == 503
    assert api.count(LIST_PATH) == 3
    retries = [r.getMessage() for r in caplog.records if r.name == "dagfleet.api.retry"]
    assert retries == [
        "config API: config API answered HTTP 503 for the workflow list; retrying in 0.0s (attempt 1)",
        "config API: config API answered HTTP 503 for the workflow list; retrying in 0.0s (attempt 2)",
    ]
    assert not any(KEY in r.getMessage() for r in caplog.records)


def test_a_single_attempt_never_retries(api: FaultServer) -> None:
    """``attempts=1`` is what the DAG uses at parse time: one request, then the error."""
    api.set(LIST_PATH, _busy(503, "1"))
    sleeps: list[float] = []
    with pytest.raises(ConfigApiError, match="HTTP 503"):
        _client(api, sleeps, attempts=1).list_workflows()
    assert api.count(LIST_PATH) == 1
    assert sleeps == []


def test_the_deadline_stops_retrying_before_the_attempts_run_out(api: FaultServer) -> None:
    api.set(LIST_PATH, _busy(503))
    sleeps: list[float] = []
    with pytest.raises(ConfigApiError, match="HTTP 503"):
        _client(api, sleeps, attempts=10, initial=0, deadline=0).list_workflows()
    assert api.count(LIST_PATH) == 1
