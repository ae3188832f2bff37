"""The stand-in `/entrypoint` behaves as the official image's documentation says (docker-stack "Entrypoint").

Each test runs `/entrypoint` under dumb-init, as the official ENTRYPOINT does, in the project image
(the stand-in base's /entrypoint is what it inherits). The behaviours are the ones the chart and
the image rely on: the database wait and its switches, the Celery broker wait, `_AIRFLOW_DB_MIGRATE`,
arbitrary UIDs in group 0 and the command dispatch.
"""

from __future__ import annotations

import subprocess

import pytest

from support.image import docker

pytestmark = pytest.mark.docker

# A PostgreSQL URL nothing listens on: `airflow db check` fails fast (connection refused).
DEAD_DB = "postgresql+psycopg2://airflow:db-secret@127.0.0.1:1/airflow"
SQLITE_IN_TMP = "sqlite:////tmp/airflow.db"
FAST_RETRIES = {"CONNECTION_CHECK_MAX_COUNT": "2", "CONNECTION_CHECK_SLEEP_TIME": "0"}


def entrypoint(
    image: str, *command: str, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`docker run` the image's `dumb-init -- /entrypoint COMMAND…` (stdout + stderr are returned)."""
    args = ["run", "--rm", "--label", "dagfleet.test=image", "-e", "AIRFLOW__CORE__LOAD_EXAMPLES=False"]
    for key, value in (env or {}).items():
        args += ["-e", f"{key}={value}"]
    return docker(*args, *options, "--entrypoint", "/usr/bin/dumb-init", image, "--", "/entrypoint", *command,
                  check=False, timeout=300)  # fmt: skip


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def test_waits_for_the_database_before_bash_and_gives_up_after_max_count(image: str) -> None:
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": DEAD_DB, **FAST_RETRIES}
    result = entrypoint(image, "bash", "-c", "echo reached-the-command", env=env)
    assert result.returncode == 1, output(result)
    assert "reached-the-command" not in output(result)
    assert "waiting for the metadata database (try 1/2" in output(result)
    assert "the metadata database not reachable after 2 tries" in output(result)


def test_max_count_zero_skips_the_database_wait(image: str) -> None:
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": DEAD_DB, "CONNECTION_CHECK_MAX_COUNT": "0"}
    result = entrypoint(image, "python", "-c", "print('reached-the-command')", env=env)
    assert result.returncode == 0, output(result)
    assert "reached-the-command" in result.stdout
    assert "waiting for" not in output(result)


def test_no_database_url_on_a_read_only_root_fails_without_the_switch(image: str) -> None:
    """Issue 16's task-pod failure: the default SQLite under a read-only /opt/airflow cannot be opened."""
    options = ("--read-only", "--tmpfs", "/tmp")
    failed = entrypoint(image, "bash", "-c", "echo reached", env=FAST_RETRIES, options=options)
    assert failed.returncode == 1, output(failed)
    assert "reached" not in failed.stdout
    skipped = entrypoint(image, "bash", "-c", "echo reached", env={"CONNECTION_CHECK_MAX_COUNT": "0"}, options=options)
    assert skipped.returncode == 0, output(skipped)
    assert skipped.stdout.strip() == "reached"


def test_db_migrate_runs_after_the_wait(image: str) -> None:
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": SQLITE_IN_TMP, "_AIRFLOW_DB_MIGRATE": "true"}
    script = "import sqlite3; print(sqlite3.connect('/tmp/airflow.db').execute('select count(*) from dag').fetchone())"
    result = entrypoint(image, "python", "-c", script, env=env)
    assert result.returncode == 0, output(result)[-2000:]
    assert "running airflow db migrate" in result.stderr
    assert result.stdout.strip().endswith("(0,)")


def test_arbitrary_uid_in_group_zero_gets_a_user_home_and_umask(image: str) -> None:
    env = {"CONNECTION_CHECK_MAX_COUNT": "0"}
    result = entrypoint(image, "bash", "-c", "whoami; echo $HOME; umask; id -g", env=env, options=("--user", "12345:0"))
    assert result.returncode == 0, output(result)
    assert result.stdout.split() == ["default", "/home/airflow", "0002", "0"]


def test_arbitrary_uid_in_another_group_is_refused(image: str) -> None:
    env = {"CONNECTION_CHECK_MAX_COUNT": "0"}
    result = entrypoint(image, "bash", "-c", "echo reached", env=env, options=("--user", "12345:12345"))
    assert result.returncode == 1
    assert "reached" not in result.stdout
    assert "must run with group 0" in result.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (("airflow", "version"), "3.3.2"),  # `airflow ARGS`: the rest is an Airflow command
        (("version",), "3.3.2"),  # anything else is handed to `airflow`
        ((), "Usage: airflow"),  # no command: airflow's help, as CMD [] gives
        (("python", "-c", "import sys; print(sys.executable)"), "/home/airflow/.local/bin/python"),
    ],
)
def test_command_dispatch(image: str, command: tuple[str, ...], expected: str) -> None:
    result = entrypoint(image, *command, env={"CONNECTION_CHECK_MAX_COUNT": "0"})
    assert expected in output(result), output(result)[-2000:]


CELERY = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CELERY__BROKER_URL": "redis://:broker-secret@127.0.0.1:1/0",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": SQLITE_IN_TMP,
    **FAST_RETRIES,
}


def test_celery_commands_wait_for_the_broker(image: str) -> None:
    result = entrypoint(image, "celery", "--help", env=CELERY)
    assert result.returncode == 1, output(result)
    assert "waiting for the Celery broker (redis://127.0.0.1:1) (try 1/2" in result.stderr
    assert "usage:" not in result.stdout
    assert "broker-secret" not in output(result)


def test_other_commands_and_max_count_zero_do_not_wait_for_the_broker(image: str) -> None:
    other = entrypoint(image, "bash", "-c", "echo reached", env=CELERY)
    assert other.returncode == 0, output(other)
    assert "Celery broker" not in other.stderr
    skipped = entrypoint(image, "celery", "--help", env={**CELERY, "CONNECTION_CHECK_MAX_COUNT": "0"})
    assert skipped.returncode == 0, output(skipped)[-2000:]
    assert "Celery broker" not in skipped.stderr
    assert "worker" in skipped.stdout
