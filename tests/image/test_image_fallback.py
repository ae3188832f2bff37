"""A config API that is down at start: a clear message, the static list, a scheduler that starts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from support.image import DAG_FOLDER, Container, json_line, processes, start_container
from support.net import free_port

pytestmark = pytest.mark.docker

STATIC = ("static_a", "static-b")
STARTUP_TIMEOUT = 180


@pytest.fixture(scope="module")
def api_down_url() -> str:
    """A URL where nothing listens (a port that was free a moment ago)."""
    return f"http://host.docker.internal:{free_port()}"


@pytest.fixture(scope="module")
def scheduler(image: str, api_down_url: str) -> Iterator[Container]:
    """`docker run IMAGE scheduler` with the API down and DAGFLEET_STATIC_WORKFLOWS set."""
    env = {
        "DAGFLEET_API_URL": api_down_url,
        "DAGFLEET_API_KEY": "dfk-fallback-key-0123456789",
        "DAGFLEET_STATIC_WORKFLOWS": " ".join(STATIC),
        "DAGFLEET_RETRIES": "2",
        "DAGFLEET_CONNECT_TIMEOUT": "1",
        "_AIRFLOW_DB_MIGRATE": "true",
    }
    container = start_container(image, "scheduler", "scheduler", env=env)
    try:
        container.wait_for(
            "the scheduler to start",
            lambda: "Starting the scheduler" in container.logs(),
            STARTUP_TIMEOUT,
        )
        yield container
    finally:
        container.remove()


def test_clear_message_when_api_is_down(scheduler: Container, api_down_url: str) -> None:
    lines = [line for line in scheduler.logs().splitlines() if api_down_url in line]
    assert lines, scheduler.tail()
    assert any(re.search(r"unreachable|refused|down|cannot connect", line, re.IGNORECASE) for line in lines), lines
    assert all(len(line) < 400 for line in lines), "the message should be one readable line"


def test_static_workflows_still_become_dags(scheduler: Container) -> None:
    listing = scheduler.exec("ls", "-1", DAG_FOLDER)
    assert {name for name in listing.stdout.split() if name.endswith(".py")} == {f"{w}-mydag.py" for w in STATIC}
    errors = scheduler.exec("airflow", "dags", "list-import-errors", "--local", "-o", "json")
    assert errors.returncode == 0, errors.stdout + errors.stderr
    assert json_line(errors.stdout) == []


def test_scheduler_component_runs(scheduler: Container) -> None:
    commands = [cmd for uid, gid, cmd in processes(scheduler) if (uid, gid) == (50000, 0)]
    assert any(cmd.endswith("airflow scheduler") for cmd in commands), commands


def test_api_key_never_in_logs(scheduler: Container) -> None:
    assert "dfk-fallback-key-0123456789" not in scheduler.logs()


def test_scheduler_stops_within_10s_on_sigterm(scheduler: Container) -> None:
    elapsed, code = scheduler.stop_with_sigterm(limit=10)
    assert code != -1, f"still running 10 s after SIGTERM:\n{scheduler.tail()}"
    assert elapsed < 10
    assert code in (0, 143), f"exit code {code} after SIGTERM:\n{scheduler.tail()}"
