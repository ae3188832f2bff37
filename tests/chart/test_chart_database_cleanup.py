"""The databaseCleanup CronJob's command, run against a real Airflow metadata database.

The command is taken from the rendered CronJob (what follows the official `/entrypoint`, which
only waits for the database first) and run as the container would run it (`bash -c`), with this
venv's Airflow 3.3.2 on a SQLite metadata database migrated by `airflow db migrate`. Rows older
than the retention must be gone, newer ones must stay; with `skipArchive` off the removed rows
land in Airflow's `_airflow_deleted__*` archive tables.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from support.chart import MINIMAL, one, pod_spec, render_chart
from support.paths import REPO

RETENTION_DAYS = 30
OLD = dt.datetime.now(dt.UTC) - dt.timedelta(days=RETENTION_DAYS + 10)
NEW = dt.datetime.now(dt.UTC) - dt.timedelta(days=RETENTION_DAYS - 10)


def airflow_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata database after `airflow db migrate` (copied by each test)."""
    home = tmp_path_factory.mktemp("airflow-migrated")
    subprocess.run(["airflow", "db", "migrate"], env=airflow_env(home), check=True, capture_output=True, timeout=300)
    return home / "airflow.db"


def seed(db: Path) -> None:
    """One old and one new row in dag_run, log and job (the tables that grow with the fleet)."""
    with sqlite3.connect(db) as conn:
        for label, when in (("old", OLD), ("new", NEW)):
            stamp = when.strftime("%Y-%m-%d %H:%M:%S.%f")
            conn.execute(
                "INSERT INTO dag_run (dag_id, run_id, run_type, state, start_date, run_after, clear_number,"
                " span_status)"
                " VALUES ('acme', ?, 'manual', 'success', ?, ?, 0, 'ended')",
                (f"manual__{label}", stamp, stamp),
            )
            conn.execute("INSERT INTO log (dttm, dag_id, event) VALUES (?, 'acme', ?)", (stamp, f"event-{label}"))
            conn.execute(
                "INSERT INTO job (dag_id, state, job_type, latest_heartbeat) VALUES ('acme', 'success', ?, ?)",
                (f"job-{label}", stamp),
            )


def remaining(db: Path) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        return {
            "dag_run": [r for (r,) in conn.execute("SELECT run_id FROM dag_run ORDER BY run_id")],
            "log": [r for (r,) in conn.execute("SELECT event FROM log WHERE dag_id = 'acme' ORDER BY event")],
            "job": [r for (r,) in conn.execute("SELECT job_type FROM job WHERE dag_id = 'acme' ORDER BY job_type")],
        }


def archive_tables(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '_airflow_deleted__%'")
        return sorted(name for (name,) in rows)


def cleanup_command(skip_archive: bool) -> list[str]:
    """The CronJob's command after the official /entrypoint: ["bash", "-c", "<the airflow db clean line>"]."""
    values = {
        **MINIMAL,
        "databaseCleanup": {"enabled": True, "retentionDays": RETENTION_DAYS, "skipArchive": skip_archive},
    }
    cron = one(render_chart(values, ["templates/fleet/cleanup.yaml"]), "CronJob", "dagfleet-database-cleanup")
    (main,) = pod_spec(cron)["containers"]
    assert main["command"][:3] == ["dumb-init", "--", "/entrypoint"]
    return main["command"][3:]


@pytest.mark.parametrize("skip_archive", [True, False], ids=["skip-archive", "archive"])
def test_rows_older_than_the_retention_go_newer_stay(migrated: Path, tmp_path: Path, skip_archive: bool) -> None:
    db = tmp_path / "airflow.db"
    shutil.copy(migrated, db)
    seed(db)
    assert remaining(db) == {
        "dag_run": ["manual__new", "manual__old"],
        "log": ["event-new", "event-old"],
        "job": ["job-new", "job-old"],
    }
    result = subprocess.run(
        cleanup_command(skip_archive), env=airflow_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert remaining(db) == {"dag_run": ["manual__new"], "log": ["event-new"], "job": ["job-new"]}
    archived = archive_tables(db)
    if skip_archive:
        assert archived == []
    else:
        assert any(name.startswith("_airflow_deleted__dag_run__") for name in archived), archived
