"""An independent model of what ``dagfleet sync`` must do with one answer of the config API.

Written from the documents, not from the code: ``docs/config.md`` (the fields, the JSON limits,
"unknown fields are errors", "booleans are strict"), ``docs/openapi.yaml`` (the workflow ID
pattern, the list formats, the limits, what an unreadable list or entry does) and the README's
"What dagfleet sync guarantees". It imports nothing of dagfleet's validators or parsers
(``config``, ``workflow_ids``, ``jsonlimits``, ``client``), so a bug there cannot hide itself.

The model is deliberately small: it judges only what the documents decide. Each verdict is
``True`` (valid: the sync must store exactly what was sent), ``False`` (invalid: the workflow
must keep its last known good config, or have none) or ``None`` (the documents do not say: only
the safety invariants apply). Values the encoder cannot write (5,000-deep nesting, 5,000-digit
numbers, ``NaN``) are ``Raw`` JSON text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Verdict = bool | None

# docs/openapi.yaml, WorkflowId: the pattern, "no `..`", unique case-insensitively.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# docs/openapi.yaml, "Limits": 64 levels in one answer (the list's own levels included), 100 digits.
MAX_DEPTH = 64
MAX_DIGITS = 100
# docs/config.md, "Fields".
FIELDS = frozenset(
    {"template", "spec", "description", "schedule", "start_date", "catchup", "max_active_runs", "tags",
     "default_args", "params", "items", "max_items", "pod"}
)  # fmt: skip
DEFAULT_ARGS = frozenset({"retries", "retry_delay", "execution_timeout", "owner"})
PRESETS = frozenset({"@once", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"})
MAX_DURATION_SECONDS = 999_999_999 * 86_400  # "at most 999,999,999 days"
ITEM_NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")
# The schema rules of issue #23 (docs/config.md, "Schemas"): a `$ref` must point into the same
# document. Kept in one function, `ref_verdict`, so the rule can follow the docs in one place.
LOCAL_REF = "#"


@dataclass(frozen=True)
class Raw:
    """JSON text put into an answer as it is (what Python's encoder cannot or would not write)."""

    text: str
    beyond_limits: bool = False  # deeper or longer than docs/openapi.yaml allows
    non_finite: bool = False  # NaN, Infinity


def encode(value: Any) -> str:
    """JSON text of a generated value, ``Raw`` parts as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    return json.dumps(value)


def canonical(value: Any) -> str:
    """One text per JSON value (a ``Raw`` part as Python reads it: `NaN` stays `NaN`)."""
    return json.dumps(json.loads(encode(value)), sort_keys=True)


# -- IDs ------------------------------------------------------------------------------------------
def id_valid(value: Any) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None and ".." not in value


# -- the JSON limits -------------------------------------------------------------------------------
def depth(value: Any) -> int:
    """Nesting levels of arrays/objects (a ``Raw`` beyond the limits counts as too deep)."""
    if isinstance(value, Raw):
        return MAX_DEPTH + 1 if value.beyond_limits else 0
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def within_limits(value: Any, levels_above: int) -> bool:
    return not any(isinstance(leaf, Raw) and leaf.beyond_limits for leaf in leaves(value)) and (
        depth(value) + levels_above <= MAX_DEPTH
    )


def non_finite(leaf: Any) -> bool:
    """`NaN`/`Infinity`, as Python's encoder writes a float that is not finite, or as raw text."""
    return (isinstance(leaf, float) and not math.isfinite(leaf)) or (isinstance(leaf, Raw) and leaf.non_finite)


def leaves(value: Any) -> Iterable[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


# -- configs -----------------------------------------------------------------------------------------
def combine(verdicts: Iterable[Verdict]) -> Verdict:
    """Invalid if any part is, unknown if any part is undecided, else valid."""
    found = list(verdicts)
    if False in found:
        return False
    return None if None in found else True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


UNITS = {"days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}


def duration_verdict(value: Any) -> Verdict:
    """Seconds, ``{days, hours, minutes, seconds}`` or ISO 8601; at most 999,999,999 days.

    The docs do not say whether a zero or negative duration is allowed: undecided."""
    if non_finite(value) or (isinstance(value, Raw) and value.beyond_limits):
        return False  # `NaN`/`Infinity` "fail validation wherever a number must be finite"
    if isinstance(value, dict) and len(value) == 1:
        ((unit, amount),) = value.items()
        if unit not in UNITS:
            return False  # unknown fields are errors
        return duration_verdict(amount * UNITS[unit]) if _is_int(amount) else None
    if isinstance(value, dict) and not value.keys() <= UNITS.keys():
        return False
    if _is_int(value):
        return None if value <= 0 else value <= MAX_DURATION_SECONDS
    if value in ("PT5M", "PT30M", "PT6H"):
        return True
    if value == "P999999999999D":
        return False
    return None


def schedule_verdict(value: Any) -> Verdict:
    """A preset, a 5-field cron expression, a duration (`{days, ...}` or ISO 8601: not plain seconds)."""
    if value is None or (isinstance(value, str) and value in PRESETS):
        return True
    if _is_int(value):
        return False
    if isinstance(value, str) and re.fullmatch(r"[0-9*]+( [0-9*]+){4}", value):
        return True
    if isinstance(value, str) and (value.startswith("@") or re.fullmatch(r"[0-9*]+( [0-9*]+){1,3}", value)):
        return False  # not a preset, not 5 fields
    return duration_verdict(value) if isinstance(value, dict | Raw) or str(value).startswith("P") else None


def items_verdict(value: Any) -> Verdict:
    if not isinstance(value, list) or not value:
        return None
    names = [v for v in value if isinstance(v, str)]
    if len(names) != len(value):
        return None
    if any(not ITEM_NAME.fullmatch(n) for n in names) or len(set(names)) != len(names):
        return False  # names of letters, digits, `_.-`, at most 63; unique
    return True if len(names) <= 64 else None


def ref_verdict(ref: Any) -> Verdict:
    """Issue #23's rule: a reference is accepted only as a pointer into the same document."""
    return isinstance(ref, str) and ref.startswith(LOCAL_REF)


def param_verdict(value: Any) -> Verdict:
    """``name: value`` (the default) or ``{default, type, ...}``: the default must match the schema."""
    if not isinstance(value, dict):
        return True if isinstance(value, str | int) and not isinstance(value, bool) else None
    if "default" not in value:
        return None
    refs = [v["$ref"] for v in value.values() if isinstance(v, dict) and "$ref" in v]
    if any(ref_verdict(ref) is False for ref in refs):
        return False
    if refs:
        return None
    pattern, default = value.get("pattern"), value["default"]
    if value.get("type") == "string" and pattern == "^[a-z]+$" and isinstance(default, str):
        return re.fullmatch(r"[a-z]+", default) is not None
    if value.get("type") == "integer" and value.get("minimum") == 1 and _is_int(default):
        return default >= 1
    return None


def spec_verdict(template: Any, spec: Any) -> Verdict:
    """The test's templates: ``demo`` (no schema: any object) and ``fuzzt`` (its schema below)."""
    if template not in (None, "demo", "fuzzt"):
        return False if isinstance(template, str) else None  # unknown template: an error on that workflow
    if not isinstance(spec, dict):
        return False if spec is not None else None
    if template != "fuzzt":
        return True
    return FUZZT_SPEC.get(canonical(spec))


# The spec schema of the test's template `fuzzt`: `code` through a local `$ref` with a pattern.
FUZZT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {"code": {"$ref": "#/$defs/code"}},
    "required": ["code"],
    "$defs": {"code": {"type": "string", "pattern": "^[a-z]+$"}},
}
# Specs whose verdict the schema decides plainly (`{}` lacks `code`; `ABC` fails the pattern).
FUZZT_SPEC: dict[str, Verdict] = {
    canonical({"code": "abc"}): True,
    canonical({"code": "zz"}): True,
    canonical({"code": "ABC"}): False,
    canonical({"code": "a1"}): False,
    canonical({"code": 5}): False,
    canonical({}): False,
    canonical({"code": "abc", "extra": 1}): False,
}


def _field_verdict(key: str, value: Any) -> Verdict:
    if key == "catchup":
        return isinstance(value, bool)  # `true` or `false` only
    if key == "pod":
        per_item = value.get("per_item") if isinstance(value, dict) else None
        return False if isinstance(value, dict) and "per_item" in value and not isinstance(per_item, bool) else None
    rules = {
        "schedule": schedule_verdict,
        "items": items_verdict,
        "description": lambda v: True if isinstance(v, str) else None,
        "tags": lambda v: (
            True
            if isinstance(v, list) and all(isinstance(t, str) and 0 < len(t) <= 100 for t in v) and len(v) <= 50
            else None
        ),
        "max_items": lambda v: (1 <= v <= 1024) if _is_int(v) else None,
        "default_args": _default_args_verdict,
        "params": lambda v: (
            combine(param_verdict(p) for p in v.values())
            if isinstance(v, dict) and all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) for k in v)
            else None
        ),
    }
    rule = rules.get(key)
    return rule(value) if rule else None


def _default_args_verdict(value: Any) -> Verdict:
    if not isinstance(value, dict):
        return None
    if not value.keys() <= DEFAULT_ARGS:
        return False
    parts: list[Verdict] = []
    if "retries" in value:
        parts.append(True if _is_int(value["retries"]) and 0 <= value["retries"] <= 5 else None)
    for key in ("retry_delay", "execution_timeout"):
        if key in value:
            parts.append(duration_verdict(value[key]))
    if "owner" in value:
        parts.append(True if isinstance(value["owner"], str) and value["owner"] else None)
    return combine(parts)


def config_verdict(config: Any, levels_above: int) -> Verdict:
    """Whether a config is valid (``levels_above``: the levels of the answer around it)."""
    if not within_limits(config, levels_above):
        return False  # beyond a JSON limit: that workflow alone is rejected
    if not isinstance(config, dict):
        return False if not isinstance(config, Raw) else None  # a config is a JSON object
    unknown = set(config) - FIELDS
    if unknown:
        return False  # unknown fields are errors
    parts = [_field_verdict(key, value) for key, value in config.items() if key not in ("template", "spec")]
    parts.append(spec_verdict(config.get("template"), config.get("spec", {})))
    return combine(parts)
