"""dagfleet.fleet.schemas: the rules of docs/config.md ("Schemas: what is refused, and why"), row by row.

The fault suite (``faults/test_untrusted_schemas.py``) drives the same rules through ``dagfleet
sync``/``validate``/``run``/``watch`` with a recorder, a tarpit and a sentinel file; here each rule
is one assertion on ``refusals`` or on a validator, and the schema dagfleet hands to Airflow is
checked with Airflow's own call (``jsonschema.validate``) in a process of its own.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import jsonschema
import pytest

from dagfleet.fleet import schemas
from dagfleet.fleet.errors import MAX_SHOWN, clip
from dagfleet.fleet.steps import MAX_STEPS, budget
from support.proc import run

EVIL = "^(a+)+$"


def _refused(schema: Any, template: bool = False) -> dict[str, str]:
    return dict(schemas.refusals(schema, "params.p" if not template else "", template=template))


@pytest.mark.parametrize("ref", ["#", "#/$defs/a", "#/properties/a/items", "#name"])
@pytest.mark.parametrize("key", ["$ref", "$dynamicRef"])
def test_local_references_are_accepted_in_template_schemas_only(ref: str, key: str) -> None:
    assert _refused({"items": {key: ref}}, template=True) == {}
    refused = _refused({"items": {key: ref}})
    assert list(refused) == [f"params.p.items.{key}"]
    assert "is not allowed in a param schema" in refused[f"params.p.items.{key}"]


@pytest.mark.parametrize(
    "ref",
    ["file:///etc/passwd", "http://10.0.0.1/s.json", "https://x/#/a", "urn:x", "other.json", "/x", "./a#/b", "", 7],
)
@pytest.mark.parametrize("key", ["$ref", "$dynamicRef"])
def test_every_other_reference_is_refused_on_its_path(ref: Any, key: str) -> None:
    refused = _refused({"items": {key: ref}})
    assert list(refused) == [f"params.p.items.{key}"]
    assert "is not inside this schema" in refused[f"params.p.items.{key}"]


def test_references_in_data_positions_are_refused_too() -> None:
    """The check does not tell a keyword from data (docs/config.md): conservative."""
    assert list(_refused({"enum": [{"$ref": "http://x/"}]})) == ["params.p.enum[0].$ref"]


def test_a_refused_reference_is_shown_cut() -> None:
    message = _refused({"$ref": "http://x/" + "a" * 10_000})["params.p.$ref"]
    assert len(message) < 2 * MAX_SHOWN and "bytes)" in message


def test_recursive_ref_vocabulary_id_and_schema() -> None:
    assert _refused({"$recursiveRef": "#"}, template=True) == {}
    assert list(_refused({"$recursiveRef": "#/x"}, template=True)) == ["$recursiveRef"]
    assert list(_refused({"$recursiveRef": "http://x/"})) == ["params.p.$recursiveRef"]
    assert list(_refused({"$vocabulary": {}})) == ["params.p.$vocabulary"]
    assert list(_refused({"$id": "urn:x"})) == ["params.p.$id"]
    assert list(_refused({"$schema": "https://json-schema.org/draft/2020-12/schema"})) == ["params.p.$schema"]
    draft7 = "http://json-schema.org/draft-07/schema#"
    assert _refused({"$schema": draft7, "$id": "https://example.com/t.json"}, template=True) == {}
    assert list(_refused({"$schema": "https://evil.example/meta"}, template=True)) == ["$schema"]
    assert list(_refused({"items": {"$id": "urn:x"}}, template=True)) == ["items.$id"]
    assert list(_refused({"items": {"$schema": draft7}}, template=True)) == ["items.$schema"]
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "items": {"id": "http://x/"}}
    assert list(_refused(draft4, template=True)) == ["items.id"]


@pytest.mark.parametrize("pattern", ["^[a-z_][a-z0-9_]*$", EVIL, r"\d+", "(a|b)*c", "a{1000}", "x" * 1000])
def test_re2_patterns_are_accepted(pattern: str) -> None:
    assert _refused({"pattern": pattern, "items": {"pattern": pattern}}) == {}


@pytest.mark.parametrize(
    "pattern", [r"(a)\1", "(?=a)", "(?!a)", "(?<=a)b", "(?<!a)b", "a++", "(?>a)", r"a\Z", "a{1001}"]
)
def test_patterns_re2_cannot_compile_are_refused(pattern: str) -> None:
    refused = _refused({"items": {"pattern": pattern}})
    assert list(refused) == ["params.p.items.pattern"]
    assert "RE2" in refused["params.p.items.pattern"]


def test_pattern_bounds_and_where_patterns_are_looked_for() -> None:
    assert list(_refused({"pattern": "x" * 1001})) == ["params.p.pattern"]
    assert list(_refused({"pattern": 5})) == ["params.p.pattern"]
    assert _refused({"enum": [{"pattern": "(?=a)"}]}) == {}  # data, not a schema position
    template = {"patternProperties": {"(?=a)": {}, "^ok$": {}}}
    assert list(_refused(template, template=True)) == ["patternProperties.(?=a)"]
    assert list(_refused({"patternProperties": {"^a$": {}}})) == ["params.p.patternProperties"]
    both = {"patternProperties": {"^a$": {}}, "unevaluatedProperties": False}
    assert list(_refused(both, template=True)) == ["patternProperties"]


def test_formats_in_params_are_the_cheap_ones_only() -> None:
    for name in schemas.SAFE_FORMATS:
        assert _refused({"format": name}) == {}
    for name in ("regex", "idn-hostname", "uri", "hostname"):
        assert list(_refused({"format": name})) == ["params.p.format"]
    assert _refused({"format": "regex"}, template=True) == {}  # an annotation in a template schema


def test_a_schema_over_the_size_bound_is_refused() -> None:
    refused = _refused({"enum": ["x" * schemas.MAX_SCHEMA_BYTES]})
    assert list(refused) == ["params.p"] and "more than 65,536" in refused["params.p"]


def _problems(schema: dict[str, Any], instance: Any) -> list[tuple[str, str]]:
    assert schemas.refusals(schema, "", template=True) == []
    with budget():
        return schemas.problems(schemas.validator(schema), instance, "spec")


def test_template_validation_uses_re2_and_local_refs() -> None:
    schema = {"$defs": {"name": {"type": "string", "pattern": EVIL}}, "properties": {"a": {"$ref": "#/$defs/name"}}}
    [(path, message)] = _problems(schema, {"a": "a" * 50_000 + "!"})
    assert path == "spec.a" and "does not match" in message and "(50,001 bytes)" in message
    assert _problems(schema, {"a": "aaa"}) == []
    anchored = {"$defs": {"x": {"$anchor": "n", "type": "string"}}, "properties": {"a": {"$ref": "#n"}}}
    assert _problems(anchored, {"a": 1}) == [("spec.a", "1 is not of type 'string'")]
    extra = {"patternProperties": {"^x": {}}, "additionalProperties": False}
    assert _problems(extra, {"xa": 1}) == []
    assert _problems(extra, {"b": 1}) == [("spec", "Additional properties are not allowed ('b' was unexpected)")]


def test_a_value_too_long_for_a_pattern_fails_it() -> None:
    [(_, message)] = _problems({"pattern": "a"}, "a" * (schemas.MAX_PATTERN_INPUT + 1))
    assert "too long to check against a pattern" in message


def test_unresolvable_endless_and_exploding_schemas_are_one_problem_each() -> None:
    [(path, message)] = _problems({"$ref": "#/$defs/missing"}, 1)
    assert path == "spec" and "cannot be resolved inside the schema" in message
    assert _problems({"$ref": "#"}, 1) == [("spec", "the schema refers to itself without end")]
    defs: dict[str, Any] = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(40)}
    defs["d40"] = {"type": "integer"}
    [(path, message)] = _problems({"$defs": defs, "$ref": "#/$defs/d0"}, 1)
    assert f"more than {MAX_STEPS:,} steps" in message


def test_the_schema_airflow_gets_names_the_dialect_and_hides_patterns() -> None:
    given = {"type": "array", "pattern": EVIL, "items": {"pattern": "^x$", "enum": [{"pattern": "data"}]}}
    handed = schemas.airflow_param_schema(given)
    assert handed == {
        "$schema": schemas.PARAM_DIALECT,
        "type": "array",
        schemas.PATTERN_KEY: EVIL,
        "items": {schemas.PATTERN_KEY: "^x$", "enum": [{"pattern": "data"}]},
    }
    assert given["pattern"] == EVIL  # not changed in place
    assert jsonschema.validators.validator_for(handed) is schemas.ParamValidator
    assert schemas.airflow_param_schema({}) == {}


AIRFLOW_CALL = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
if sys.argv[2] == "dagfleet":
    import dagfleet.fleet.schemas  # what the DAG file, the task runner and the api-server's plugin import
from jsonschema import FormatChecker, ValidationError, validate
try:
    validate("a" * 50_000 + "!", json.loads(sys.argv[1]), format_checker=FormatChecker())  # Airflow's call
    print("accepted")
except ValidationError as err:
    print("refused", err.message[:40])
"""


