"""PgBouncer's configuration from the metadata database's SQLAlchemy URL (the chart's `pgbouncer`).

The chart's PgBouncer pod runs `python -m dagfleet.service.pgbouncer <url file> <out dir>` in an init
container: it reads the URL Airflow would use (a mounted Secret), and writes `pgbouncer.ini`
(one database, transaction pooling, the upstream host, port and TLS mode of the URL) and
`userlist.txt` (the URL's user and password, so clients authenticate to PgBouncer with the same
credentials and PgBouncer to PostgreSQL with them). Airflow's components then reach the database
through PgBouncer: the chart rewrites the host and port of their URL (docs/helm.md).

Airflow's api-server and triggerer also use asyncpg, whose named prepared statements do not
survive transaction pooling: `ASYNCPG_CONNECT_ARGS` (the chart sets
`[database] sql_alchemy_connect_args_async` to it) gives each statement a unique name, as
SQLAlchemy's asyncpg dialect documents for PgBouncer.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.fsutil import atomic_write

# A value PgBouncer reads unquoted: no whitespace, quotes, `=`, `;`, `#` or control characters.
_UNSAFE = set(" \t\r\n'\"=;#\\") | {chr(c) for c in range(32)}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def _prepared_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4()}__"


# `[database] sql_alchemy_connect_args_async = dagfleet.service.pgbouncer.ASYNCPG_CONNECT_ARGS`
ASYNCPG_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": _prepared_statement_name,
}


class PgBouncerConfigError(DagfleetError):
    """The database URL cannot be turned into a PgBouncer configuration."""


def _plain(field: str, value: str) -> str:
    if not value or _UNSAFE & set(value):
        raise PgBouncerConfigError(
            f"pgbouncer: the database URL's {field} is empty or holds a character PgBouncer cannot read "
            "(space, quote, '=', ';', '#', backslash): fix the metadata database Secret"
        )
    return value


def _quoted(value: str) -> str:
    """A userlist.txt field: in double quotes, a double quote doubled; no line breaks."""
    if "\n" in value or "\r" in value or "\x00" in value:
        raise PgBouncerConfigError("pgbouncer: the database URL's user or password holds a line break")
    return '"' + value.replace('"', '""') + '"'


def render(url_text: str, *, port: int, pool: dict[str, int]) -> tuple[str, str]:
    """(pgbouncer.ini, userlist.txt) for one SQLAlchemy PostgreSQL URL; never echoes the password."""
    try:
        url = make_url(url_text.strip())
    except ArgumentError:
        raise PgBouncerConfigError("pgbouncer: the metadata database Secret does not hold a URL") from None
    if url.get_backend_name() != "postgresql":
        raise PgBouncerConfigError(f"pgbouncer: needs a PostgreSQL database, the URL is {url.get_backend_name()}")
    database = _plain("database", url.database or "")
    host = _plain("host", url.host or "")
    sslmode = str(url.query.get("sslmode", "prefer"))
    if sslmode not in _SSL_MODES:
        raise PgBouncerConfigError(f"pgbouncer: the URL's sslmode {sslmode!r} is not one of {sorted(_SSL_MODES)}")
    userlist = f"{_quoted(url.username or '')} {_quoted(url.password or '')}\n"
    settings = {
        "listen_addr": "0.0.0.0",  # noqa: S104 - a pod's port, reached through its Service
        "listen_port": port,
        "unix_socket_dir": "",
        "auth_type": "scram-sha-256",
        "auth_file": "{dir}/userlist.txt",
        "pool_mode": "transaction",
        "server_tls_sslmode": sslmode,
        "ignore_startup_parameters": "extra_float_digits",
        **pool,
    }
    ini = "\n".join(
        [
            "[databases]",
            f"{database} = host={host} port={url.port or 5432} dbname={database}",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in settings.items()),
            "",
        ]
    )
    return ini, userlist


def write(url_file: Path, out_dir: Path, *, port: int, pool: dict[str, int]) -> None:
    """Write pgbouncer.ini and userlist.txt (mode 0600) into out_dir."""
    ini, userlist = render(url_file.read_text(), port=port, pool=pool)
    atomic_write(out_dir / "userlist.txt", userlist.encode(), mode=0o600)
    atomic_write(out_dir / "pgbouncer.ini", ini.replace("{dir}", str(out_dir)).encode(), mode=0o600)


def main(argv: list[str] | None = None) -> int:
    """`python -m dagfleet.service.pgbouncer URL_FILE OUT_DIR PORT [setting=number ...]`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print("usage: python -m dagfleet.service.pgbouncer URL_FILE OUT_DIR PORT [setting=number ...]", file=sys.stderr)
        return 2
    try:
        pool = {key: int(value) for key, _, value in (item.partition("=") for item in args[3:])}
        write(Path(args[0]), Path(args[1]), port=int(args[2]), pool=pool)
    except (DagfleetError, OSError, ValueError) as err:
        print(str(err) if isinstance(err, DagfleetError) else f"pgbouncer: {type(err).__name__}", file=sys.stderr)
        return 1
    print(f"pgbouncer: configuration written to {args[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
