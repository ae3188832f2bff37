"""Issue #15: dagfleet.service.dagprocessor, the one place the shipped dag-processor settings live."""

from __future__ import annotations

import configparser
import importlib.resources

import yaml

from dagfleet.service.dagprocessor import (
    CORE_DEFAULTS,
    DAG_PROCESSOR_DEFAULTS,
    SECTION,
    SHIPPED,
    airflow_cfg,
    airflow_env,
)


def airflow_options(section: str = SECTION) -> dict[str, dict]:
    text = importlib.resources.files("airflow").joinpath("config_templates/config.yml").read_text()
    return yaml.safe_load(text)[section]["options"]


def test_every_setting_is_a_real_airflow_option_with_a_changed_or_relied_on_value() -> None:
    options = airflow_options()
    assert set(DAG_PROCESSOR_DEFAULTS) <= set(options)
    changed = {k for k, v in DAG_PROCESSOR_DEFAULTS.items() if str(options[k]["default"]) != v}
    assert changed == {"min_file_process_interval", "refresh_interval", "dag_bundle_config_list"}
    core = airflow_options("core")
    assert {k for k, v in CORE_DEFAULTS.items() if str(core[k]["default"]) != v} == set(CORE_DEFAULTS)


def test_airflow_cfg_reads_back_as_the_settings() -> None:
    config = configparser.ConfigParser()
    config.read_string(airflow_cfg())
    assert config.sections() == [SECTION, "core"]
    assert {section: dict(config[section]) for section in config.sections()} == SHIPPED


def test_airflow_env_names_and_overrides() -> None:
    env = airflow_env({"AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "60", "AIRFLOW__CORE__PARALLELISM": "9"})
    assert env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "3600"
    assert env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] == "60"
    assert env["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] == "0"
    assert len(env) == len(DAG_PROCESSOR_DEFAULTS) + len(CORE_DEFAULTS)
