"""Client of the config API (contract: docs/openapi.yaml).

One ``requests.Session``, connect/read timeouts plus a total deadline per response, the shared
retry policy, ``ETag``/``If-None-Match``. The API key travels only in the ``x-api-key`` header:
it is never part of a log line or an exception message.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import requests.adapters
from tenacity import Retrying

from dagfleet.api import jsonlimits
from dagfleet.api.retry import retry_policy
from dagfleet.fleet import __version__
from dagfleet.fleet.errors import ConfigApiError
from dagfleet.fleet.settings import Settings

log = logging.getLogger(__name__)

LIST_PATH = "/airflowconfigs"
MAX_BODY_BYTES = 64 * 1024 * 1024
# Connections kept alive: one per parallel fetch (the sync runs this many fetch workers).
POOL_SIZE = 8
# An answer without a useful body (304, errors) is read to its end, up to this many bytes, so its
# connection goes back to the pool; a longer one is closed instead.
DRAIN_BYTES = 64 * 1024
# Lines about unreadable list entries before the rest are summed up in one line.
MAX_PROBLEMS_SHOWN = 10


@dataclass(frozen=True)
class Entry:
    """One workflow from the list: its raw ID and, when the list carries it, its raw config."""

    workflow_id: str
    config: dict[str, Any] | None = None
    problem: str | None = None  # the entry could not be read (e.g. beyond a JSON bound): kept as it was


@dataclass(frozen=True)
class ListResult:
    entries: list[Entry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    etag: str | None = None
    not_modified: bool = False
    unreadable: int = 0  # entries whose ID could not be read: nothing is pruned in such a sync


@dataclass(frozen=True)
class ConfigResult:
    config: dict[str, Any] | None
    etag: str | None = None
    not_modified: bool = False


def config_path(workflow_id: str) -> str:
    """The path of one workflow's config: the ID percent-encoded as one path segment."""
    return f"{LIST_PATH}/{quote(workflow_id, safe='')}"


