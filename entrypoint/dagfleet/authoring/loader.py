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
from dataclasses import dataclass
from typing import Any

from dagfleet.authoring.cache import CacheEntry, ConfigCache, open_cache
from dagfleet.fleet import workflow_ids
from dagfleet.fleet.config import WorkflowConfig, validate_config
from dagfleet.fleet.errors import ConfigApiError, DagfleetError, WorkflowConfigError
from dagfleet.fleet.settings import Settings
from dagfleet.fleet.store import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    config: WorkflowConfig
    source: str  # "stored", "defaults", "cache", "api" or "last-known-good"
    record: Record | None = None  # the stored record the config was read from ("stored" only)


def load(workflow_id: str, settings: Settings | None = None, *, cache: ConfigCache | None = None) -> Loaded:
    settings = settings or Settings.from_env()
    workflow_ids.validate(workflow_id)
    store = settings.store
    record = store.record(workflow_id)
    if record is not None:
        return Loaded(validate_config(workflow_id, record.config), "stored", record)
    if store.record_path(workflow_id).exists():
        log.warning("workflow %r: ignoring unreadable stored record %s", workflow_id, store.record_path(workflow_id))
    if not settings.api_url:
        return Loaded(validate_config(workflow_id, {}), "defaults")

    cache = cache or open_cache(settings)
    entry = _cached(cache, workflow_id)
    if entry is not None and entry.fresh(settings.cache_ttl):
        return Loaded(validate_config(workflow_id, entry.config), "cache")
    try:
        raw = fetch_config(workflow_id, settings)
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
        return Loaded(validate_config(workflow_id, entry.config), "last-known-good")
    config = validate_config(workflow_id, raw)  # an invalid live config is an error, never cached
    try:
        cache.put(workflow_id, raw)
    except DagfleetError as err:
        log.warning("workflow %r: %s", workflow_id, err)
    return Loaded(config, "api")


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
