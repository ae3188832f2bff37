"""Every ``DAGFLEET_*`` environment variable, declared once and read in one place.

Each setting is one ``setting(...)`` declaration (its variable, parser, default and one line of docs)
on a field of :class:`Settings`; ``SETTINGS`` (what ``dagfleet check`` accepts), ``Settings.from_env``,
the dataclass defaults and the table in docs/reference.md (``scripts/settings_doc.py``) all derive
from it. Other modules read a variable only through :func:`read_setting` or a ``Settings``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagfleet.fleet import workflow_ids
from dagfleet.fleet.errors import DagfleetError

if TYPE_CHECKING:
    from dagfleet.fleet.config import Declared
    from dagfleet.fleet.store import FleetStore
    from dagfleet.fleet.template_library import TemplateLibrary


def packaged_file(*parts: str) -> Path:
    """A file shipped with the package, or its source in a checkout (editable installs)."""
    here = Path(__file__).resolve().parents[1]  # the package folder
    packaged = here.joinpath(*parts)
    if packaged.exists():
        return packaged
    sources = {("data", "workflows.yaml"): ("examples", "workflows.yaml"), ("dags",): ("dags",)}
    return here.parents[1].joinpath(*sources[parts])


# The templates shipped in the package (the default of DAGFLEET_TEMPLATES): dags/ at the top of a
# checkout, dagfleet/dags/ in the wheel.
SHIPPED_TEMPLATES = packaged_file("dags")


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _number(value: str, kind: type[int] | type[float], expected: str) -> Any:
    """``kind(value)``; a ValueError that says what was expected (never the value: it may be a secret)."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(expected) from None


def _positive_float(value: str) -> float:
    number = _number(value, float, "expected a number > 0")
    if number <= 0:
        raise ValueError("expected a number > 0")
    return number


def _positive_int(value: str) -> int:
    number = _number(value, int, "expected an integer >= 1")
    if number < 1:
        raise ValueError("expected an integer >= 1")
    return number


def _shard_count(value: str) -> int:
    number = _number(value, int, "expected an integer from 1 to 64")
    if not 1 <= number <= 64:  # dagfleet.shards.MAX_SHARDS
        raise ValueError("expected an integer from 1 to 64")
    return number


def _text(value: str) -> str:
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


def _cache_url(value: str) -> str:
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected redis://host:port/db (or leave unset for the disk cache)")
    return value


def _port(value: str) -> int | None:
    if not value.strip():
        return None
    expected = "expected a TCP port 1-65535 (or leave unset to turn metrics off)"
    number = _number(value, int, expected)
    if not 1 <= number <= 65535:
        raise ValueError(expected)
    return number


def _optional_positive_float(value: str) -> float | None:
    return _positive_float(value) if value.strip() else None


def _log_level(value: str) -> str:
    upper = value.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return upper


def _template_name(value: str) -> str:
    if not workflow_ids.TEMPLATE_NAME.fullmatch(value):
        raise ValueError("expected a template name (letters, digits and '_', starting with a letter)")
    return value


def _optional_text(value: str) -> str | None:
    return value or None


def _optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def _templates_folder(value: str) -> Path:
    return Path(value) if value else SHIPPED_TEMPLATES


def _id_list(value: str) -> tuple[str, ...]:
    return tuple(value.replace(",", " ").split())


def _pools(value: str) -> tuple[str, ...] | None:
    """Airflow's ``airflow pools import`` JSON (``{"name": {"slots": 4, "description": "..."}}``): its names."""
    import json

    if not value.strip():
        return None
    expected = 'expected a JSON object like {"tenant_a": {"slots": 4, "description": "..."}} (or leave unset)'
    try:
        pools = json.loads(value)
    except ValueError:
        raise ValueError(expected) from None
    if not isinstance(pools, dict) or not all(_importable_pool(p) for p in pools.values()):
        raise ValueError(expected + "; slots an integer >= -1 (-1: unlimited), description a string")
    return tuple(sorted(pools)) or None  # {}: nothing declared, as when unset (the chart's default)


def _importable_pool(pool: Any) -> bool:
    """One entry as ``airflow pools import`` takes it: ``slots`` and ``description`` both required."""
    if not isinstance(pool, dict) or not isinstance(pool.get("description"), str):
        return False
    slots = pool.get("slots")
    return isinstance(slots, int) and not isinstance(slots, bool) and slots >= -1


def _executors(value: str) -> tuple[str, ...] | None:
    """The names a task may give as ``executor``: each entry's alias, module path and class name."""
    names: list[str] = []
    for entry in (e.strip() for e in value.split(",")):
        alias, _, path = entry.rpartition(":")
        names.extend(n for n in (alias, path, path.rpartition(".")[2]) if n)
    return tuple(dict.fromkeys(names)) or None


