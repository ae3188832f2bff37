"""Per-workflow notifications: a webhook notifier on Airflow's ``BaseNotifier`` (docs/config.md).

A config names an Airflow *connection* (``{"notify": {"on_failure": {"connection": "tenant_a_hook"}}}``),
never a URL: the URL lives in the connection (``AIRFLOW_CONN_TENANT_A_HOOK=https://hooks.example.com/x``,
a Secret in the chart, or any secrets backend), so config data cannot make Airflow call an address
its operators did not configure. The notifier POSTs one small JSON object; neither the URL nor
the connection's password ever appears in a log line or an exception.
"""

from __future__ import annotations

from typing import Any

import requests
from airflow.sdk import BaseHook, BaseNotifier

TIMEOUT = (3.0, 10.0)  # connect, read (seconds)
SCHEMES = frozenset({"http", "https"})


def webhook_url(conn: Any) -> str:
    """``conn_type://host[:port][/schema]`` of an http(s) connection; ValueError otherwise."""
    scheme = (conn.conn_type or "").lower()
    if scheme not in SCHEMES or not conn.host:
        raise ValueError(f"connection {conn.conn_id!r} must be an http or https URL, e.g. https://hooks.example.com/x")
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.lstrip('/')}" if conn.schema else ""
    return f"{scheme}://{conn.host}{port}{path}"


class WebhookNotifier(BaseNotifier):
    """POST ``{"event", "dag_id", "run_id", "state", "reason"}`` to the URL of ``connection_id``."""

    def __init__(self, connection_id: str, event: str) -> None:
        super().__init__()
        self.connection_id = connection_id
        self.event = event

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render: no templated fields (and ``airflow dags test`` hands callbacks a
        serialized DAG, which has no template environment to render with)."""

    def payload(self, context: Any) -> dict[str, Any]:
        dag_run = context.get("dag_run")
        dag = context.get("dag")
        return {
            "event": self.event,
            "dag_id": getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None),
            "run_id": getattr(dag_run, "run_id", None),
            "state": str(getattr(dag_run, "state", "") or "") or None,
            "reason": context.get("reason"),
        }

    def notify(self, context: Any) -> None:
        post(self.connection_id, self.payload(context))


def post(connection_id: str, payload: dict[str, Any]) -> None:
    """POST ``payload`` as JSON to the URL of the http(s) connection ``connection_id`` (its login and
    password, when set, as basic auth); errors name the connection, never its URL."""
    conn = BaseHook.get_connection(connection_id)
    url = webhook_url(conn)
    auth = (conn.login, conn.password or "") if conn.login else None
    try:
        response = requests.post(url, json=payload, auth=auth, timeout=TIMEOUT)
    except requests.RequestException as err:  # its text holds the URL: say only what kind
        raise RuntimeError(
            f"webhook notification via connection {connection_id!r} failed: {type(err).__name__}"
        ) from None
    if response.status_code >= 400:
        raise RuntimeError(f"webhook notification via connection {connection_id!r} got HTTP {response.status_code}")


def deadline_missed(connection: str, context: dict[str, Any] | None = None) -> None:
    """The deadline alert's callback, run by the executor when a run missed its deadline: POST
    ``{"event": "deadline_missed", "dag_id", "run_id", "state", "reason"}``. Airflow passes
    ``context={"dag_run": <the run as the REST API shows it>, "deadline": {"id", "deadline_time"}}``."""
    dag_run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    payload = {
        "event": "deadline_missed",
        "dag_id": dag_run.get("dag_id"),
        "run_id": dag_run.get("dag_run_id"),
        "state": dag_run.get("state"),
        "reason": f"not finished by its deadline {deadline.get('deadline_time')}",
    }
    post(connection, payload)


def deadline_alert(deadline: Any) -> Any:
    """``DAG(deadline=...)`` for a config's ``deadline``: Airflow's ``DeadlineAlert`` on the run's
    queued time plus ``after``, whose ``SyncCallback`` (:func:`deadline_missed`) the executor runs."""
    from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

    callback = SyncCallback(deadline_missed, kwargs={"connection": deadline.connection})
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=deadline.after, callback=callback)


def callbacks(notify: Any) -> dict[str, Any]:
    """``DAG(...)`` keyword arguments for a config's ``notify`` (``{}`` without one)."""
    kwargs: dict[str, Any] = {}
    for event in ("on_failure", "on_success"):
        target = getattr(notify, event)
        if target is not None:
            kwargs[f"{event}_callback"] = WebhookNotifier(target.connection, event)
    return kwargs
