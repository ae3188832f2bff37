"""Keys Airflow's processes in one container must share, made once per Airflow home (issue #24).

Airflow 3 signs the token every task uses to talk to the API server with ``[api_auth]
jwt_secret``. When neither the environment nor ``airflow.cfg`` sets it, each Airflow process
makes up its own, so in ``airflow standalone`` every task fails with "Signature verification
failed". Airflow avoids that only when it writes ``airflow.cfg`` itself (on first start, with no
file there); the image ships an ``airflow.cfg`` of its own (dagfleet.service.dagprocessor), so nothing is
shared. ``[api] secret_key`` (sessions, log-server tokens) has the same per-process default, and
``[core] fernet_key`` is empty: connections and variables are stored unencrypted.

``dagfleet run`` therefore fills in what the user did not set, before it execs Airflow: the values
are made once, kept in ``$AIRFLOW_HOME/.dagfleet-airflow-keys.json`` (mode 0640, group 0 as
every file the container writes: a restarted container, or one sharing the volume under another
UID of group 0, finds the same ones, so encrypted connections stay readable) and handed to
Airflow as ``AIRFLOW__…`` variables of the exec'd process. Nothing is baked into the image.
A key counts as set by the user when ``AIRFLOW__S__K``, ``…_CMD`` or ``…_SECRET`` is in the
environment, or ``airflow.cfg`` has ``k``, ``k_cmd`` or ``k_secret`` in
its section (the chart sets ``…_CMD`` from its Secret, so it is never overridden). When
``airflow.cfg`` does not exist, Airflow writes one with its own keys and nothing is done here.
"""

from __future__ import annotations

import base64
import configparser
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from dagfleet.fleet.fsutil import FileTakenError, atomic_write, read_json

log = logging.getLogger("dagfleet")

KEYS_FILE = ".dagfleet-airflow-keys.json"


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _token() -> str:
    return secrets.token_urlsafe(48)


#: (section, key) -> how a fresh value is made.
SHARED: dict[tuple[str, str], Callable[[], str]] = {
    ("api_auth", "jwt_secret"): _token,
    ("api", "secret_key"): _token,
    ("core", "fernet_key"): _fernet_key,
}
# Another way of signing task tokens: with it set, no jwt_secret is wanted.
_INSTEAD = {("api_auth", "jwt_secret"): ("api_auth", "jwt_private_key_path")}


def env_name(section: str, key: str) -> str:
    return f"AIRFLOW__{section.upper()}__{key.upper()}"


def airflow_config(environ: Mapping[str, str]) -> Path:
    """The ``airflow.cfg`` Airflow reads: ``AIRFLOW_CONFIG``, else ``$AIRFLOW_HOME/airflow.cfg``."""
    if environ.get("AIRFLOW_CONFIG"):
        return Path(environ["AIRFLOW_CONFIG"]).expanduser()
    return airflow_home(environ) / "airflow.cfg"


def airflow_home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()


def _read_cfg(path: Path) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return parser


def _user_sets(section: str, key: str, environ: Mapping[str, str], cfg: configparser.RawConfigParser) -> bool:
    name = env_name(section, key)
    if any(environ.get(name + suffix) for suffix in ("", "_CMD", "_SECRET")):
        return True
    return any(cfg.get(section, key + suffix, fallback="") for suffix in ("", "_cmd", "_secret"))


def missing(environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """The shared keys nobody set, or none when Airflow will write its own ``airflow.cfg``."""
    cfg = _read_cfg(airflow_config(environ))
    if cfg is None:
        return []
    return [
        (section, key)
        for section, key in SHARED
        if not _user_sets(section, key, environ, cfg)
        and not ((instead := _INSTEAD.get((section, key))) and _user_sets(*instead, environ, cfg))
    ]


def _stored(path: Path) -> dict[str, str]:
    found = read_json(path, default={})
    return {k: v for k, v in found.items() if isinstance(v, str) and v} if isinstance(found, dict) else {}


def _keep(path: Path, values: dict[str, str]) -> dict[str, str]:
    """Store freshly made values; when another container stored its own first, use those."""
    try:
        atomic_write(path, _dumps(values).encode(), mode=0o640, create_only=not path.exists())
    except FileTakenError:
        return {**values, **_stored(path)}
    except OSError as err:
        log.warning(
            "cannot keep Airflow's generated keys in %s (%s): they last until the container stops; "
            "set AIRFLOW__CORE__FERNET_KEY and AIRFLOW__API_AUTH__JWT_SECRET to keep them",
            path,
            err.strerror,
        )
    return values


def _dumps(values: Mapping[str, str]) -> str:
    return json.dumps(dict(sorted(values.items())), indent=1) + "\n"


def shared_env(environ: Mapping[str, str]) -> dict[str, str]:
    """``AIRFLOW__…`` variables for the shared keys the user did not set (empty when none)."""
    wanted = missing(environ)
    if not wanted:
        return {}
    path = airflow_home(environ) / KEYS_FILE
    stored = _stored(path)
    names = {env_name(section, key): SHARED[(section, key)] for section, key in wanted}
    values = {name: stored.get(name) or make() for name, make in names.items()}
    if os.path.lexists(path) and not os.access(path, os.R_OK):  # never replace keys we cannot read
        log.warning("cannot read %s: Airflow's keys last until the container stops", path)
    elif any(name not in stored for name in names):
        values = {**values, **{k: v for k, v in _keep(path, {**stored, **values}).items() if k in names}}
    log.info("Airflow keys shared by this container's processes (kept in %s): %s", path, ", ".join(sorted(names)))
    return values
