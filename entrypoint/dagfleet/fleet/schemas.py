"""JSON Schemas from configs and templates: checked and evaluated here, and nowhere else.

Every schema a config (``params``) or a template (``<name>.schema.json``) holds is untrusted input
(docs/config.md, "Schemas: what is refused"). Before any validation, ``*_refusals`` walk it and
refuse every reference outside the document, every ``$id``/``$schema``/``$vocabulary`` trick, every
pattern RE2 cannot compile and documents over the size bound. Validators come from one factory:
RE2 for ``pattern``/``patternProperties``/``additionalProperties``, only cheap formats, a
``referencing`` registry that retrieves nothing, and a step budget per workflow (``dagfleet.fleet.steps``).

Importing this module registers ``PARAM_DIALECT`` with ``jsonschema``, so Airflow's own
``jsonschema.validate`` of a dagfleet ``Param`` uses the same RE2 class in that process.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import re2
import referencing
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing.exceptions import Unresolvable

from dagfleet.fleet.errors import clip, json_path
from dagfleet.fleet.steps import MAX_STEPS, BudgetExceeded, tick

Problem = tuple[str, str]  # (field path, message)

PARAM_DIALECT = "urn:dagfleet:param-schema:2020-12"
PATTERN_KEY = "x-dagfleet-pattern"  # what a param's `pattern` is called in the schema Airflow gets
MAX_SCHEMA_BYTES = 65_536
MAX_PATTERN = 1_000
MAX_PATTERN_INPUT = 1_048_576
MAX_MESSAGE = 400  # characters of one jsonschema message (the values dagfleet quotes: errors.MAX_SHOWN)
SAFE_FORMATS = ("date", "date-time", "time", "email", "ipv4", "ipv6", "uuid")
DRAFTS = frozenset(jsonschema.validators._META_SCHEMAS)  # the drafts jsonschema ships (no I/O)

# The keywords whose values are schemas (one, a list of, or a mapping of names to schemas).
_ONE = frozenset(
    {"additionalProperties", "items", "additionalItems", "contains", "propertyNames", "not", "if", "then", "else"}
    | {"unevaluatedItems", "unevaluatedProperties"}
)
_MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_NAMED = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"})
_OUTSIDE = "is not inside this schema (only '#...' is allowed)"
_NO_REFS = "Airflow evaluates param schemas without dagfleet's step bound; see docs/config.md"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print the whole pattern to stderr
_OPTIONS.never_capture = True  # only "does it match": RE2 can use its DFA


# -- walking a schema document ---------------------------------------------------------------
def _objects(root: Any, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object anywhere in ``root`` (data included), with its path; no recursion."""
    stack = [(prefix, root)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            yield path, node
            stack.extend((_join(path, key), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}[{index}]", value) for index, value in enumerate(node))


def _schemas(root: Any, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object in a schema position of ``root`` (the keywords in ``_ONE``/``_MANY``/``_NAMED``)."""
    stack = [(prefix, root)]
    while stack:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        yield path, node
        for key, value in node.items():
            if key in _ONE and isinstance(value, dict):
                stack.append((_join(path, key), value))
            if key in _MANY and isinstance(value, list):
                stack.extend((f"{_join(path, key)}[{i}]", sub) for i, sub in enumerate(value))
            if key in _NAMED and isinstance(value, dict):
                stack.extend((_join(_join(path, key), name), sub) for name, sub in value.items())


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


# -- what is refused -------------------------------------------------------------------------
def _ref_refusals(root: Any, prefix: str, template: bool) -> Iterator[Problem]:
    legacy_id = template and isinstance(root, dict) and str(root.get("$schema", "")).rstrip("#") in _LEGACY
    for path, node in _objects(root, prefix):
        at_root = node is root
        for key in ("$ref", "$dynamicRef", "$recursiveRef"):
            if key not in node:
                continue
            ref = node[key]
            if not (isinstance(ref, str) and ref.startswith("#")):
                yield _join(path, key), f"reference {clip(ref)!r} {_OUTSIDE}"
            elif not template:
                yield _join(path, key), f"reference {clip(ref)!r} is not allowed in a param schema ({_NO_REFS})"
            elif key == "$recursiveRef" and ref != "#":
                yield _join(path, key), f"{clip(ref)!r} is not allowed (only '#')"
        if "$vocabulary" in node:
            yield _join(path, "$vocabulary"), "'$vocabulary' is not allowed (it belongs in a meta-schema)"
        ids = ["$id"] + (["id"] if legacy_id and isinstance(node.get("id"), str) else [])
        for key in ids:
            if key in node and not (template and at_root):
                where = "below the root of a template schema" if template else "in a param schema"
                yield _join(path, key), f"{key!r} is not allowed {where} (it would move where references point)"
        if "$schema" in node and not (template and at_root and str(node["$schema"]).rstrip("#") in DRAFTS):
            yield _join(path, "$schema"), f"{clip(node['$schema'])!r} is not allowed here ({_SCHEMA_HINT})"


_LEGACY = frozenset({"http://json-schema.org/draft-03/schema", "http://json-schema.org/draft-04/schema"})
_SCHEMA_HINT = "a template schema may name a JSON Schema draft at its root; a param schema none"


def _pattern_refusals(root: Any, prefix: str, template: bool) -> Iterator[Problem]:
    nodes = list(_schemas(root, prefix))
    unevaluated = any("unevaluatedProperties" in node for _, node in nodes)
    for path, node in nodes:
        if "pattern" in node:
            problem = _pattern_problem(node["pattern"])
            if problem:
                yield _join(path, "pattern"), problem
        if "patternProperties" in node and (not template or unevaluated):
            why = "in a param schema" if not template else "in a schema that uses 'unevaluatedProperties'"
            yield _join(path, "patternProperties"), f"'patternProperties' is not allowed {why}"
        elif isinstance(node.get("patternProperties"), dict):
            for key in node["patternProperties"]:
                problem = _pattern_problem(key)
                if problem:
                    yield _join(_join(path, "patternProperties"), key), problem
        if not template and "format" in node and node["format"] not in SAFE_FORMATS:
            allowed = ", ".join(SAFE_FORMATS)
            yield _join(path, "format"), f"format {clip(node['format'])!r} is not allowed (use one of: {allowed})"


def _pattern_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return f"a pattern must be a string, got {clip(pattern)}"
    if len(pattern) > MAX_PATTERN:
        return f"pattern {clip(pattern)!r} is longer than {MAX_PATTERN:,} characters"
    try:
        compile_pattern(pattern)
    except re2.error as err:
        reason = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else str(err)
        return f"pattern {clip(pattern)!r} is not one RE2 runs in linear time ({clip(reason, 80)}; see docs/config.md)"
    return None


def refusals(schema: Any, prefix: str, *, template: bool) -> list[Problem]:
    """Every rule ``schema`` breaks (docs/config.md), before anything evaluates it; paths under ``prefix``."""
    size = len(json.dumps(schema, default=str))
    if size > MAX_SCHEMA_BYTES:
        return [(prefix or "(the schema)", f"the schema is {size:,} bytes as JSON, more than {MAX_SCHEMA_BYTES:,}")]
    found = [*_ref_refusals(schema, prefix, template), *_pattern_refusals(schema, prefix, template)]
    return sorted(found)


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (``re2.error`` when RE2 cannot run it)."""
    return re2.compile(pattern, _OPTIONS)


# -- evaluating ------------------------------------------------------------------------------
def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "string"):
        return
    if len(instance) > MAX_PATTERN_INPUT:
        yield ValidationError(f"a value of {len(instance):,} characters is too long to check against a pattern")
    elif compile_pattern(pattern).search(instance) is None:
        yield ValidationError(f"{clip(instance)!r} does not match {clip(pattern, 100)!r}")


def _matches_any(patterns: Any, name: str) -> bool:
    return len(name) <= MAX_PATTERN_INPUT and any(compile_pattern(p).search(name) for p in patterns)


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if _matches_any([pattern], name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)


def _additional_properties(validator: Any, extra: Any, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    known, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
    extras = [name for name in instance if name not in known and not _matches_any(patterns, name)]
    if validator.is_type(extra, "object"):
        for name in extras:
            yield from validator.descend(instance[name], extra, path=name)
    elif not extra and extras:
        shown = ", ".join(repr(clip(name, 60)) for name in extras[:5]) + (", ..." if len(extras) > 5 else "")
        verb = "was" if len(extras) == 1 else "were"
        yield ValidationError(f"Additional properties are not allowed ({shown} {verb} unexpected)")


def _counted(keyword: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(keyword)
    def evaluate(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        tick()
        return keyword(validator, value, instance, schema)

    return evaluate


_OWN = {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties}
_FORMATS = FormatChecker([name for name in SAFE_FORMATS if name in FormatChecker.checkers])


@functools.cache
def _extended(base: type) -> Any:
    """``base`` with RE2 keywords, the safe formats and every keyword counted against the budget."""
    keywords = {name: _counted(_OWN.get(name, fn)) for name, fn in base.VALIDATORS.items()}
    return jsonschema.validators.extend(base, keywords, format_checker=_FORMATS)


def _no_retrieval(uri: str) -> referencing.Resource[Any]:
    raise referencing.exceptions.NoSuchResource(ref=clip(uri))


NO_RETRIEVAL: referencing.Registry[Any] = referencing.Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]


def _param_class() -> Any:
    cls = jsonschema.validators.extend(
        _extended(Draft202012Validator), {PATTERN_KEY: _counted(_pattern)}, format_checker=_FORMATS
    )
    # A meta-schema of our own only to carry the $schema URI: it refers to draft 2020-12's, which
    # jsonschema ships (no fetch); the class keeps 2020-12's vocabulary and $ref rules.
    draft = Draft202012Validator.META_SCHEMA["$id"]
    cls.META_SCHEMA = {"$schema": draft, "$id": PARAM_DIALECT, "$ref": draft}
    return jsonschema.validators.validates(PARAM_DIALECT)(cls)


ParamValidator = _param_class()


@functools.lru_cache(maxsize=1024)
def _validator(schema_json: str, dialect: bool) -> Any:
    schema = json.loads(schema_json)
    base = ParamValidator if dialect else _extended(jsonschema.validators.validator_for(schema, Draft202012Validator))
    base.check_schema(schema)
    return base(schema, format_checker=base.FORMAT_CHECKER, registry=NO_RETRIEVAL)


def validator(schema: dict[str, Any]) -> Any:
    """A checked validator of ``schema`` (already free of ``refusals``); one per distinct schema.

    ``jsonschema.SchemaError`` when the schema breaks its draft's meta-schema."""
    return _validator(json.dumps(schema, sort_keys=True), schema.get("$schema") == PARAM_DIALECT)


def problems(checker: Any, instance: Any, prefix: str) -> list[Problem]:
    """Every way ``instance`` breaks ``checker``'s schema, in path order; a schema whose references
    cannot be resolved, that recurses without end or that exceeds the budget is one problem."""
    try:
        errors = sorted(checker.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    except Unresolvable as err:
        return [(prefix, f"reference {clip(str(getattr(err, 'ref', err)))!r} cannot be resolved inside the schema")]
    except RecursionError:
        return [(prefix, "the schema refers to itself without end")]
    except BudgetExceeded:
        return [(prefix, f"its schemas take more than {MAX_STEPS:,} steps to evaluate (docs/config.md)")]
    return [
        (json_path(error.absolute_path, prefix), clip(" ".join(str(error.message).split()), MAX_MESSAGE))
        for error in errors
    ]


# -- params: the schema Airflow gets ---------------------------------------------------------
def airflow_param_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A param's schema as dagfleet hands it to Airflow's ``Param``: ``$schema`` names the RE2
    dialect, and every ``pattern`` is called ``x-dagfleet-pattern``, which a process that never
    imported dagfleet ignores instead of running it with Python's backtracking ``re``."""
    if not schema:
        return {}
    copy = json.loads(json.dumps(schema))
    for _, node in _schemas(copy, ""):
        if "pattern" in node:
            node[PATTERN_KEY] = node.pop("pattern")
    return {"$schema": PARAM_DIALECT, **copy}


def param_problems(prefix: str, schema: dict[str, Any], default: Any) -> list[Problem]:
    """A param's schema refused (``prefix``: ``params.<name>``), or its default that breaks it."""
    if not schema:
        return []
    refused = refusals(schema, prefix, template=False)
    if refused:
        return refused
    try:
        checker = validator(airflow_param_schema(schema))
    except jsonschema.SchemaError as err:
        return [(prefix, f"the param schema is invalid: {clip(' '.join(str(err.message).split()))}")]
    if default is None:
        return []
    found = problems(checker, default, f"{prefix}.default")
    return [(path, f"the default does not match the param's schema: {message}") for path, message in found]


def schema_problems(schema: dict[str, Any]) -> list[Problem]:
    """A template schema's ``refusals``, else what its draft's meta-schema says (path ``$schema``)."""
    refused = refusals(schema, "", template=True)
    if refused:
        return refused
    try:
        validator(schema)
    except jsonschema.SchemaError as err:
        return [(json_path(err.absolute_path, "") or "(the schema)", clip(" ".join(str(err.message).split())))]
    return []