def display_url(url: str) -> str:
    """``url`` with any ``user:password@`` removed (credentials never reach a log line)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds (finite, not negative) or an
    HTTP date; anything else (NaN, infinity, a negative number, garbage) is ``None``: the backoff."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class _Unreadable:
    """A list entry beyond a JSON bound (``reason``), with its ID when that could be read."""

    reason: str
    workflow_id: str | None


def _malformed(what: str, err: ValueError) -> ConfigApiError:
    return ConfigApiError(
        f"config API sent malformed JSON for {what} ({err.__class__.__name__} at byte "
        f"{getattr(err, 'pos', '?')}): fix the config service's output"
    )


def _beyond_limits(what: str, err: jsonlimits.JsonLimitError) -> ConfigApiError:
    return ConfigApiError(f"config API sent {what} that {err}: fix the config service's output (see docs/openapi.yaml)")


def parse_list_body(body: bytes) -> tuple[list[Entry], list[str], int]:
    """The list's entries, problem lines and count of unreadable entries, from the raw body.

    A body beyond a JSON bound (jsonlimits) is read entry by entry, so only the entry that
    breaks it is affected; when the list itself cannot be read, one ``ConfigApiError``.
    """
    what = "the workflow list"
    try:
        return (*parse_list(jsonlimits.loads(body)), 0)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _malformed(what, err) from None
    except jsonlimits.JsonLimitError as err:
        whole = err
    try:
        elements = jsonlimits.split_array(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _malformed(what, err) from None
    if elements is None:
        raise _beyond_limits("a workflow list", whole)
    payload: list[Any] = []
    for element in elements:
        try:
            payload.append(jsonlimits.loads(element, jsonlimits.MAX_DEPTH - 1))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise _malformed(what, err) from None
        except jsonlimits.JsonLimitError as err:
            payload.append(_Unreadable(str(err), jsonlimits.find_id(element)))
    entries, problems = parse_list(payload)
    unreadable = sum(1 for item in payload if isinstance(item, _Unreadable) and item.workflow_id is None)
    if not entries:
        raise _beyond_limits("a workflow list", whole)
    return entries, problems, unreadable


def parse_list(payload: Any) -> tuple[list[Entry], list[str]]:
    """Accept ``["a", "b"]`` or ``[{"id": "a", "config": {...}}]`` (optionally under ``workflows``)."""
    if isinstance(payload, dict) and "workflows" in payload:
        payload = payload["workflows"]
    if not isinstance(payload, list):
        raise ConfigApiError(
            f"config API answered {type(payload).__name__} for {LIST_PATH}, expected a JSON list of "
            'workflow IDs or of {"id": ..., "config": {...}} objects'
        )
    entries: list[Entry] = []
    problems: list[str] = []
    for index, item in enumerate(payload):
        if isinstance(item, str):
            entries.append(Entry(item))
        elif isinstance(item, _Unreadable):
            if item.workflow_id is None:
                problems.append(f"entry #{index} of the workflow list {item.reason}: skipped; nothing is pruned")
            else:
                problem = f"its entry in the workflow list {item.reason} (fix it in the config API)"
                entries.append(Entry(item.workflow_id, None, problem=problem))
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            config = item.get("config")
            if config is not None and not isinstance(config, dict):
                problems.append(f"workflow {item['id'][:60]!a}: 'config' must be an object, skipped")
                entries.append(Entry(item["id"], None))
                continue
            entries.append(Entry(item["id"], config))
        else:
            problems.append(
                f"entry #{index} of the workflow list is neither an ID string nor an object with a string 'id': skipped"
            )
    if len(problems) > MAX_PROBLEMS_SHOWN:
        hidden = len(problems) - MAX_PROBLEMS_SHOWN
        problems[MAX_PROBLEMS_SHOWN:] = [f"… and {hidden:,} more problems with entries of the workflow list"]
    return entries, problems


class ConfigClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        retrying: Retrying | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retrying = retrying or retry_policy()
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.bytes_received = 0
        # One Session for every thread: urllib3's connection pool is thread-safe and keeps
        # connections alive across the parallel per-workflow fetches.
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = f"dagfleet/{__version__}"
        self.session.headers["Accept"] = "application/json"
        if api_key:
            self.session.headers["x-api-key"] = api_key

    @property
    def shown_url(self) -> str:
        """The base URL without any ``user:password@`` part: the only form that is ever logged."""
        return display_url(self.base_url)

    def __repr__(self) -> str:  # never show the key
        return f"ConfigClient({self.shown_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings, *, retrying: Retrying | None = None) -> ConfigClient:
        if not settings.api_url:
            raise ConfigApiError("no config API configured: set DAGFLEET_API_URL")
        return cls(
            settings.api_url,
            settings.api_key,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            retrying=retrying or retry_policy(settings.retries),
        )

    def close(self) -> None:
        self.session.close()

    # -- public API -------------------------------------------------------------------------
    def list_workflows(self, etag: str | None = None) -> ListResult:
        status, body, new_etag = self._get(LIST_PATH, etag)
        if status == 304:
            return ListResult(etag=etag, not_modified=True)
        entries, problems, unreadable = parse_list_body(body)
        return ListResult(entries, problems, new_etag, unreadable=unreadable)

    def get_config(self, workflow_id: str, etag: str | None = None) -> ConfigResult:
        what = f"workflow {workflow_id!a}"
        status, body, new_etag = self._get(config_path(workflow_id), etag, what=what)
        if status == 304:
            return ConfigResult(None, etag, not_modified=True)
        try:
            payload = jsonlimits.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise _malformed(what, err) from None
        except jsonlimits.JsonLimitError as err:
            raise _beyond_limits(f"a config for {what}", err) from None
        if isinstance(payload, dict) and isinstance(payload.get("config"), dict) and "id" in payload:
            payload = payload["config"]
        if not isinstance(payload, dict):
            raise ConfigApiError(f"config API answered {type(payload).__name__} for {what}, expected a JSON object")
        return ConfigResult(payload, new_etag)

    # -- plumbing ---------------------------------------------------------------------------
    def _get(self, path: str, etag: str | None, what: str = "the workflow list") -> tuple[int, bytes, str | None]:
        for attempt in self.retrying.copy():  # a fresh state per call (thread-safe)
            with attempt:
                return self._get_once(path, etag, what)
        raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises

    def _get_once(self, path: str, etag: str | None, what: str) -> tuple[int, bytes, str | None]:
        """One request, bounded as a whole by connect + read timeout: the one place of that deadline.

        requests' timeouts bound each socket operation, not the response: a server trickling
        its headers or body a byte at a time would hold the sync forever. The request runs in a
        daemon thread that is abandoned at the deadline; ``abandoned`` tells it to stop reading
        (its connection is then discarded).
        """
        total = self.connect_timeout + self.read_timeout
        abandoned = threading.Event()
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                outcome["value"] = self._request(path, etag, what, abandoned)
            except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread below
                outcome["error"] = err

        worker = threading.Thread(target=work, name="dagfleet-request", daemon=True)
        worker.start()
        worker.join(total + 0.25)  # a little grace for an answer that is just finishing
        if worker.is_alive():
            abandoned.set()
            raise ConfigApiError(
                f"config API at {self.shown_url} took longer than {total:g}s to send {what} "
                "(DAGFLEET_CONNECT_TIMEOUT + DAGFLEET_READ_TIMEOUT)",
                retryable=True,
            )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _request(
        self, path: str, etag: str | None, what: str, abandoned: threading.Event
    ) -> tuple[int, bytes, str | None]:
        with self._lock:
            self.requests_sent += 1
        response = self._send(path, etag, what)
        with response:
            try:
                if response.status_code == 304 and etag:
                    return 304, b"", etag
                self._check_status(response, what)
                _check_json(response, what)
                body = _read_body(response, what, abandoned)
            finally:
                _drain(response, abandoned)
        with self._lock:
            self.bytes_received += len(body)
        return response.status_code, body, response.headers.get("ETag")

    def _send(self, path: str, etag: str | None, what: str) -> requests.Response:
        """The request, sent; the answer's headers read, its body not yet."""
        try:
            # No redirects: requests would carry the x-api-key header to whatever host a redirect names.
            return self.session.get(
                self.base_url + path,
                headers={"If-None-Match": etag} if etag else {},
                timeout=(self.connect_timeout, self.read_timeout),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.ConnectTimeout:
            raise ConfigApiError(
                f"config API at {self.shown_url} did not accept a connection within "
                f"{self.connect_timeout:g}s: check DAGFLEET_API_URL and the network",
                retryable=True,
            ) from None
        except requests.exceptions.ReadTimeout:
            raise ConfigApiError(
                f"config API at {self.shown_url} did not answer {what} within {self.read_timeout:g}s "
                "(DAGFLEET_READ_TIMEOUT)",
                retryable=True,
            ) from None
        except requests.exceptions.ConnectionError:
            raise ConfigApiError(
                f"config API at {self.shown_url} is unreachable (connection failed): check "
                "DAGFLEET_API_URL and that the service is up",
                retryable=True,
            ) from None
        except requests.exceptions.RequestException as err:
            raise ConfigApiError(f"config API request to {self.shown_url} failed: {type(err).__name__}") from None

    def _check_status(self, response: requests.Response, what: str) -> None:
        """Nothing for a 200; otherwise the error this status means (retryable or not)."""
        status = response.status_code
        if status in (401, 403):
            reason = "no API key was sent" if not self._api_key else "the API key was rejected"
            raise ConfigApiError(
                f"config API refused {what} (HTTP {status}): {reason}; set DAGFLEET_API_KEY or "
                "DAGFLEET_API_KEY_FILE to a valid key",
                status=status,
            )
        if status == 429 or status >= 500:
            raise ConfigApiError(
                f"config API answered HTTP {status} for {what}",
                status=status,
                retryable=True,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status == 404:
            raise ConfigApiError(
                f"config API answered HTTP 404 (not found) for {what}: check DAGFLEET_API_URL and the workflow ID",
                status=status,
            )
        if status != 200:
            raise ConfigApiError(f"config API answered HTTP {status} for {what}", status=status)


def _check_json(response: requests.Response, what: str) -> None:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        shown = content_type or "no content type"
        raise ConfigApiError(
            f"config API answered {what} with {shown}, not JSON: is DAGFLEET_API_URL the config API?",
            status=response.status_code,
        )


def _read_body(response: requests.Response, what: str, abandoned: threading.Event) -> bytes:
    """The whole body, up to MAX_BODY_BYTES; a broken connection is a (retryable) truncated answer."""
    body = bytearray()
    try:
        for chunk in response.iter_content(65536):
            body.extend(chunk)
            if len(body) > MAX_BODY_BYTES:
                raise ConfigApiError(f"config API answer for {what} is larger than {MAX_BODY_BYTES // 2**20} MiB")
            if abandoned.is_set():
                break  # past the deadline: the caller has already reported it and drops this answer
    except requests.exceptions.RequestException:
        raise ConfigApiError(
            f"config API connection broke while sending {what} (truncated answer)", retryable=True
        ) from None
    return bytes(body)


def _drain(response: requests.Response, abandoned: threading.Event) -> None:
    """Read what is left of a small answer (a 304's empty body, an error page), so that closing
    the response gives its connection back to the pool instead of closing it: every request of a
    sync, cold or warm, then reuses the same few kept-alive connections."""
    if response._content_consumed:
        return
    length = response.headers.get("Content-Length")
    if length is not None and (not length.isdigit() or int(length) > DRAIN_BYTES):
        return  # closed instead: not worth reading
    read = 0
    try:
        for chunk in response.iter_content(8192):
            read += len(chunk)
            if read > DRAIN_BYTES or abandoned.is_set():
                return
    except requests.exceptions.RequestException:
        return
