"""values.schema.json: values.yaml and every scenario satisfy it; bad values fail with a clear message."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from support.chart import CHART_DIR, SCENARIOS, HelmFailedError, render_chart, scenario_file

SCHEMA = json.loads((CHART_DIR / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART_DIR / "values.yaml").read_text())


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of a values file onto the defaults (maps merge, everything else replaces)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class TestSchemaItself:
    def test_is_a_valid_draft7_schema(self) -> None:
        jsonschema.Draft7Validator.check_schema(SCHEMA)

    def test_values_yaml_satisfies_it(self) -> None:
        jsonschema.Draft7Validator(SCHEMA).validate(DEFAULTS)

    @pytest.mark.parametrize("scenario", SCENARIOS)
    def test_scenarios_satisfy_it(self, scenario: str) -> None:
        values = merged(DEFAULTS, yaml.safe_load(scenario_file(scenario).read_text()))
        jsonschema.Draft7Validator(SCHEMA).validate(values)

    def test_owned_objects_reject_unknown_keys(self) -> None:
        """Every object the chart defines says additionalProperties: false (free-form ones excepted)."""
        free_form = {
            "global", "podSecurityContext", "securityContext", "affinity", "workflows", "config", "nodeSelector",
            "podAnnotations", "annotations", "data", "items", "requests", "limits",
        }  # fmt: skip

        def walk(node: Any, path: str) -> list[str]:
            missing = []
            if isinstance(node, dict):
                if (
                    node.get("type") == "object"
                    and "properties" in node
                    and node.get("additionalProperties") is not False
                ):
                    missing.append(path)
                for key, child in node.items():
                    if key in free_form and isinstance(child, dict) and "properties" not in child:
                        continue
                    missing += walk(child, f"{path}/{key}")
            return missing

        assert walk(SCHEMA, "") == []

    def test_every_value_has_a_description(self) -> None:
        def walk(node: Any, path: str) -> list[str]:
            missing = []
            for key, child in (node.get("properties") or {}).items():
                if "description" not in child and "$ref" not in child:
                    missing.append(f"{path}.{key}")
                missing += walk(child, f"{path}.{key}")
            return missing

        assert walk(SCHEMA, "") == []


# Values the chart refuses: cases kept as data, one row each, in rejected_values.yaml.
REJECTED = yaml.safe_load(Path(__file__).with_name("rejected_values.yaml").read_text())


def _cases(kind: str) -> list[Any]:
    """The rows of one kind ("schema" or "template") as pytest params (values, message), id from the row."""
    return [pytest.param(row["values"], row["message"], id=row["id"]) for row in REJECTED[kind]]


BAD_VALUES = _cases("schema")

# One schema test per key added for issue 17: a wrong type or an unknown key is rejected.
NEW_KEYS_BAD = [
    *[
        pytest.param({component: {key: "x"}}, f"at '/{component}/{key}'", id=f"{component}-{key}")
        for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers")
        for key in (
            "extraVolumes",
            "extraVolumeMounts",
            "extraEnvFrom",
            "extraContainers",
            "extraInitContainers",
            "topologySpreadConstraints",
            "priorityClassName",
            "terminationGracePeriodSeconds",
            "serviceAccount",
        )
        if key != "priorityClassName"
    ],
    *[
        pytest.param(
            {component: {"priorityClassName": 1}}, f"at '/{component}/priorityClassName'", id=f"{component}-pc"
        )
        for component in ("apiServer", "scheduler", "dagProcessor", "triggerer", "workers", "migrations", "helmTest")
    ],
    *[
        pytest.param({"airflow": {key: {}}}, f"at '/airflow/{key}'", id=f"airflow-{key}")
        for key in ("extraVolumes", "extraVolumeMounts", "extraEnvFrom", "extraContainers", "extraInitContainers")
    ],
    pytest.param({"scheduler": {"serviceAccount": {"nmae": "x"}}}, "additional properties 'nmae'", id="sa-typo"),
    pytest.param(
        {"workers": {"serviceAccount": {"automountServiceAccountToken": "yes"}}},
        "at '/workers/serviceAccount/automountServiceAccountToken'",
        id="sa-automount",
    ),
    pytest.param({"workers": {"podAnnotations": {"a": 1}}}, "at '/workers/podAnnotations/a'", id="workers-annotations"),
    pytest.param({"workers": {"nodeSelector": []}}, "at '/workers/nodeSelector'", id="workers-node-selector"),
    pytest.param({"workers": {"tolerations": {}}}, "at '/workers/tolerations'", id="workers-tolerations"),
    pytest.param({"migrations": {"jobAnnotations": []}}, "at '/migrations/jobAnnotations'", id="job-annotations"),
    pytest.param({"migrations": {"podAnnotations": []}}, "at '/migrations/podAnnotations'", id="migration-pod-anno"),
    pytest.param({"migrations": {"nodeSelector": []}}, "at '/migrations/nodeSelector'", id="migration-placement"),
    pytest.param({"helmTest": {"tolerations": {}}}, "at '/helmTest/tolerations'", id="test-placement"),
    pytest.param(
        {"referenceConfigApi": {"topologySpreadConstraints": {}}},
        "at '/referenceConfigApi/topologySpreadConstraints'",
        id="ref-spread",
    ),
    pytest.param({"postgresql": {"priorityClassName": []}}, "at '/postgresql/priorityClassName'", id="pg-priority"),
    pytest.param({"logs": {"persistence": {"enabled": "yes"}}}, "at '/logs/persistence/enabled'", id="logs-enabled"),
    pytest.param({"logs": {"persistence": {"size": "big"}}}, "at '/logs/persistence/size'", id="logs-size"),
    pytest.param(
        {"logs": {"persistence": {"existingClaim": 1}}}, "at '/logs/persistence/existingClaim'", id="logs-claim"
    ),
    pytest.param(
        {"logs": {"persistence": {"storageClassName": 1}}}, "at '/logs/persistence/storageClassName'", id="logs-sc"
    ),
    pytest.param({"logs": {"persistence": {"annotations": []}}}, "at '/logs/persistence/annotations'", id="logs-anno"),
    pytest.param({"logs": {"retention": 1}}, "additional properties 'retention' not allowed", id="logs-unknown"),
    pytest.param({"metrics": {"enabled": "yes"}}, "at '/metrics/enabled'", id="metrics-enabled"),
    pytest.param(
        {"metrics": {"image": {"pullPolicy": "Sometimes"}}}, "at '/metrics/image/pullPolicy'", id="metrics-image"
    ),
    pytest.param({"metrics": {"prefix": "air flow"}}, "at '/metrics/prefix'", id="metrics-prefix"),
    pytest.param({"metrics": {"mappings": {}}}, "at '/metrics/mappings'", id="metrics-mappings"),
    pytest.param(
        {"metrics": {"resources": {"limits": {"cpu": "lots"}}}},
        "at '/metrics/resources/limits/cpu'",
        id="metrics-resources",
    ),
    pytest.param(
        {"metrics": {"service": {"type": "LoadBalancer"}}},
        "additional properties 'type' not allowed",
        id="metrics-service",
    ),
    pytest.param(
        {"metrics": {"serviceMonitor": {"interval": "often"}}},
        "at '/metrics/serviceMonitor/interval'",
        id="sm-interval",
    ),
    pytest.param(
        {"metrics": {"serviceMonitor": {"labels": []}}}, "at '/metrics/serviceMonitor/labels'", id="sm-labels"
    ),
    pytest.param(
        {"metrics": {"serviceMonitor": {"enabled": 1}}}, "at '/metrics/serviceMonitor/enabled'", id="sm-enabled"
    ),
    pytest.param({"metrics": {"podAnnotations": []}}, "at '/metrics/podAnnotations'", id="metrics-annotations"),
    pytest.param(
        {"serviceAccount": {"create": False}}, "additional properties 'serviceAccount' not allowed", id="global-sa-gone"
    ),
]

BAD_COMBINATIONS = _cases("template")


@pytest.mark.helm
class TestRejectedValues:
    @pytest.mark.parametrize(("values", "message"), BAD_VALUES + NEW_KEYS_BAD)
    def test_schema_rejects(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(HelmFailedError) as err:
            render_chart(values)
        assert "values don't meet the specifications of the schema" in err.value.stderr
        assert message in err.value.stderr

    @pytest.mark.parametrize(("values", "message"), BAD_COMBINATIONS)
    def test_template_rejects(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(HelmFailedError) as err:
            render_chart(values)
        assert message in err.value.stderr

    def test_schema_errors_do_not_echo_secret_values(self) -> None:
        with pytest.raises(HelmFailedError) as err:
            render_chart({"configApi": {"apiKey": 12345678}})
        assert "at '/configApi/apiKey'" in err.value.stderr


class TestValuesYamlIsDocumented:
    def test_every_value_has_a_helm_docs_comment(self) -> None:
        """Each key has a `# --` comment (helm-docs), on itself or on the object that contains it."""
        lines = (CHART_DIR / "values.yaml").read_text().splitlines()
        assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
        stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
        comment: list[str] = []
        undocumented = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#"):
                comment.append(stripped)
                continue
            match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
            if not match:
                if not stripped:
                    comment = []
                continue
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            documented = any(c.startswith("# --") for c in comment) or any(d for _, d in stack)
            is_leaf = line.rstrip().split(":", 1)[1].strip() != ""
            if is_leaf and not documented:
                undocumented.append(line.strip())
            stack.append((indent, documented))
            comment = []
        assert undocumented == []

    def test_every_schema_property_is_in_values_yaml(self) -> None:
        """values.yaml shows every setting the schema allows (free-form maps excepted)."""

        def walk(schema: dict[str, Any], values: Any, path: str) -> list[str]:
            missing = []
            for key, child in (schema.get("properties") or {}).items():
                if key == "global":
                    continue
                if not isinstance(values, dict) or key not in values:
                    missing.append(f"{path}.{key}")
                    continue
                target = SCHEMA["definitions"][child["$ref"].rsplit("/", 1)[-1]] if "$ref" in child else child
                missing += walk(target, values[key], f"{path}.{key}")
            return missing

        optional = {".image.digest", ".postgresql.image.digest"}  # present; kept for clarity
        missing = [
            m
            for m in walk(SCHEMA, DEFAULTS, "")
            if m not in optional
            and not m.endswith(
                (
                    ".requests.ephemeral-storage",
                    ".limits.ephemeral-storage",
                    ".initialDelaySeconds",
                    ".successThreshold",
                )
            )
        ]
        assert missing == []