def _queues(value: str) -> tuple[str, ...] | None:
    """Comma-separated Celery queue names (a name may hold ':'), each once; empty: not declared."""
    return tuple(dict.fromkeys(q.strip() for q in value.split(",") if q.strip())) or None


def _airflow_executors(environ: Mapping[str, str]) -> tuple[str, ...] | None:
    """Airflow's ``[core] executor`` as its variable says (unset: not known to dagfleet)."""
    return _executors(environ.get("AIRFLOW__CORE__EXECUTOR", ""))


def _airflow_dags_folder(environ: Mapping[str, str]) -> Path:
    """Airflow's dags folder as its own variables say (the default of DAGFLEET_DAGS_FOLDER)."""
    if environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        return Path(environ["AIRFLOW__CORE__DAGS_FOLDER"])
    home = environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "dags"


def _base_dag_stem(environ: Mapping[str, str]) -> str | None:
    """With only DAGFLEET_BASE_DAG set, that file is the default template."""
    base_dag = environ.get("DAGFLEET_BASE_DAG")
    return Path(base_dag).stem if base_dag else None


@dataclass(frozen=True)
class Setting:
    """One ``DAGFLEET_*`` variable: the single declaration everything else about it derives from."""

    name: str
    parse: Callable[[str], Any]  # raises ValueError("expected ...") on a bad value
    default: str | None  # the value when unset, spelled as in the environment; None: unset (None)
    doc: str  # the meaning column of docs/reference.md
    shown_default: str | None = None  # the docs' default column when not just `default`
    derive: Callable[[Mapping[str, str]], Any] | None = None  # the value when unset (or empty), from others
    secret: bool = False  # never in a repr

    def read(self, environ: Mapping[str, str], *, derive: bool = True) -> Any:
        """The parsed value in ``environ`` (its default, or what ``derive`` gives, when unset)."""
        raw = environ.get(self.name)
        value = self._parse(self.default if raw is None else raw)
        if derive and self.derive is not None and (raw is None or value is None):
            derived = self.derive(environ)
            return value if derived is None else derived
        return value

    def _parse(self, raw: str | None) -> Any:
        if raw is None:
            return None
        try:
            return self.parse(raw)
        except ValueError as err:
            raise DagfleetError(f"{self.name}: {err}") from None


# name -> declaration, in declaration order (the order of docs/reference.md)
SETTINGS: dict[str, Setting] = {}


def declare(name: str, parse: Callable[[str], Any], default: str | None, doc: str, **more: Any) -> Setting:
    """Register one setting's declaration (see ``setting`` for one that is a field of Settings)."""
    if name in SETTINGS:
        raise ValueError(f"{name} is declared twice")
    SETTINGS[name] = declared = Setting(name, parse, default, doc, **more)
    return declared


def setting(name: str, parse: Callable[[str], Any], default: str | None, doc: str, **more: Any) -> Any:
    """A field of Settings declared as the setting ``name``: its default is what an empty
    environment gives (``Settings() == Settings.from_env({})``); a derived one is computed when a
    Settings is made, never at import (the dags folder's may ask for the home directory)."""
    declared = declare(name, parse, default, doc, **more)
    more_field: dict[str, Any] = {"repr": not declared.secret, "metadata": {"setting": declared}}
    if declared.derive is not None:
        return field(default_factory=lambda: declared.read({}), **more_field)
    return field(default=declared.read({}), **more_field)


def read_setting(environ: Mapping[str, str], name: str, *, derive: bool = True) -> Any:
    """One DAGFLEET_* setting from ``environ``, parsed by its declaration (its default when unset;
    with ``derive=False`` only the variable and its declared default count, never other variables);
    a bad value raises DagfleetError naming the variable and what it expects."""
    return SETTINGS[name].read(environ, derive=derive)


def invalid_env(environ: Mapping[str, str]) -> list[str]:
    """One message per unknown or unparsable ``DAGFLEET_*`` variable (values are never echoed)."""
    problems = []
    for name in sorted(n for n in environ if n.startswith("DAGFLEET_")):
        if name not in SETTINGS:
            problems.append(f"{name} is not a dagfleet setting (known: see docs/reference.md)")
            continue
        try:
            SETTINGS[name].read(environ, derive=False)
        except DagfleetError as err:
            problems.append(str(err))
    return problems


