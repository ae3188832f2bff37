"""Airflow assets named by a workflow's config: asset schedules and outlets (docs/config.md).

A config's ``schedule`` may be an asset condition, in JSON:

- ``{"assets": [uri, ...]}``: a run once every listed asset was updated (Airflow's list schedule),
- ``{"all": [term, ...]}`` / ``{"any": [term, ...]}``: Airflow's ``&`` / ``|`` (``AssetAll`` /
  ``AssetAny``), where a term is a URI or another ``{"all"|"any": [...]}``.

``outlets`` lists the assets a workflow's final tasks produce; ``dagfleet.authoring.policy`` attaches them
to the DAG's leaf tasks at parse time, so no template needs to know about them.

URIs come from the config API: untrusted. They are checked here (a scheme, printable ASCII
without whitespace, at most 1500 characters like Airflow's own column) and never opened. Nothing
here imports Airflow at module level.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_serializer

MAX_URI = 1500  # Airflow's limit on an asset URI
MAX_TERMS = 64  # assets in one schedule
MAX_DEPTH = 4  # nested all/any levels
_URI = re.compile(r"[a-z][a-z0-9+.-]*://[\x21-\x7e]+")
_CONDITION_KEYS = frozenset({"assets", "all", "any"})

# dag_id -> outlet URIs, filled by ``Workflow.dag_args()`` while a DAG file is parsed and read by
# the ``dag_policy`` in dagfleet.authoring.policy in the same process, right after the file is imported.
OUTLETS: dict[str, tuple[str, ...]] = {}


def _shown(value: object, limit: int = 60) -> str:
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def asset_uri(value: Any) -> str:
    """``value`` if it is an asset URI dagfleet accepts, else ValueError saying why."""
    if not isinstance(value, str):
        raise ValueError(f"an asset URI must be a string like 's3://bucket/key', got {_shown(value)}")
    if len(value) > MAX_URI:
        raise ValueError(f"an asset URI may be at most {MAX_URI} characters, got {len(value)}")
    if not _URI.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not an asset URI: 'scheme://...' with a lower-case scheme, "
            "printable ASCII and no whitespace"
        )
    if value.startswith("airflow://"):
        raise ValueError("the asset scheme 'airflow' is reserved by Airflow")
    return value


def is_condition(value: Any) -> bool:
    """Whether a schedule value is meant as an asset condition (one key: assets, all or any)."""
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in _CONDITION_KEYS


class AssetCondition(BaseModel):
    """``all`` or ``any`` of its terms: asset URIs or nested conditions. Dumps as its JSON form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["all", "any"]
    terms: tuple[str | AssetCondition, ...]

    @model_serializer
    def _dump(self) -> dict[str, list[Any]]:
        return {self.op: [t if isinstance(t, str) else t._dump() for t in self.terms]}

    def uris(self) -> list[str]:
        """Every URI in the condition, in order."""
        return [u for t in self.terms for u in ([t] if isinstance(t, str) else t.uris())]

    def to_airflow(self) -> Any:
        """``Asset`` / ``AssetAll`` / ``AssetAny`` objects for ``DAG(schedule=...)``."""
        from airflow.sdk import Asset, AssetAll, AssetAny

        parts = [Asset(t) if isinstance(t, str) else t.to_airflow() for t in self.terms]
        if len(parts) == 1:
            return parts[0]
        return AssetAll(*parts) if self.op == "all" else AssetAny(*parts)


def parse_condition(value: Mapping[str, Any]) -> AssetCondition:
    """An asset schedule in its JSON form (``is_condition(value)``), checked; ValueError otherwise."""
    condition = _parse(value, depth=1)
    count = len(condition.uris())
    if count > MAX_TERMS:
        raise ValueError(f"an asset schedule may name at most {MAX_TERMS} assets, got {count}")
    return condition


def _parse(value: Any, depth: int) -> AssetCondition:
    if depth > MAX_DEPTH:
        raise ValueError(f"an asset schedule may nest 'all'/'any' at most {MAX_DEPTH} levels deep")
    if not is_condition(value):
        raise ValueError(f"expected an asset URI or {{'all'|'any': [...]}}, got {_shown(value)}")
    key, terms = next(iter(value.items()))
    if not isinstance(terms, list) or not terms:
        raise ValueError(f"'{key}' takes a non-empty list of asset URIs, got {_shown(terms)}")
    if key == "assets" and not all(isinstance(t, str) for t in terms):
        raise ValueError("'assets' takes asset URIs only; combine conditions with 'all' or 'any'")
    if len(terms) > MAX_TERMS:
        raise ValueError(f"an asset schedule may name at most {MAX_TERMS} assets, got {len(terms)}")
    parsed = tuple(asset_uri(t) if isinstance(t, str) else _parse(t, depth + 1) for t in terms)
    return AssetCondition(op="any" if key == "any" else "all", terms=parsed)


def outlet_assets(uris: tuple[str, ...] | list[str]) -> list[Any]:
    """``Asset`` objects for a task's ``outlets``."""
    from airflow.sdk import Asset

    return [Asset(uri) for uri in uris]
