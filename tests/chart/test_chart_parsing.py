"""Issue #15: the chart ships dagfleet's dag-processor settings, and they stay overridable."""

from __future__ import annotations

import configparser

import pytest

from dagfleet.service.dagprocessor import CORE_DEFAULTS, DAG_PROCESSOR_DEFAULTS, SECTION
from support.chart import container, env_of, one, render_chart

pytestmark = pytest.mark.helm

SHOW = ["templates/airflow-config.yaml", "templates/dag-processor/deployment.yaml"]


def airflow_cfg(docs: list[dict]) -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read_string(one(docs, "ConfigMap", "dagfleet-airflow-config")["data"]["airflow.cfg"])
    return config


def test_dag_processor_reads_the_shipped_settings() -> None:
    docs = render_chart(show_only=SHOW)
    config = airflow_cfg(docs)
    assert dict(config[SECTION]) == DAG_PROCESSOR_DEFAULTS
    assert {k: config["core"][k] for k in CORE_DEFAULTS} == CORE_DEFAULTS
    processor = container(one(docs, "Deployment", "dagfleet-dag-processor"), "dag-processor")
    assert env_of(processor)["AIRFLOW_CONFIG"].endswith("/airflow.cfg")
    assert not any(name.startswith("AIRFLOW__DAG_PROCESSOR__") for name in env_of(processor))


def test_one_setting_overridden_keeps_the_others() -> None:
    docs = render_chart({"airflow": {"config": {"dag_processor": {"min_file_process_interval": 30}}}}, show_only=SHOW)
    section = airflow_cfg(docs)[SECTION]
    assert section["min_file_process_interval"] == "30"
    assert section["refresh_interval"] == DAG_PROCESSOR_DEFAULTS["refresh_interval"]


def test_null_gives_airflows_default_back() -> None:
    docs = render_chart({"airflow": {"config": {"dag_processor": {"refresh_interval": None}}}}, show_only=SHOW)
    section = airflow_cfg(docs)[SECTION]
    assert "refresh_interval" not in section
    assert section["min_file_process_interval"] == DAG_PROCESSOR_DEFAULTS["min_file_process_interval"]


def test_environment_variable_override_reaches_the_dag_processor() -> None:
    """AIRFLOW__* variables win over airflow.cfg in Airflow; extraEnv puts them on the container."""
    extra = [{"name": "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL", "value": "120"}]
    docs = render_chart({"airflow": {"extraEnv": extra}}, show_only=SHOW)
    processor = container(one(docs, "Deployment", "dagfleet-dag-processor"), "dag-processor")
    assert env_of(processor)["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "120"


def test_other_sections_merge_with_the_shipped_ones() -> None:
    docs = render_chart({"airflow": {"config": {"core": {"parallelism": 8}}}}, show_only=SHOW)
    config = airflow_cfg(docs)
    assert config["core"]["parallelism"] == "8"
    assert dict(config[SECTION]) == DAG_PROCESSOR_DEFAULTS
