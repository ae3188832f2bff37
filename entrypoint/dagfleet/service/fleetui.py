"""The Fleet page in Airflow's UI: the table of ``dagfleet status``, served by the api-server.

A FastAPI app (mounted by the plugin under ``/dagfleet``) renders the page from the dags folder's
``.dagfleet/status.json`` (``fleetstatus.load``), or, when ``DAGFLEET_STATUS_URL`` is set (the
chart: the api-server has no dags folder), from a watch sidecar's ``/status.json`` (one GET with a
short timeout; when it fails the page says so in one line). An external view puts it in Airflow's
navigation.
Both need a logged-in user allowed to read DAGs: the browser's Airflow session cookie (or a
``Bearer`` token) is checked by Airflow's own security dependencies, imported only when a request
comes (the plugin module is also loaded by the dag-processor, which must stay light).

    GET /dagfleet/             the page (HTML, no JavaScript)
    GET /dagfleet/status.json  the same as ``dagfleet status --json``
"""

from __future__ import annotations

import functools
import html
import inspect
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.settings import Settings, read_setting
from dagfleet.sync import fleetstatus

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

URL_PREFIX = "/dagfleet"
# DAGFLEET_STATUS_URL: (connect, read) seconds. The page is rendered in a worker thread of the
# api-server: a dead sidecar costs one page view at most this long, never the api-server.
STATUS_URL_TIMEOUT = (2.0, 3.0)
# The nav entry: Airflow shows `href` (relative to its base URL) in an iframe at /plugin/<url_route>.
EXTERNAL_VIEW = {
    "name": "Fleet",
    "href": "dagfleet/",
    "url_route": "fleet",
    "destination": "nav",
    "category": "browse",
}

STATE_LABELS = {
    "synced": "synced",
    "kept_last_known_good": "kept last known good",
    "rejected": "rejected",
    "pruned": "pruned",
    "not_created": "not created",
    "unknown": "unknown",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1a202c; }
