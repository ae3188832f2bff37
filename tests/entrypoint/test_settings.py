"""dagfleet.fleet.settings: one declaration per DAGFLEET_* variable, and everything held to it.

The declarations are the source; the docs/reference.md table, the chart's env lists and the
chart's defaults in values.yaml are checked against them here.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.settings import SETTINGS, SHIPPED_TEMPLATES, TASK_WORKFLOW, Settings, invalid_env, read_setting
from support import chart
from support.paths import REPO

REFERENCE = REPO / "docs" / "reference.md"
VALUES = REPO / "chart" / "values.yaml"
DOC_SCRIPT = REPO / "scripts" / "settings_doc.py"


def _declared_field(name: str) -> str:
    return next(f.name for f in fields(Settings) if f.metadata["setting"].name == name)


# ---------- the declaration ----------


def test_every_field_is_one_declared_setting_and_every_setting_but_one_is_a_field() -> None:
    declared = [f.metadata["setting"].name for f in fields(Settings)]
    assert len(declared) == len(set(declared))
    assert set(SETTINGS) - set(declared) == {TASK_WORKFLOW.name}  # read by `dagfleet task` only
    assert all(name.startswith("DAGFLEET_") for name in SETTINGS)


def test_the_dataclass_defaults_are_what_an_empty_environment_gives() -> None:
    assert Settings() == Settings.from_env({})
    empty = Settings.from_env({"HOME": "/nowhere", "AIRFLOW_HOME": "/af"})
    assert empty.dags_folder == Path("/af/dags")
    assert empty.templates_folder == SHIPPED_TEMPLATES
    assert (empty.sync_interval, empty.connect_timeout, empty.read_timeout) == (60.0, 3.0, 10.0)
    assert (empty.retries, empty.cache_ttl, empty.parse_timeout, empty.log_level) == (4, 300.0, 5.0, "INFO")
    assert (empty.default_template, empty.allow_empty, empty.static_workflows) == ("demo", False, ())
    assert (empty.api_url, empty.metrics_port, empty.stuck_after, empty.exec_program) == (None, None, None, None)


def test_a_setting_cannot_be_declared_twice() -> None:
    from dagfleet.fleet.settings import declare

    with pytest.raises(ValueError, match="DAGFLEET_RETRIES is declared twice"):
        declare("DAGFLEET_RETRIES", int, "4", "again")


# One valid value per variable and what the field then holds: from_env reads every declaration.
SAMPLES: dict[str, tuple[str, Any]] = {
    "DAGFLEET_API_URL": ("https://api.example.com/", "https://api.example.com"),
    "DAGFLEET_API_KEY": ("k-123", "k-123"),
    "DAGFLEET_API_KEY_FILE": ("/run/key", "/run/key"),
    "DAGFLEET_STATIC_WORKFLOWS": ("a, b c", ("a", "b", "c")),
    "DAGFLEET_DAGS_FOLDER": ("/d", Path("/d")),
    "DAGFLEET_TEMPLATES": ("/t", Path("/t")),
    "DAGFLEET_DEFAULT_TEMPLATE": ("extract", "extract"),
    "DAGFLEET_BASE_DAG": ("/b/mine.py", Path("/b/mine.py")),
    "DAGFLEET_ALLOW_EMPTY": ("yes", True),
    "DAGFLEET_SYNC_INTERVAL": ("2.5", 2.5),
    "DAGFLEET_CONNECT_TIMEOUT": ("1", 1.0),
    "DAGFLEET_READ_TIMEOUT": ("7", 7.0),
    "DAGFLEET_RETRIES": ("9", 9),
    "DAGFLEET_CACHE_URL": ("redis://r:6379/0", "redis://r:6379/0"),
    "DAGFLEET_CACHE_TTL": ("30", 30.0),
    "DAGFLEET_PARSE_TIMEOUT": ("2", 2.0),
    "DAGFLEET_RUN_SYNC_TIMEOUT": ("30", 30.0),
    "DAGFLEET_LOG_LEVEL": ("debug", "DEBUG"),
    "DAGFLEET_EXEC": ("/bin/true", "/bin/true"),
    "DAGFLEET_METRICS_PORT": ("9108", 9108),
    "DAGFLEET_STUCK_AFTER": ("600", 600.0),
    "DAGFLEET_STATUS_URL": ("http://s:9108/status.json", "http://s:9108/status.json"),
    "DAGFLEET_VERSION_KEEP_HOURS": ("2.5", 2.5),
    "DAGFLEET_REMOVED_GRACE": ("90", 90.0),
    "DAGFLEET_SHARDS": ("3", 3),
    "DAGFLEET_POOLS": ('{"b": {"slots": 2, "description": ""}, "a": {"slots": 1, "description": "A"}}', ("a", "b")),
    "DAGFLEET_EXECUTORS": ("LocalExecutor,CeleryExecutor", ("LocalExecutor", "CeleryExecutor")),
    "DAGFLEET_QUEUES": ("default, tenant-a:hi", ("default", "tenant-a:hi")),
}


def test_from_env_reads_every_declared_field() -> None:
    assert set(SAMPLES) == {f.metadata["setting"].name for f in fields(Settings)}
    settings = Settings.from_env({name: raw for name, (raw, _) in SAMPLES.items()})
    for name, (_, expected) in SAMPLES.items():
        assert getattr(settings, _declared_field(name)) == expected, name
    assert invalid_env({name: raw for name, (raw, _) in SAMPLES.items()}) == []


def test_derived_defaults_apply_only_when_the_variable_is_unset_or_empty() -> None:
    airflow = {"AIRFLOW__CORE__DAGS_FOLDER": "/af-dags", "AIRFLOW_HOME": "/af"}
    assert Settings.from_env(airflow).dags_folder == Path("/af-dags")
    assert Settings.from_env({**airflow, "DAGFLEET_DAGS_FOLDER": ""}).dags_folder == Path("/af-dags")
    assert Settings.from_env({**airflow, "DAGFLEET_DAGS_FOLDER": "/mine"}).dags_folder == Path("/mine")
    assert read_setting(airflow, "DAGFLEET_DAGS_FOLDER", derive=False) is None
    base = {"DAGFLEET_BASE_DAG": "/x/single.py"}
    assert Settings.from_env(base).default_template == "single"
    assert Settings.from_env({**base, "DAGFLEET_DEFAULT_TEMPLATE": "demo"}).default_template == "demo"
    with pytest.raises(DagfleetError, match=r"^DAGFLEET_DEFAULT_TEMPLATE: expected a template name"):
        Settings.from_env({**base, "DAGFLEET_DEFAULT_TEMPLATE": ""})


def test_secrets_never_appear_in_a_repr() -> None:
    settings = Settings(api_url="https://u:pw-1@api", api_key_value="key-2", cache_url="redis://:pw-3@r")
    assert not {"pw-1", "key-2", "pw-3"} & set(re.findall(r"[\w-]+", repr(settings)))


# ---------- bad values: one line naming the variable and what to set ----------

BAD_VALUES = [
    ("DAGFLEET_API_URL", "ftp://api", "expected an http:// or https:// URL"),
    ("DAGFLEET_STATUS_URL", "status.json", "expected an http:// or https:// URL"),
    ("DAGFLEET_DEFAULT_TEMPLATE", "9lives", "expected a template name"),
    ("DAGFLEET_SHARDS", "65", "expected an integer from 1 to 64"),
    ("DAGFLEET_ALLOW_EMPTY", "maybe", "expected true or false"),
    ("DAGFLEET_SYNC_INTERVAL", "-1", "expected a number > 0"),
    ("DAGFLEET_SYNC_INTERVAL", "soon-secret", "expected a number > 0"),
    ("DAGFLEET_CONNECT_TIMEOUT", "0", "expected a number > 0"),
    ("DAGFLEET_READ_TIMEOUT", "ten", "expected a number > 0"),
    ("DAGFLEET_RETRIES", "0", "expected an integer >= 1"),
    ("DAGFLEET_RETRIES", "2.5", "expected an integer >= 1"),
    ("DAGFLEET_CACHE_URL", "memcached://m", "expected redis://host:port/db"),
    ("DAGFLEET_CACHE_TTL", "-5", "expected a number > 0"),
    ("DAGFLEET_PARSE_TIMEOUT", "x-secret", "expected a number > 0"),
    ("DAGFLEET_LOG_LEVEL", "LOUD", "expected DEBUG, INFO, WARNING or ERROR"),
    ("DAGFLEET_METRICS_PORT", "70000", "expected a TCP port 1-65535"),
    ("DAGFLEET_METRICS_PORT", "port-secret", "expected a TCP port 1-65535"),
    ("DAGFLEET_STUCK_AFTER", "-1", "expected a number > 0"),
]


@pytest.mark.parametrize(("name", "value", "fix"), BAD_VALUES, ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_variable_and_the_fix(name: str, value: str, fix: str) -> None:
    with pytest.raises(DagfleetError) as raised:
        Settings.from_env({name: value})
    message = str(raised.value)
    assert message.startswith(f"{name}: {fix}")
    assert "\n" not in message
    if "secret" in value:
        assert value not in message  # a value may be a secret: never echoed
    assert invalid_env({name: value}) == [message]


def test_an_unknown_variable_is_named_with_where_to_look() -> None:
    assert invalid_env({"DAGFLEET_API_URLL": "x", "OTHER": "y"}) == [
        "DAGFLEET_API_URLL is not a dagfleet setting (known: see docs/reference.md)"
    ]


# ---------- docs/reference.md ----------


def _reference_rows() -> dict[str, tuple[str, str]]:
    """variable -> (default, meaning) of the Environment table of docs/reference.md."""
    text = REFERENCE.read_text(encoding="utf-8")
    table = text.split("## Environment", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `"):
            variable = cells[0].strip("`")
            assert variable not in rows, f"{variable} has two rows"
            rows[variable] = (cells[1], cells[2])
    return rows


def test_the_reference_table_documents_exactly_the_declared_settings() -> None:
    rows = _reference_rows()
    assert set(rows) - set(SETTINGS) == set(), "documented but not declared (phantom rows)"
    assert set(SETTINGS) - set(rows) == set(), "declared but not documented"
    assert list(rows) == list(SETTINGS)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_reference_row_shows_the_declared_default_and_doc(name: str) -> None:
    default, meaning = _reference_rows()[name]
    declared = SETTINGS[name]
    assert meaning == declared.doc
    if declared.shown_default is not None:
        assert default == declared.shown_default
    elif declared.default:
        assert default == f"`{declared.default}`"
    else:
        assert default == "unset"


def test_the_committed_reference_table_is_the_generated_one() -> None:
    result = subprocess.run(
        [sys.executable, str(DOC_SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


# ---------- the chart ----------


def _env_by_container(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:

    found = {}
    for doc in chart.workloads(docs):
        for c in chart.containers(doc):
            env = {k: v for k, v in chart.env_of(c).items() if k.startswith("DAGFLEET_")}
            found[f"{doc['kind']}/{doc['metadata']['name']}:{c['name']}"] = env
    return found


@pytest.mark.helm
def test_the_chart_sets_only_declared_variables_in_every_scenario() -> None:

    for scenario in chart.SCENARIOS:
        for where, env in _env_by_container(chart.render_scenario(scenario)).items():
            assert set(env) <= set(SETTINGS), (scenario, where, set(env) - set(SETTINGS))
            assert invalid_env({k: v for k, v in env.items() if isinstance(v, str)}) == [], (scenario, where)


# Variables the chart sets with its defaults to something other than the program's default, and why.
CHART_DIFFERS = {
    "DAGFLEET_DAGS_FOLDER": "the chart's dags volume is mounted at its own path (dagfleet.dagsFolder)",
    "DAGFLEET_API_URL": "configApi.url: the chart refuses to render without a workflow source",
    "DAGFLEET_METRICS_PORT": "dagfleet.metrics is on by default: the sidecar's probes need /healthz and /readyz",
    "DAGFLEET_STATUS_URL": "the api-server has no dags folder: its Fleet page reads the sidecar's /status.json",
    "DAGFLEET_EXECUTORS": "the chart's executor lives in airflow.cfg, not AIRFLOW__CORE__EXECUTOR: sync is told it",
}


@pytest.mark.helm
def test_the_chart_defaults_agree_with_the_declared_defaults() -> None:

    rendered = _env_by_container(chart.render_chart())
    seen = set()
    for where, env in rendered.items():
        for name, value in env.items():
            seen.add(name)
            if name in CHART_DIFFERS:
                continue
            ours = read_setting({name: value}, name, derive=False)
            assert ours == read_setting({}, name, derive=False), (where, name, value)
    assert set(CHART_DIFFERS) <= seen, "a stated difference the chart no longer has: drop it"
    assert {"DAGFLEET_SYNC_INTERVAL", "DAGFLEET_RETRIES", "DAGFLEET_LOG_LEVEL"} <= seen


def _values_settings() -> dict[str, tuple[str, Any]]:
    """values.yaml key -> (the DAGFLEET_* variable its `# --` comment names, its default)."""
    lines = VALUES.read_text(encoding="utf-8").splitlines()
    found = {}
    for comment, line in itertools.pairwise(lines):
        named = re.search(r"\(`(DAGFLEET_[A-Z_]+)`\)", comment)
        if named and comment.lstrip().startswith("# --"):
            key, _, value = line.strip().partition(":")
            found[key] = (named.group(1), yaml.safe_load(value))
    return found


# values.yaml keys named after a setting whose value is not that setting's value, and why.
VALUES_DIFFER = {
    "enabled": "dagfleet.metrics.enabled turns DAGFLEET_METRICS_PORT on (to metrics.port), it is not its value",
}


def _left_out(key: str, default: Any) -> bool:
    """An empty value (and a stuckAfter of 0) means unset: the chart leaves the variable out."""
    return default in ("", []) or (key == "stuckAfter" and default == 0)


@pytest.mark.helm
def test_values_yaml_names_only_declared_settings_with_their_defaults() -> None:
    found = _values_settings()
    assert len(found) >= 10, found
    rendered = set().union(*_env_by_container(chart.render_chart()).values())
    for key, (name, default) in found.items():
        assert name in SETTINGS, f"values.yaml {key} names {name}, which is not a dagfleet setting"
        if key in VALUES_DIFFER:
            continue
        if _left_out(key, default):
            assert name not in rendered, f"values.yaml {key} is empty, yet the chart sets {name}"
            continue
        text = ",".join(default) if isinstance(default, list) else str(default)  # as the chart renders it
        text = text.lower() if isinstance(default, bool) else text
        assert read_setting({name: text}, name, derive=False) == read_setting({}, name, derive=False), key
    assert set(VALUES_DIFFER) <= set(found)


# ---------- facts the docs of a setting state about other modules ----------


def test_the_stuck_after_default_the_docs_state_is_the_one_the_watch_uses() -> None:
    from dagfleet.service.metrics import MAX_RETRY_AFTER, stuck_after

    shown = SETTINGS["DAGFLEET_STUCK_AFTER"].shown_default or ""
    assert f"(connect + read timeout + {MAX_RETRY_AFTER:g})" in shown
    assert stuck_after(60, 3, 10, 4) == 3 * 60 + 4 * (3 + 10 + MAX_RETRY_AFTER)


def test_the_status_url_timeouts_the_docs_state_are_the_ones_the_page_uses() -> None:
    from dagfleet.service.fleetui import STATUS_URL_TIMEOUT

    connect, read = STATUS_URL_TIMEOUT
    assert f"{connect:g} s connect / {read:g} s read timeout" in SETTINGS["DAGFLEET_STATUS_URL"].doc
