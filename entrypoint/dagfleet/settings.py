"""Every ``DAGFLEET_*`` environment variable, read in one place (see docs/reference.md)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagfleet.errors import DagfleetError

if TYPE_CHECKING:
    from dagfleet.store import FleetStore
    from dagfleet.template_library import TemplateLibrary

# The templates shipped in the package (the default of DAGFLEET_TEMPLATES).
SHIPPED_TEMPLATES = Path(__file__).resolve().parent / "templates"


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("expected a number > 0")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("expected an integer >= 1")
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
    number = int(value)
    if not 1 <= number <= 65535:
        raise ValueError("expected a TCP port 1-65535 (or leave unset to turn metrics off)")
    return number


def _optional_positive_float(value: str) -> float | None:
    return _positive_float(value) if value.strip() else None


def _log_level(value: str) -> str:
    upper = value.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return upper


def _template_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,62}", value):
        raise ValueError("expected a template name (letters, digits and '_', starting with a letter)")
    return value


# name -> (parser, default as a string or None for "unset")
SPEC: dict[str, tuple[Callable[[str], Any], str | None]] = {
    "DAGFLEET_API_URL": (_url, None),
    "DAGFLEET_API_KEY": (_text, None),
    "DAGFLEET_API_KEY_FILE": (_text, None),
    "DAGFLEET_STATIC_WORKFLOWS": (_text, None),
    "DAGFLEET_DAGS_FOLDER": (_text, None),
    "DAGFLEET_TEMPLATES": (_text, None),
    "DAGFLEET_DEFAULT_TEMPLATE": (_template_name, "demo"),
    "DAGFLEET_BASE_DAG": (_text, None),
    "DAGFLEET_ALLOW_EMPTY": (_flag, "false"),
    "DAGFLEET_SYNC_INTERVAL": (_positive_float, "60"),
    "DAGFLEET_CONNECT_TIMEOUT": (_positive_float, "3"),
    "DAGFLEET_READ_TIMEOUT": (_positive_float, "10"),
    "DAGFLEET_RETRIES": (_positive_int, "4"),
    "DAGFLEET_CACHE_URL": (_cache_url, ""),
    "DAGFLEET_CACHE_TTL": (_positive_float, "300"),
    "DAGFLEET_PARSE_TIMEOUT": (_positive_float, "5"),
    "DAGFLEET_LOG_LEVEL": (_log_level, "INFO"),
    "DAGFLEET_EXEC": (_text, None),
    "DAGFLEET_METRICS_PORT": (_port, ""),
    "DAGFLEET_STUCK_AFTER": (_optional_positive_float, ""),
    "DAGFLEET_TASK_WORKFLOW": (_text, None),  # set on task pods by the DAG's pod override (dagfleet.taskpod)
    "DAGFLEET_STATUS_URL": (_url, None),
}


def invalid_env(environ: Mapping[str, str]) -> list[str]:
    """One message per unknown or unparsable ``DAGFLEET_*`` variable (values are never echoed)."""
    problems = []
    for name, value in sorted(environ.items()):
        if not name.startswith("DAGFLEET_"):
            continue
        if name not in SPEC:
            problems.append(f"{name} is not a dagfleet setting (known: see docs/reference.md)")
            continue
        try:
            SPEC[name][0](value)
        except ValueError as err:
            problems.append(f"{name}: {err}")
    return problems


def read_setting(environ: Mapping[str, str], name: str) -> Any:
    """One DAGFLEET_* setting from ``environ``, parsed by its SPEC entry (its default when unset);
    a bad value raises DagfleetError naming the variable."""
    parser, default = SPEC[name]
    raw = environ.get(name, default)
    if raw is None:
        return None
    try:
        return parser(raw)
    except ValueError as err:
        raise DagfleetError(f"{name}: {err}") from None


def _default_template(environ: Mapping[str, str]) -> str:
    """DAGFLEET_DEFAULT_TEMPLATE; with only DAGFLEET_BASE_DAG set, that file is the default."""
    if "DAGFLEET_DEFAULT_TEMPLATE" not in environ and environ.get("DAGFLEET_BASE_DAG"):
        return Path(environ["DAGFLEET_BASE_DAG"]).stem
    return read_setting(environ, "DAGFLEET_DEFAULT_TEMPLATE")


def _default_dags_folder(environ: Mapping[str, str]) -> Path:
    if environ.get("AIRFLOW__CORE__DAGS_FOLDER"):
        return Path(environ["AIRFLOW__CORE__DAGS_FOLDER"])
    home = environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "dags"


def packaged_file(*parts: str) -> Path:
    """A file shipped with the package, or its source in a checkout (editable installs)."""
    here = Path(__file__).resolve().parent
    packaged = here.joinpath(*parts)
    if packaged.exists():
        return packaged
    sources = {("data", "workflows.yaml"): ("examples", "workflows.yaml")}
    return here.parents[1].joinpath(*sources[parts])


@dataclass(frozen=True)
class Settings:
    api_url: str | None = field(default=None, repr=False)  # may carry user:password@
    api_key_value: str | None = field(default=None, repr=False)
    api_key_file: str | None = None
    static_workflows: tuple[str, ...] = ()
    dags_folder: Path = Path("dags")
    templates_folder: Path = SHIPPED_TEMPLATES
    default_template: str = "demo"
    base_dag: Path | None = None  # DAGFLEET_BASE_DAG: one more template, named after its stem
    allow_empty: bool = False
    sync_interval: float = 60.0
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    retries: int = 4
    cache_url: str = field(default="", repr=False)  # redis://:password@host: never in a repr
    cache_ttl: float = 300.0
    parse_timeout: float = 5.0
    log_level: str = "INFO"
    exec_program: str | None = None
    metrics_port: int | None = None  # `dagfleet watch` serves /metrics, /healthz, /readyz here
    stuck_after: float | None = None  # /healthz fails after this long without a loop heartbeat
    status_url: str | None = None  # the Fleet page reads the status here (a watch's /status.json), not on disk

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        static = read_setting(env, "DAGFLEET_STATIC_WORKFLOWS") or ""
        return cls(
            api_url=read_setting(env, "DAGFLEET_API_URL"),
            api_key_value=read_setting(env, "DAGFLEET_API_KEY"),
            api_key_file=read_setting(env, "DAGFLEET_API_KEY_FILE"),
            static_workflows=tuple(static.replace(",", " ").split()),
            dags_folder=Path(read_setting(env, "DAGFLEET_DAGS_FOLDER") or _default_dags_folder(env)),
            templates_folder=Path(read_setting(env, "DAGFLEET_TEMPLATES") or SHIPPED_TEMPLATES),
            default_template=_default_template(env),
            base_dag=Path(base_dag) if (base_dag := read_setting(env, "DAGFLEET_BASE_DAG")) else None,
            allow_empty=read_setting(env, "DAGFLEET_ALLOW_EMPTY"),
            sync_interval=read_setting(env, "DAGFLEET_SYNC_INTERVAL"),
            connect_timeout=read_setting(env, "DAGFLEET_CONNECT_TIMEOUT"),
            read_timeout=read_setting(env, "DAGFLEET_READ_TIMEOUT"),
            retries=read_setting(env, "DAGFLEET_RETRIES"),
            cache_url=read_setting(env, "DAGFLEET_CACHE_URL"),
            cache_ttl=read_setting(env, "DAGFLEET_CACHE_TTL"),
            parse_timeout=read_setting(env, "DAGFLEET_PARSE_TIMEOUT"),
            log_level=read_setting(env, "DAGFLEET_LOG_LEVEL"),
            exec_program=read_setting(env, "DAGFLEET_EXEC"),
            metrics_port=read_setting(env, "DAGFLEET_METRICS_PORT"),
            stuck_after=read_setting(env, "DAGFLEET_STUCK_AFTER"),
            status_url=read_setting(env, "DAGFLEET_STATUS_URL"),
        )

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
        """The fleet's on-disk state in the dags folder (dagfleet.store owns the layout)."""
        from dagfleet.store import FleetStore

        return FleetStore(self.dags_folder)

    def template_library(self) -> TemplateLibrary:
        from dagfleet.template_library import TemplateLibrary

        return TemplateLibrary(self.templates_folder, self.default_template, self.base_dag)

    def exec_target(self) -> str:
        if self.exec_program:
            return self.exec_program
        return "/entrypoint" if Path("/entrypoint").exists() else (shutil.which("airflow") or "airflow")
