"""Airflow 3's REST API (v2) as the e2e tests call it."""

from __future__ import annotations

from typing import Any

import requests


def call(session: requests.Session, url: str, method: str, path: str, **kw: Any) -> Any:
    """``METHOD {url}/api/v2{path}``: the JSON answer (None when empty); fails on any status >= 300."""
    response = session.request(method, f"{url}/api/v2{path}", timeout=30, **kw)
    assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:500]}"
    return response.json() if response.content else None
