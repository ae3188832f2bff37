"""Find one workflow's config while its DAG file is parsed (docs/config.md, "Where a DAG gets its config").

1. the config ``dagfleet sync`` stored next to the DAG files (no network);
2. else the cache entry when it is fresh, else the live config API, one attempt bounded by
   ``DAGFLEET_PARSE_TIMEOUT`` (a hard bound: the client abandons a request as a whole at its
   deadline, so even a hanging DNS lookup cannot hold the parse); a good answer refreshes the cache;
3. else, when the API failed, the stale cache entry: the last known good config;
4. else a ``WorkflowConfigError`` saying what was tried.

Without ``DAGFLEET_API_URL`` and without a stored config the workflow gets the defaults (``{}``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dagfleet.authoring.cache import CacheEntry, ConfigCache, open_cache
from dagfleet.fleet import workflow_ids
from dagfleet.fleet.config import WorkflowConfig, validate_config
from dagfleet.fleet.errors import ConfigApiError, DagfleetError, WorkflowConfigError
from dagfleet.fleet.settings import Settings, read_setting
from dagfleet.fleet.store import Record, workflow_id_from_file
from dagfleet.fleet.versions import is_snapshot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    config: WorkflowConfig
    source: str  # "stored", "defaults", "cache", "api" or "last-known-good"
    record: Record | None = None  # the stored record the config was read from ("stored" only)


@dataclass(frozen=True)
class ParsedFile:
    """What the parse of one generated DAG file read, each thing once: the file, the settings,
    the workflow's config (and the stored record it came from)."""

    workflow_id: str
    settings: Settings
    loaded: Loaded
    dag: bytes | None  # the DAG file's bytes (None: unreadable)


def parse_settings(dag_file: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings, with the DAG file's own folder as the dags folder unless DAGFLEET_DAGS_FOLDER
    names one: sync writes the file and its record side by side, whatever Airflow's config says.
    A file in a version snapshot (the dagfleet bundle) always reads that snapshot's record."""
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    folder = Path(dag_file).parent
    if read_setting(env, "DAGFLEET_DAGS_FOLDER", derive=False) and not is_snapshot(folder):
        return settings
    return replace(settings, dags_folder=folder)


def load_file(dag_file: str | Path) -> ParsedFile:
    """Everything ``workflow(__file__)`` needs, read once. A record stored by sync was checked
    then; a config from anywhere else (the API or the cache, when sync stored none) has its
    ``spec`` checked here against its template's schema."""
    try:
        dag: bytes | None = Path(dag_file).read_bytes()
    except OSError:
        dag = None
    settings = parse_settings(dag_file)
    workflow_id = workflow_id_from_file(Path(dag_file).name)
    raw, loaded = _find(workflow_id, settings)
    if loaded.source != "stored" and loaded.config.spec:
        from dagfleet.fleet.check import check_config

        check_config(workflow_id, loaded.config, raw, settings.template_library())
    return ParsedFile(workflow_id, settings, loaded, dag)


def load(workflow_id: str, settings: Settings | None = None, *, cache: ConfigCache | None = None) -> Loaded:
    """The validated config of ``workflow_id`` (see the module docstring for the order)."""
    return _find(workflow_id, settings or Settings.from_env(), cache)[1]


def _find(workflow_id: str, settings: Settings, cache: ConfigCache | None = None) -> tuple[Any, Loaded]:
    """(raw config, its validation and source): found in the order of the module docstring, validated once."""
    workflow_ids.validate(workflow_id)
    record, source, raw = _stored(workflow_id, settings)
    if source == "api":
        cache = cache or open_cache(settings)
        raw, source = _from_cache_or_api(workflow_id, settings, cache)
    config = validate_config(workflow_id, raw)  # an invalid live config is an error, never cached
    if source == "api":
        try:
            cache.put(workflow_id, raw)  # type: ignore[union-attr]
        except DagfleetError as err:
            log.warning("workflow %r: %s", workflow_id, err)
    return raw, Loaded(config, source, record)


def _stored(workflow_id: str, settings: Settings) -> tuple[Record | None, str, Any]:
    """(record, "stored", its config), else (None, "defaults", {}) without an API, else (None, "api", None)."""
    store = settings.store
    record = store.record(workflow_id)
    if record is not None:
        return record, "stored", record.config
    if store.record_path(workflow_id).exists():
        log.warning("workflow %r: ignoring unreadable stored record %s", workflow_id, store.record_path(workflow_id))
    return None, ("api" if settings.api_url else "defaults"), {}


def _from_cache_or_api(workflow_id: str, settings: Settings, cache: ConfigCache) -> tuple[Any, str]:
    """(raw config, source): the fresh cache entry, else the live API, else the stale entry."""
    entry = _cached(cache, workflow_id)
    if entry is not None and entry.fresh(settings.cache_ttl):
        return entry.config, "cache"
    try:
        return fetch_config(workflow_id, settings), "api"
    except DagfleetError as err:
        if entry is None:
            raise WorkflowConfigError(
                f"workflow {workflow_id!r}: no config to build the DAG from: dagfleet sync stored none, "
                f"nothing is cached and {err}"
            ) from None
        log.warning(
            "workflow %r: %s; using the last known good config (cached %.0fs ago)",
            workflow_id,
            err,
            entry.age(),
        )
        return entry.config, "last-known-good"


def _cached(cache: ConfigCache, workflow_id: str) -> CacheEntry | None:
    try:
        return cache.get(workflow_id)
    except DagfleetError as err:
        log.warning("workflow %r: %s", workflow_id, err)
        return None


def parse_timeouts(settings: Settings) -> tuple[float, float]:
    """(connect, read) timeouts whose sum stays within ``DAGFLEET_PARSE_TIMEOUT``."""
    connect = min(settings.connect_timeout, settings.parse_timeout / 2)
    read = min(settings.read_timeout, settings.parse_timeout - connect)
    return connect, read


def fetch_config(workflow_id: str, settings: Settings) -> dict[str, Any]:
    """One ``GET /airflowconfigs/{id}`` within ``DAGFLEET_PARSE_TIMEOUT``.

    The client bounds a request as a whole (DNS, connect, headers, body) by connect + read
    timeout, and ``parse_timeouts`` keeps that sum within the parse timeout.
    """
    from dagfleet.api.client import ConfigClient  # requests: only needed on this path
    from dagfleet.api.retry import retry_policy

    connect, read = parse_timeouts(settings)
    client = ConfigClient(
        settings.api_url or "", settings.api_key, connect_timeout=connect, read_timeout=read, retrying=retry_policy(1)
    )
    try:
        config = client.get_config(workflow_id).config
    except DagfleetError:
        raise
    except Exception as err:  # noqa: BLE001 - reported as one line, the parse goes on
        raise ConfigApiError(f"config API request failed: {type(err).__name__}") from None
    finally:
        client.close()
    if not isinstance(config, dict):
        raise ConfigApiError(f"config API sent no config for workflow {workflow_id!r}")
    return config
