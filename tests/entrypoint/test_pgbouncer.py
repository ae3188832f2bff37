"""dagfleet.service.pgbouncer: PgBouncer's configuration from the metadata database's SQLAlchemy URL."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dagfleet.service.pgbouncer import ASYNCPG_CONNECT_ARGS, PgBouncerConfigError, main, render

POOL = {"max_client_conn": 1000, "default_pool_size": 20}


def settings(ini: str) -> dict[str, str]:
    lines = [line.partition(" = ") for line in ini.splitlines() if " = " in line]
    return {key: value for key, _, value in lines}


def test_one_database_in_transaction_pooling_with_the_urls_host_and_tls_mode() -> None:
    ini, userlist = render(
        "postgresql+psycopg2://airflow:s3cret@db.example.com:5433/meta?sslmode=require\n", port=6543, pool=POOL
    )
    assert ini.splitlines()[:3] == ["[databases]", "meta = host=db.example.com port=5433 dbname=meta", "[pgbouncer]"]
    found = settings(ini)
    assert found["pool_mode"] == "transaction"
    assert found["listen_port"] == "6543"
    assert found["auth_type"] == "scram-sha-256"
    assert found["server_tls_sslmode"] == "require"
    assert (found["max_client_conn"], found["default_pool_size"]) == ("1000", "20")
    assert userlist == '"airflow" "s3cret"\n'
    assert "s3cret" not in ini


def test_url_escapes_are_decoded_and_quotes_doubled() -> None:
    _, userlist = render("postgresql://air%40flow:p%22w%40x@db:5432/airflow", port=6543, pool={})
    assert userlist == '"air@flow" "p""w@x"\n'
    ini, _ = render("postgresql://a:b@db/airflow", port=6543, pool={})
    assert "port=5432" in ini
    assert settings(ini)["server_tls_sslmode"] == "prefer"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "does not hold a URL"),
        ("mysql://a:s3cret@db/airflow", "needs a PostgreSQL database"),
        ("postgresql://a:s3cret@db/air%20flow", "database is empty or holds a character"),
        ("postgresql://a:s3cret@/airflow", "host is empty"),
        ("postgresql://a:s3cret@db/airflow?sslmode=maybe", "sslmode 'maybe'"),
        ("postgresql://a:s3%0Acret@db/airflow", "holds a line break"),
    ],
)
def test_refused_on_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(PgBouncerConfigError, match=message) as caught:
        render(url, port=6543, pool={})
    assert "s3cret" not in str(caught.value)
    assert "s3\ncret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_main_writes_both_files_readable_by_their_owner_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = tmp_path / "url"
    url.write_text("postgresql+psycopg2://airflow:s3cret@db:5432/airflow")
    out = tmp_path / "conf"
    out.mkdir()
    assert main([str(url), str(out), "6543", "max_db_connections=50"]) == 0
    ini = (out / "pgbouncer.ini").read_text()
    assert settings(ini)["auth_file"] == str(out / "userlist.txt")
    assert settings(ini)["max_db_connections"] == "50"
    for name in ("pgbouncer.ini", "userlist.txt"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600
    assert "s3cret" not in capsys.readouterr().err


def test_main_fails_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = tmp_path / "url"
    url.write_text("sqlite:////tmp/s3cret.db")
    assert main([str(url), str(tmp_path), "6543"]) == 1
    assert capsys.readouterr().err.strip() == "pgbouncer: needs a PostgreSQL database, the URL is sqlite"
    assert main([str(tmp_path / "missing"), str(tmp_path), "6543"]) == 1
    assert main([str(url), str(tmp_path), "6543", "pool=lots"]) == 1
    assert main([]) == 2
    assert not (tmp_path / "pgbouncer.ini").exists()


def test_asyncpg_statements_get_unique_names() -> None:
    """asyncpg's named prepared statements must not collide on PgBouncer's shared server connections."""
    name = ASYNCPG_CONNECT_ARGS["prepared_statement_name_func"]
    assert name() != name()
    assert ASYNCPG_CONNECT_ARGS["statement_cache_size"] == 0
