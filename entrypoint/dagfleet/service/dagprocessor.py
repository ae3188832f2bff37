"""The dag-processor settings dagfleet ships (issue #15), in one place.

Airflow's defaults re-parse every DAG file every 30 s and list the DAG folder every 300 s: with
one generated file per workflow that keeps ~1.4 cores busy at 1,000 workflows with nothing
changing, while a new or removed workflow waits up to 5 minutes. dagfleet only rewrites (or
touches) a DAG file when something that feeds its parse changed, and Airflow's default
``modified_time`` ordering parses such a file at once regardless of the interval, so the interval
can be long and the folder listing short. docs/parsing.md explains the trade-off and how to
override each setting.

The same values are shipped three ways, each overridable by the user's own ``AIRFLOW__...``
environment variables: the chart's ``airflow.config`` (chart/values.yaml), the image's
``$AIRFLOW_HOME/airflow.cfg`` (docker/airflow.cfg) and ``make run`` (scripts/devstack.py).
Tests check that all three carry exactly these values. ``dag_bundle_config_list`` makes Airflow
read the fleet through the versioned dagfleet bundle; ``PLAIN_FOLDER_CONFIG_LIST`` is the switch
back to the plain dags folder (docs/parsing.md says what that gives up).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from dagfleet.fleet import shards

SECTION = "dag_processor"

BUNDLE_NAME = shards.BUNDLE_NAME
BUNDLE_CLASSPATH = "dagfleet.service.bundle.FleetBundle"


def bundle_config_list(count: int = 1) -> str:
    """``[dag_processor] dag_bundle_config_list`` for a fleet of ``count`` shards (issue #31): one
    ``dagfleet`` bundle for 1 (today's), else ``dagfleet-0`` … each serving its shard."""
    if count == 1:
        return json.dumps([{"name": BUNDLE_NAME, "classpath": BUNDLE_CLASSPATH, "kwargs": {}}])
    names = shards.bundle_names(count)
    return json.dumps([{"name": n, "classpath": BUNDLE_CLASSPATH, "kwargs": {"shard": k}} for k, n in enumerate(names)])


#: ``[dag_processor] dag_bundle_config_list``: the dagfleet bundle over Airflow's dags folder.
BUNDLE_CONFIG_LIST = bundle_config_list(1)
#: The plain-folder mode (what Airflow does without the setting): one unversioned LocalDagBundle.
PLAIN_FOLDER_CONFIG_LIST = json.dumps(
    [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}}]
)

#: ``[dag_processor]`` settings: Airflow's default in the comment.
DAG_PROCESSOR_DEFAULTS: dict[str, str] = {
    # 30: re-parse a file at most once an hour when nothing changed it (a safety net only).
    "min_file_process_interval": "3600",
    # 300: list the folder every 10 s, so new files are parsed and removed ones marked stale soon.
    "refresh_interval": "10",
    # same as Airflow's default, stated because the long interval relies on it: a file whose
    # mtime changed is parsed first, before its interval is up.
    "file_parsing_sort_mode": "modified_time",
    # same as Airflow's default: two parser processes fit the 2-core machines dagfleet targets.
    "parsing_processes": "2",
    # a dags-folder LocalDagBundle: the fleet as a versioned bundle, so a run keeps the config and
    # template it started with (issue #30, dagfleet.service.bundle); with the version unchanged the
    # dag-processor skips the folder listing.
    "dag_bundle_config_list": BUNDLE_CONFIG_LIST,
}


#: ``[core]`` settings: Airflow's default in the comment.
CORE_DEFAULTS: dict[str, str] = {
    # 30: Airflow drops a changed serialized DAG written less than 30 s after the previous write
    # (and the file is then not re-parsed for an hour): a config change landing within 30 s of the
    # last one would keep its old DAG version while runs already pin the new bundle version.
    # dagfleet re-parses a file only when it changed, so every write is one that must land.
    "min_serialized_dag_update_interval": "0",
}

#: Every shipped setting, by ``airflow.cfg`` section.
SHIPPED: dict[str, dict[str, str]] = {SECTION: DAG_PROCESSOR_DEFAULTS, "core": CORE_DEFAULTS}


def env_name(key: str, section: str = SECTION) -> str:
    """``AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL`` for ``min_file_process_interval``."""
    return f"AIRFLOW__{section.upper()}__{key.upper()}"


def airflow_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The shipped settings as ``AIRFLOW__DAG_PROCESSOR__*`` (and ``AIRFLOW__CORE__*``) variables; ``overrides`` (an
    environment) wins for every variable it sets."""
    env = {env_name(key, section): value for section, values in SHIPPED.items() for key, value in values.items()}
    for name in list(env):
        if overrides is not None and name in overrides:
            env[name] = overrides[name]
    return env


def airflow_cfg() -> str:
    """The shipped settings as an ``airflow.cfg`` fragment (what the image's airflow.cfg holds)."""
    lines = []
    for section, values in SHIPPED.items():
        lines += [f"[{section}]"] + [f"{key} = {value}" for key, value in values.items()] + [""]
    return "\n".join(lines)