@pytest.mark.parametrize(("process", "answer"), [("dagfleet", "refused"), ("plain", "accepted")])
def test_airflow_s_own_validation_call_is_linear_with_and_without_dagfleet(process: str, answer: str) -> None:
    """Airflow's ``jsonschema.validate`` on the schema dagfleet hands it: with dagfleet imported
    RE2 refuses the 50 KB value; without, the pattern is skipped, never run by Python's ``re``
    (handing Airflow a plain ``pattern`` hangs here until the subprocess timeout)."""
    handed = json.dumps(schemas.airflow_param_schema({"type": "string", "pattern": EVIL}))
    proc = run([sys.executable, "-c", AIRFLOW_CALL, handed, process], timeout=60)
    assert proc.stdout.split(" ", 1)[0].strip() == answer, proc.stderr


def test_param_problems_refuse_or_check_the_default() -> None:
    assert schemas.param_problems("params.p", {}, "x") == []
    assert schemas.param_problems("params.p", {"type": "string", "pattern": "^a+$"}, "aaa") == []
    [(path, message)] = schemas.param_problems("params.p", {"type": "integer"}, "x")
    assert path == "params.p.default" and message.startswith("the default does not match the param's schema")
    [(path, _)] = schemas.param_problems("params.p", {"items": {"$ref": "file:///etc/passwd"}}, None)
    assert path == "params.p.items.$ref"
    [(path, _)] = schemas.param_problems("params.p", {"items": {"$ref": "#"}}, [1])
    assert path == "params.p.items.$ref"
    [(path, message)] = schemas.param_problems("params.p", {"type": "nonsense"}, None)
    assert path == "params.p" and message.startswith("the param schema is invalid")


def test_clip_cuts_a_value_and_says_how_big_it_was() -> None:
    assert clip("short") == "short"
    assert clip(12) == "12"
    long = "é" * 300
    assert clip(long) == "é" * MAX_SHOWN + "... (600 bytes)"
    assert clip("x" * 10, limit=4) == "xxxx... (10 bytes)"
