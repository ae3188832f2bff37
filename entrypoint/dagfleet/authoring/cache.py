"""The parse-time config cache: a TTL cache that doubles as the last known good config.

One interface (``ConfigCache``), two backends:

* ``DiskCache`` (default): one JSON file per workflow in the store's cache folder (dagfleet.fleet.store),
  written atomically; shared by every process that sees the dags folder.
* ``RedisCache`` (``DAGFLEET_CACHE_URL=redis://…``): shared by every DAG processor and worker.
  Short socket timeouts and no retries, so a dead Redis costs at most about a second; it is
  always layered over the disk cache (``LayeredCache``), which keeps a local last known good.

Entries never expire: ``fresh()`` decides whether the API should be asked again, and a stale
entry is what the loader falls back to when the API is down.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dagfleet.fleet import fsutil, workflow_ids
from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

REDIS_PREFIX = "dagfleet:config:"
REDIS_KEEP_SECONDS = 30 * 24 * 3600  # an entry no process refreshed for a month is dropped
MAX_REDIS_TIMEOUT = 1.0


class CacheUnavailable(DagfleetError):
    """The cache backend cannot be reached right now (the caller falls back)."""


@dataclass(frozen=True)
class CacheEntry:
    workflow_id: str
    config: dict[str, Any]
    stored_at: float

    def age(self, now: float | None = None) -> float:
        return max((time.time() if now is None else now) - self.stored_at, 0.0)

    def fresh(self, ttl: float, now: float | None = None) -> bool:
        return self.age(now) < ttl

    def to_json(self) -> dict[str, Any]:
        return {"workflow_id": self.workflow_id, "stored_at": self.stored_at, "config": self.config}

    @classmethod
    def from_json(cls, workflow_id: str, value: Any) -> CacheEntry | None:
        """``None`` for anything that is not an entry of this workflow (corrupt, foreign)."""
        if (
            isinstance(value, dict)
            and value.get("workflow_id") == workflow_id
            and isinstance(value.get("config"), dict)
            and isinstance(value.get("stored_at"), int | float)
        ):
            return cls(workflow_id, value["config"], float(value["stored_at"]))
        return None


class ConfigCache(Protocol):
    name: str

    def get(self, workflow_id: str) -> CacheEntry | None:
        """The cached entry (fresh or not), ``None`` when there is none."""
        ...

    def put(self, workflow_id: str, config: dict[str, Any], now: float | None = None) -> CacheEntry:
        """Store a config that just validated (the new last known good)."""
        ...


class DiskCache:
    name = "disk"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, workflow_id: str) -> Path:
        return self.root / f"{workflow_ids.validate(workflow_id)}.json"

    def get(self, workflow_id: str) -> CacheEntry | None:
        return CacheEntry.from_json(workflow_id, fsutil.read_json(self.path(workflow_id)))

    def put(self, workflow_id: str, config: dict[str, Any], now: float | None = None) -> CacheEntry:
        entry = CacheEntry(workflow_id, config, time.time() if now is None else now)
        try:
            fsutil.atomic_write_json(self.path(workflow_id), entry.to_json())
        except OSError as err:  # a read-only dags folder (git-sync): caching is best effort
            log.warning("workflow %r: cannot write the config cache in %s: %s", workflow_id, self.root, err)
        return entry


class RedisCache:
    name = "redis"

    def __init__(self, url: str, timeout: float = MAX_REDIS_TIMEOUT) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.timeout = timeout
        self._redis: redis.Redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)

    def __repr__(self) -> str:  # the URL may hold a password
        return "RedisCache()"

    def _key(self, workflow_id: str) -> str:
        return REDIS_PREFIX + workflow_ids.validate(workflow_id)

    def _unavailable(self, err: Exception) -> CacheUnavailable:
        return CacheUnavailable(
            f"config cache at DAGFLEET_CACHE_URL is unavailable ({type(err).__name__}); using the local disk cache"
        )

    def get(self, workflow_id: str) -> CacheEntry | None:
        try:
            raw = self._redis.get(self._key(workflow_id))
        except self._errors as err:
            raise self._unavailable(err) from None
        if raw is None:
            return None
        try:
            return CacheEntry.from_json(workflow_id, json.loads(raw))
        except ValueError:
            return None

    def put(self, workflow_id: str, config: dict[str, Any], now: float | None = None) -> CacheEntry:
        entry = CacheEntry(workflow_id, config, time.time() if now is None else now)
        data = json.dumps(entry.to_json(), sort_keys=True)
        try:
            self._redis.set(self._key(workflow_id), data, ex=REDIS_KEEP_SECONDS)
        except self._errors as err:
            raise self._unavailable(err) from None
        return entry

    def close(self) -> None:
        self._redis.close()


class LayeredCache:
    """Redis first (shared), the disk cache below it (local last known good, used when Redis is down)."""

    name = "redis+disk"

    def __init__(self, shared: ConfigCache, local: ConfigCache) -> None:
        self.shared = shared
        self.local = local

    def get(self, workflow_id: str) -> CacheEntry | None:
        try:
            entry = self.shared.get(workflow_id)
        except CacheUnavailable as err:
            log.warning("workflow %r: %s", workflow_id, err)
            return self.local.get(workflow_id)
        local = self.local.get(workflow_id)
        if entry is None or (local is not None and local.stored_at >= entry.stored_at):
            return local
        # Keep a local copy of what other processes fetched: the last known good when Redis dies.
        self.local.put(workflow_id, entry.config, entry.stored_at)
        return entry

    def put(self, workflow_id: str, config: dict[str, Any], now: float | None = None) -> CacheEntry:
        entry = self.local.put(workflow_id, config, now)
        try:
            self.shared.put(workflow_id, config, entry.stored_at)
        except CacheUnavailable as err:
            log.warning("workflow %r: %s", workflow_id, err)
        return entry


def open_cache(settings: Settings) -> ConfigCache:
    """The cache ``settings`` ask for (``DAGFLEET_CACHE_URL``), always with the disk cache below."""
    disk = DiskCache(settings.store.cache_dir)
    if not settings.cache_url:
        return disk
    timeout = min(MAX_REDIS_TIMEOUT, settings.parse_timeout / 4)
    return LayeredCache(RedisCache(settings.cache_url, timeout), disk)