@dataclass(frozen=True)
class Settings:
    """The DAGFLEET_* settings, parsed: one field per setting, declared here (docs/reference.md is generated)."""

    api_url: str | None = setting(
        "DAGFLEET_API_URL",
        _url,
        None,
        "base URL of the config API, e.g. `http://config-api:8000` (paths `/airflowconfigs…` are appended)",
        secret=True,  # may carry user:password@
    )
    api_key_value: str | None = setting(
        "DAGFLEET_API_KEY",
        _text,
        None,
        "API key sent as `x-api-key`",
        secret=True,
    )
    api_key_file: str | None = setting(
        "DAGFLEET_API_KEY_FILE",
        _text,
        None,
        "file holding the API key (a mounted Kubernetes Secret); wins over `DAGFLEET_API_KEY`",
    )
    static_workflows: tuple[str, ...] = setting(
        "DAGFLEET_STATIC_WORKFLOWS",
        _id_list,
        "",
        "comma- or space-separated workflow IDs: used when no API URL is set, or when the API fails "
        "and there is no last known good set",
        shown_default="unset",
    )
    dags_folder: Path = setting(
        "DAGFLEET_DAGS_FOLDER",
        _optional_path,
        None,
        "where the DAG files go",
        shown_default="`$AIRFLOW__CORE__DAGS_FOLDER`, else `$AIRFLOW_HOME/dags`",
        derive=_airflow_dags_folder,
    )
    templates_folder: Path = setting(
        "DAGFLEET_TEMPLATES",
        _templates_folder,
        "",
        "folder of your templates: `<name>.py` base DAGs, optional `<name>.schema.json`; adds to the templates "
        "shipped in the package (`demo`, `tenant_etl`), and your name wins on a clash ([templates](templates.md))",
        shown_default="only the templates shipped in the package",
    )
    default_template: str = setting(
        "DAGFLEET_DEFAULT_TEMPLATE",
        _template_name,
        "demo",
        "the template of workflows whose config names none",
        shown_default="`demo` (or the stem of `DAGFLEET_BASE_DAG` when only that is set)",
        derive=_base_dag_stem,
    )
    base_dag: Path | None = setting(
        "DAGFLEET_BASE_DAG",
        _optional_path,
        None,
        "the one-template shortcut: this file is one more template, named after its stem "
        "(and the default one unless `DAGFLEET_DEFAULT_TEMPLATE` is set)",
    )
    allow_empty: bool = setting(
        "DAGFLEET_ALLOW_EMPTY",
        _flag,
        "false",
        "an empty workflow list from the API prunes every generated DAG only when `true`",
    )
    sync_interval: float = setting(
        "DAGFLEET_SYNC_INTERVAL",
        _positive_float,
        "60",
        "seconds between syncs in `watch`",
    )
    connect_timeout: float = setting(
        "DAGFLEET_CONNECT_TIMEOUT",
        _positive_float,
        "3",
        "seconds to connect to the config API, per request",
    )
    read_timeout: float = setting(
        "DAGFLEET_READ_TIMEOUT",
        _positive_float,
        "10",
        "seconds to wait for the config API's answer, per request",
    )
    retries: int = setting(
        "DAGFLEET_RETRIES",
        _positive_int,
        "4",
        "attempts per request in sync (exponential backoff with jitter)",
    )
    cache_url: str = setting(
        "DAGFLEET_CACHE_URL",
        _cache_url,
        "",
        "`redis://host:6379/0` to share the parse-time config cache",
        shown_default="unset (disk cache)",
        secret=True,  # redis://:password@host
    )
    cache_ttl: float = setting(
        "DAGFLEET_CACHE_TTL",
        _positive_float,
        "300",
        "seconds a cached config counts as fresh at parse time",
    )
    parse_timeout: float = setting(
        "DAGFLEET_PARSE_TIMEOUT",
        _positive_float,
        "5",
        "total seconds a DAG file may spend on the network while parsing",
    )
    run_sync_timeout: float = setting(
        "DAGFLEET_RUN_SYNC_TIMEOUT",
        _positive_float,
        "120",
        "seconds `run` waits for its start-up sync; then it execs the component with the DAGs already in place",
    )
    log_level: str = setting(
        "DAGFLEET_LOG_LEVEL",
        _log_level,
        "INFO",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR` (any case)",
    )
    exec_program: str | None = setting(
        "DAGFLEET_EXEC",
        _optional_text,
        None,
        "what `run` and `task` hand Airflow components to",
        shown_default="`/entrypoint` if it exists, else `airflow`",
    )
    metrics_port: int | None = setting(
        "DAGFLEET_METRICS_PORT",
        _port,
        "",
        "TCP port on which `watch` serves Prometheus `/metrics`, `/healthz`, `/readyz` and `/status.json` "
        "(all interfaces)",
        shown_default="unset (off)",
    )
    stuck_after: float | None = setting(
        "DAGFLEET_STUCK_AFTER",
        _optional_positive_float,
        "",
        "seconds the `watch` loop may go without a heartbeat before `/healthz` answers 503",
        shown_default="`3 \N{MULTIPLICATION SIGN} DAGFLEET_SYNC_INTERVAL + DAGFLEET_RETRIES \N{MULTIPLICATION SIGN} "
        "(connect + read timeout + 60)`",
    )
    version_keep_hours: float = setting(
        "DAGFLEET_VERSION_KEEP_HOURS",
        _positive_float,
        "48",
        "hours sync keeps a version of the fleet (a snapshot a run may still use) after it stopped being "
        "current; keep it above the longest run plus an hour ([parsing](parsing.md#the-dagfleet-bundle))",
    )
    removed_grace: float = setting(
        "DAGFLEET_REMOVED_GRACE",
        _positive_float,
        "3600",
        "seconds a workflow removed from the config API stays in Airflow, unscheduled, so its active runs can "
        "finish (the dagfleet bundle); then Airflow marks its DAG stale ([parsing](parsing.md#the-dagfleet-bundle))",
    )
    shards: int = setting(
        "DAGFLEET_SHARDS",
        _shard_count,
        "1",
        "how many DAG bundles sync splits the fleet into, one per dag-processor (`dagfleet-0` …; 1: the one "
        "`dagfleet` bundle); set it where Airflow's `dag_bundle_config_list` names as many "
        "([parsing](parsing.md#shards-several-dag-processors))",
    )
    status_url: str | None = setting(
        "DAGFLEET_STATUS_URL",
        _url,
        None,
        "read by the Fleet page in Airflow's UI: an `http(s)://` URL of a `dagfleet watch`'s `/status.json` "
        "(the chart sets it on the api-server); one GET per page view, 2 s connect / 3 s read timeout "
        "([operations](operations.md))",
        shown_default="unset (the local dags folder)",
    )
    pools: tuple[str, ...] | None = setting(
        "DAGFLEET_POOLS",
        _pools,
        "",
        "the Airflow pools the deployment declares, as `airflow pools import` JSON "
        '(`{"tenant_a": {"slots": 4, "description": "..."}}`): sync and `validate` reject a workflow whose '
        "`pool` is not among them (or `default_pool`); the chart and `make run` set it and create the pools",
        shown_default="unset (pool names are not checked; `{}` is the same)",
    )
    executors: tuple[str, ...] | None = setting(
        "DAGFLEET_EXECUTORS",
        _executors,
        "",
        "Airflow's configured executors, as `[core] executor` spells them (`LocalExecutor,CeleryExecutor`): "
        "sync and `validate` reject a workflow whose `executor` is not one of them",
        shown_default="`$AIRFLOW__CORE__EXECUTOR` when set, else unset (not checked before Airflow parses)",
        derive=_airflow_executors,
    )
    queues: tuple[str, ...] | None = setting(
        "DAGFLEET_QUEUES",
        _queues,
        "",
        "the Celery queues the deployment's workers listen on, comma-separated (`default,tenant-a`): sync and "
        "`validate` reject a workflow whose `queue` is not among them; the chart sets it with the CeleryExecutor "
        "(its worker groups' queues: [helm](helm.md#worker-groups-one-per-queue))",
        shown_default="unset (queue names are not checked)",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(**{f.name: f.metadata["setting"].read(env) for f in fields(cls)})

    @property
    def api_key(self) -> str | None:
        """The API key: from DAGFLEET_API_KEY_FILE when set (a mounted Secret), else DAGFLEET_API_KEY."""
        if self.api_key_file:
            try:
                return Path(self.api_key_file).read_text(encoding="utf-8").strip() or None
            except OSError as err:
                raise DagfleetError(
                    f"cannot read the API key file {self.api_key_file}: {err.strerror}; "
                    "mount the secret there or unset DAGFLEET_API_KEY_FILE"
                ) from None
        return self.api_key_value or None

    @property
    def store(self) -> FleetStore:
        """The fleet's on-disk state in the dags folder (dagfleet.fleet.store owns the layout)."""
        from dagfleet.fleet.store import FleetStore

        return FleetStore(self.dags_folder)

    def declared(self) -> Declared:
        """The pools, executors and Celery queues this deployment declares (None where not known)."""
        from dagfleet.fleet.config import Declared

        return Declared(self.pools, self.executors, self.queues)

    def template_library(self) -> TemplateLibrary:
        from dagfleet.fleet.template_library import TemplateLibrary

        return TemplateLibrary(self.templates_folder, self.default_template, self.base_dag, SHIPPED_TEMPLATES)

    def exec_target(self) -> str:
        if self.exec_program:
            return self.exec_program
        return "/entrypoint" if Path("/entrypoint").exists() else (shutil.which("airflow") or "airflow")


# Not a field of Settings: only `dagfleet task` reads it (dagfleet.service.taskpod).
TASK_WORKFLOW = declare(
    "DAGFLEET_TASK_WORKFLOW",
    _optional_text,
    None,
    "set by the DAG itself, never by hand: under the KubernetesExecutor each task's pod override carries "
    '`{"workflow_id", "config"}` (the raw config the DAG was parsed from), read by `dagfleet task`',
)
