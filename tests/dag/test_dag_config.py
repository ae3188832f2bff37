"""The workflow config model: defaults, every accepted form, one-line errors naming the field."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagfleet.fleet.config import WorkflowConfig, validate_config, validate_items
from dagfleet.fleet.errors import WorkflowConfigError
from support.dag import example_workflows

POD = {"image": "busybox:1.36"}
ENV_SECRET = {"deploy_type": "env", "deploy_target": "API_TOKEN", "secret": "acme-api", "key": "token"}
VOLUME_SECRET = {"deploy_type": "volume", "deploy_target": "/etc/acme", "secret": "acme-tls"}


def _error(raw: Any, workflow_id: str = "acme") -> str:
    with pytest.raises(WorkflowConfigError) as caught:
        validate_config(workflow_id, raw)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"workflow {workflow_id!r}: ")
    return message


def test_empty_config_is_valid_with_defaults() -> None:
    config = validate_config("static", {})
    assert config.schedule is None
    assert config.start_date == datetime(2024, 1, 1, tzinfo=UTC)
    assert config.catchup is False
    assert config.pod is None
    assert [item.name for item in config.items] == ["item-1", "item-2", "item-3"]
    assert config.default_args.retries == 0


def test_every_example_workflow_validates() -> None:
    for workflow_id, raw in example_workflows().items():
        validate_config(workflow_id, raw)


def test_config_module_does_not_import_airflow() -> None:
    code = "import sys, dagfleet.fleet.config; print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (None, None),
        ("@daily", "@daily"),
        ("@once", "@once"),
        ("0 3 * * 1-5", "0 3 * * 1-5"),
        ({"minutes": 30}, timedelta(minutes=30)),
        ({"hours": 1, "minutes": 30}, timedelta(minutes=90)),
        ("PT6H", timedelta(hours=6)),
    ],
)
def test_schedule_forms(schedule: Any, expected: Any) -> None:
    assert validate_config("w", {"schedule": schedule}).schedule == expected


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ("@sometimes", "is not a preset"),
        ("61 * * * *", "not a valid cron expression"),
        ("* * *", "not a 5-field cron expression"),
        ("0 0 * * * *", "not a 5-field cron expression"),
        ({"weeks": 1}, "takes days, hours, minutes and seconds"),
        ({"minutes": 0}, "longer than zero"),
        ("PTfoo", "not an ISO 8601 duration"),
        (30, "expected null, a preset"),
    ],
)
def test_bad_schedules_name_the_field(schedule: Any, problem: str) -> None:
    message = _error({"schedule": schedule})
    assert "config field 'schedule': " in message
    assert problem in message


def test_start_date_and_durations() -> None:
    config = validate_config(
        "w",
        {
            "start_date": "2024-06-01",
            "default_args": {"retries": 3, "retry_delay": 90, "execution_timeout": "PT1H"},
        },
    )
    assert config.start_date == datetime(2024, 6, 1, tzinfo=UTC)
    assert config.default_args.retry_delay == timedelta(seconds=90)
    assert config.default_args.execution_timeout == timedelta(hours=1)
    aware = validate_config("w", {"start_date": "2024-06-01T10:00:00+02:00"}).start_date
    assert aware.utcoffset() == timedelta(hours=2)
    assert "config field 'start_date'" in _error({"start_date": "yesterday"})
    assert "config field 'default_args.retry_delay'" in _error({"default_args": {"retry_delay": "soon"}})
    assert "config field 'default_args.retries'" in _error({"default_args": {"retries": -1}})


def test_params_shorthand_and_schema() -> None:
    config = validate_config(
        "w", {"params": {"message": "hi", "limit": {"default": 5, "type": "integer", "minimum": 1}}}
    )
    assert config.params["message"].default == "hi"
    assert config.params["message"].schema_dict() == {}
    assert config.params["limit"].schema_dict() == {"type": "integer", "minimum": 1}
    message = _error({"params": {"limit": {"default": 0, "type": "integer", "minimum": 1}}})
    assert "config field 'params.limit.default': the default does not match" in message
    assert "config field 'params.limit.typo'" in _error({"params": {"limit": {"default": 1, "typo": 2}}})
    assert "param name 'not ok'" in _error({"params": {"not ok": 1}})


def test_secret_specs() -> None:
    config = validate_config("w", {"pod": {**POD, "secrets": [ENV_SECRET, VOLUME_SECRET]}})
    assert config.pod is not None
    assert [s.deploy_type for s in config.pod.secrets] == ["env", "volume"]
    assert config.pod.secrets[1].key is None


@pytest.mark.parametrize(
    ("secret", "field", "problem"),
    [
        ({**ENV_SECRET, "secret": "Bad_Name"}, "secret", "'Bad_Name' is not a valid Kubernetes secret name"),
        ({**ENV_SECRET, "deploy_target": "api-token"}, "deploy_target", "not a valid environment variable name"),
        ({**ENV_SECRET, "key": None}, "key", "an 'env' secret needs the 'key'"),
        ({**ENV_SECRET, "key": "a/b"}, "key", "not a valid Kubernetes secret key"),
        ({**VOLUME_SECRET, "deploy_target": "etc/acme"}, "deploy_target", "not a valid mount path"),
        ({**VOLUME_SECRET, "deploy_target": "/etc/../root"}, "deploy_target", "not a valid mount path"),
        ({**VOLUME_SECRET, "deploy_type": "file"}, "deploy_type", "input should be 'env' or 'volume'"),
        ({**VOLUME_SECRET, "mode": 256}, "mode", "unknown field"),
    ],
)
def test_bad_secret_specs_name_the_field(secret: dict[str, Any], field: str, problem: str) -> None:
    message = _error({"pod": {**POD, "secrets": [ENV_SECRET, secret]}})
    assert f"config field 'pod.secrets[1].{field}': " in message
    assert problem in message
    assert message.endswith("; fix it in the config API")


def test_the_contract_example_message() -> None:
    message = _error({"pod": {**POD, "secrets": [{**ENV_SECRET, "secret": "Bad_Name"}]}})
    assert message.startswith(
        "workflow 'acme': config field 'pod.secrets[0].secret': 'Bad_Name' is not a valid Kubernetes secret name"
    )


def test_duplicate_secret_targets() -> None:
    message = _error({"pod": {**POD, "secrets": [VOLUME_SECRET, {**VOLUME_SECRET, "secret": "other"}]}})
    assert "config field 'pod.secrets': mount path '/etc/acme' is used by more than one secret" in message
    sets = {"gold": [ENV_SECRET, {**ENV_SECRET, "secret": "x"}]}
    assert "secret set 'gold': environment variable 'API_TOKEN'" in _error({"pod": {**POD, "secret_sets": sets}})


def test_pod_fields() -> None:
    resources = {"requests": {"cpu": "100m", "memory": 64}, "limits": {"nvidia.com/gpu": 1}}
    config = validate_config("w", {"pod": {**POD, "resources": resources, "env": {"MODE": "x", "PORT": 8080}}})
    assert config.pod is not None and config.pod.resources is not None
    assert config.pod.env == {"MODE": "x", "PORT": "8080"}
    assert config.pod.resources.requests == {"cpu": "100m", "memory": "64"}
    assert "config field 'pod.namespace'" in _error({"pod": {**POD, "namespace": "Jobs"}})
    assert "config field 'pod.image'" in _error({"pod": {**POD, "image": "bad image"}})
    assert "config field 'pod.image': required field is missing" in _error({"pod": {}})
    assert "not a Kubernetes quantity" in _error({"pod": {**POD, "resources": {"limits": {"cpu": "lots"}}}})
    assert "config field 'pod.env'" in _error({"pod": {**POD, "env": {"lower": "x"}}})


def test_items_and_secret_sets() -> None:
    raw = {
        "items": ["a", {"name": "b", "secret_set": "gold"}],
        "pod": {**POD, "per_item": True, "secret_sets": {"gold": [ENV_SECRET]}},
    }
    config = validate_config("w", raw)
    assert [(i.name, i.secret_set) for i in config.items] == [("a", None), ("b", "gold")]
    assert [s.secret for s in config.secret_set("gold")] == ["acme-api"]
    assert config.secret_set(None) == []

    message = _error({**raw, "items": ["a", {"name": "b", "secret_set": "silver"}]})
    expected = "config field 'items[1].secret_set': secret set 'silver' is not declared in pod.secret_sets (gold)"
    assert expected in message
    assert "config field 'items[1].name': item 'a' is listed twice" in _error({"items": ["a", "a"]})
    assert "more than max_items (2)" in _error({"items": ["a", "b", "c"], "max_items": 2})
    assert "config field 'items[0].name'" in _error({"items": ["has space"]})
    assert "config field 'items[0]': expected an item name" in _error({"items": [3]})
    assert "config field 'pod.default_secret_set'" in _error({"pod": {**POD, "default_secret_set": "nope"}})


def test_every_problem_on_one_line() -> None:
    message = _error({"schedule": "* * *", "catchup": "maybe", "tagz": [], "pod": {**POD, "namespace": "A"}})
    for field in ("schedule", "catchup", "tagz", "pod.namespace"):
        assert f"config field {field!r}" in message
    assert "'tagz': unknown field" in message
    assert message.endswith("; fix them in the config API")


def test_not_an_object() -> None:
    assert "expected a JSON object, got list" in _error([])


def test_run_time_items_follow_the_config_rules() -> None:
    config = validate_config("w", {"pod": {**POD, "secret_sets": {"gold": [ENV_SECRET]}}})
    items = validate_items("w", config, ["x", {"name": "y", "secret_set": "gold"}], "dag_run.conf.items")
    assert [i.name for i in items] == ["x", "y"]
    with pytest.raises(WorkflowConfigError) as caught:
        validate_items("w", config, ["ok", {"name": "z", "secret_set": "admin"}], "dag_run.conf.items")
    assert str(caught.value) == (
        "workflow 'w': run field 'dag_run.conf.items[1].secret_set': secret set 'admin' is not declared "
        "in pod.secret_sets (gold); fix it in the run's conf or params"
    )
    with pytest.raises(WorkflowConfigError, match=r"run field 'params.items': input should be a valid list"):
        validate_items("w", config, "x", "params.items")


def test_model_is_frozen() -> None:
    config = WorkflowConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.catchup = True  # type: ignore[misc]


def test_a_long_bad_value_is_quoted_cut_at_60_characters() -> None:
    """A line quotes at most 60 characters of the value (escaped), then its size."""
    value = "a b" + "c" * 97
    assert _error({"pool": value}) == (
        f"workflow 'acme': config field 'pool': {ascii(value)[:60]}... (102 bytes) is not a valid pool name "
        "(letters, digits, '_', '.', '-'; at most 256); fix it in the config API"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"days": 10**12}, "{'days': 1000000000000} is too long a duration (at most 999999999 days)"),
        (True, "expected a duration: seconds, {'minutes': 30}-style object or ISO 8601 like 'PT30M', got a boolean"),
    ],
)
def test_a_duration_beyond_timedelta_or_a_boolean_says_which(value: Any, problem: str) -> None:
    assert _error({"dagrun_timeout": value}) == (
        f"workflow 'acme': config field 'dagrun_timeout': {problem}; fix it in the config API"
    )