h1 { font-size: 1.4rem; margin: 0 0 .75rem; }
.summary { margin: 0 0 1rem; padding: .75rem 1rem; border-radius: 6px; background: #f0fff4; }
.summary.bad { background: #fff5f5; }
.summary p { margin: .2rem 0; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
th { background: #f7fafc; }
.state { font-weight: 600; white-space: nowrap; }
.state-synced { color: #276749; }
.state-rejected, .state-not_created { color: #c53030; }
.state-kept_last_known_good, .state-unknown { color: #b7791f; }
.state-pruned { color: #718096; }
.problem, .version { font-family: ui-monospace, monospace; font-size: .8rem; }
"""


def dags_folder(environ: Mapping[str, str] | None = None) -> Path:
    """The dags folder dagfleet syncs: DAGFLEET_DAGS_FOLDER, else Airflow's own setting."""
    configured = read_setting(os.environ if environ is None else environ, "DAGFLEET_DAGS_FOLDER", derive=False)
    if configured:
        return configured
    from airflow.configuration import conf

    return Path(conf.get("core", "dags_folder")).expanduser()


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    shown = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{shown} ({max(now - timestamp, 0):.0f}s ago)"


class StatusUnavailable(Exception):
    """The status could not be read (DAGFLEET_STATUS_URL unreachable or not a status): one line."""


def fetch_status(url: str, timeout: tuple[float, float] = STATUS_URL_TIMEOUT) -> fleetstatus.FleetStatus:
    """One GET of a watch's /status.json; StatusUnavailable (one line naming the URL) on any failure."""
    import requests

    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
        response.raise_for_status()
    except requests.RequestException as err:
        reason = type(err).__name__ if not isinstance(err, requests.HTTPError) else f"HTTP {err.response.status_code}"
        raise StatusUnavailable(
            f"cannot read the fleet status from DAGFLEET_STATUS_URL {url} ({reason}): "
            "check that the dag-processor's dag-sync sidecar is running with its metrics port on"
        ) from None
    try:
        return fleetstatus.from_json(response.json())
    except (ValueError, KeyError, TypeError):  # requests' JSONDecodeError is a ValueError
        raise StatusUnavailable(
            f"DAGFLEET_STATUS_URL {url} did not answer a dagfleet status: point it at a watch's /status.json"
        ) from None


def render_unavailable(message: str) -> str:
    """The page when the status cannot be read: one line, no traceback."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dagfleet: Fleet</title><style>{_STYLE}</style></head>
<body>
<h1>Fleet</h1>
<div class="summary bad" id="summary">
<p class="problem" id="unavailable">{html.escape(message)}</p>
</div>
</body></html>
"""


def _summary_html(status: fleetstatus.FleetStatus, now: float) -> list[str]:
    """The summary's paragraphs: healthy or not, the last sync, the last success, fleet problems."""
    e = html.escape
    counts = ", ".join(f"{n} {STATE_LABELS.get(s, s)}" for s, n in status.counts().items())
    return [
        f"<p><strong>{'Healthy' if status.healthy else 'Not healthy'}</strong>: "
        f"{sum(1 for w in status.workflows if w.dag_file)} generated DAG(s); {e(counts)}</p>",
        f"<p>Last sync: {e(_when(status.attempted_at, now))}: {e(status.summary)}</p>",
        f"<p>Last success: {e(_when(status.last_success, now))}</p>",
        f'<p id="fleet-version">Fleet version: {e(status.fleet_version or "none published yet")}</p>',
        *(f'<p class="problem">Problem: {e(p)}</p>' for p in status.problems),
        *_shards_html(status),
    ]


def _shards_html(status: fleetstatus.FleetStatus) -> list[str]:
    """With several shards (DAGFLEET_SHARDS), one line: each bundle, its workflows and version."""
    if len(status.shards) < 2:
        return []
    parts = [f"{r['bundle']}: {r['workflows']} workflows, version {r['version'] or 'none yet'}" for r in status.shards]
    return [f'<p id="shards">DAG bundles, one dag-processor each: {html.escape("; ".join(parts))}</p>']


def _row_html(w: fleetstatus.WorkflowStatus) -> str:
    """One workflow's table row, its name linked to its DAG when it has one."""
    e = html.escape
    # The DAG page of Airflow's UI, relative to this page (<base>/dagfleet/): works under any base URL.
    name = (
        f'<a href="../dags/{quote(w.workflow_id, safe="")}" target="_top">{e(w.workflow_id)}</a>'
        if w.has_dag
        else e(w.workflow_id)
    )
    stored = datetime.fromtimestamp(w.stored_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if w.stored_at else "-"
    return (
        f'<tr data-workflow="{e(w.workflow_id)}"><td>{name}</td>'
        f'<td class="state state-{e(w.state)}">{e(STATE_LABELS.get(w.state, w.state))}</td>'
        f"<td>{e(w.template)}</td><td>{e(w.source)}</td><td>{e(stored)}</td>"
        f'<td class="version">{e(w.version or "-")}</td><td class="problem">{e(w.problem or "-")}</td></tr>'
    )


def render_page(status: fleetstatus.FleetStatus, now: float) -> str:
    """The page: the sync summary on top, then one row per workflow with a link to its DAG."""
    summary = _summary_html(status, now)
    rows = [_row_html(w) for w in status.workflows]
    body = "\n".join(rows) or '<tr><td colspan="7">No workflows recorded yet.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dagfleet: Fleet</title><style>{_STYLE}</style></head>
<body>
<h1>Fleet</h1>
<div class="summary{"" if status.healthy else " bad"}" id="summary">
{chr(10).join(summary)}
</div>
<table id="fleet">
<thead><tr><th>Workflow</th><th>State</th><th>Template</th><th>Source</th><th>Stored (UTC)</th>
<th title="the fleet version a run created now pins (dagfleet show WORKFLOW --version V)">Version</th>
<th>Problem</th></tr></thead>
<tbody>
{body}
</tbody>
</table>
</body></html>
"""


async def _authorize(request: Request) -> None:
    """A logged-in user allowed to read DAGs (401/403 otherwise), checked by Airflow itself."""
    from airflow.api_fastapi.core_api.security import get_user, requires_access_dag
    from fastapi.security import HTTPBearer

    bearer = await HTTPBearer(auto_error=False)(request)
    user = await get_user(request, None, bearer)
    requires_access_dag("GET")(request, user)


def _status() -> fleetstatus.FleetStatus:
    """From DAGFLEET_STATUS_URL when set, else from the local dags folder."""
    try:
        url = read_setting(os.environ, "DAGFLEET_STATUS_URL")
    except DagfleetError as err:
        raise StatusUnavailable(str(err)) from None
    if url:
        return fetch_status(url)
    return fleetstatus.load(Settings(dags_folder=dags_folder()))


@functools.cache
def fastapi_app() -> dict[str, Any]:
    """The plugin's ``fastapi_apps`` entry (built once, on first use: only the api-server asks)."""
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse

    # FastAPI reads the dependency's parameters from its signature: give it the real class (this
    # module imports FastAPI lazily, so its annotations are only names).
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    _authorize.__signature__ = inspect.Signature([request])  # type: ignore[attr-defined]

    app: FastAPI = FastAPI(title="dagfleet fleet", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=[Depends(_authorize)])
    def page() -> HTMLResponse:
        try:
            text = render_page(_status(), time.time())
        except StatusUnavailable as err:
            return HTMLResponse(render_unavailable(str(err)), status_code=502, headers={"Cache-Control": "no-store"})
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    @app.get("/status.json", dependencies=[Depends(_authorize)])
    def status_json() -> JSONResponse:
        try:
            data = _status().to_json()
        except StatusUnavailable as err:
            return JSONResponse({"error": str(err)}, status_code=502, headers={"Cache-Control": "no-store"})
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    return {"app": app, "url_prefix": URL_PREFIX, "name": "dagfleet fleet"}
