"""`docker run IMAGE <airflow subcommand>`: sync first, then the command through /entrypoint."""

from __future__ import annotations

import pytest

from support.image import DAG_FOLDER, HostConfigApi, docker, docker_run_args, json_line

pytestmark = pytest.mark.docker


def test_run_dags_list_with_api_key_from_env(image: str, config_api: HostConfigApi) -> None:
    """One-shot container: the key in DAGFLEET_API_KEY, `_AIRFLOW_DB_MIGRATE` as the official image has it."""
    env = {"DAGFLEET_API_URL": config_api.url, "DAGFLEET_API_KEY": config_api.api_key, "_AIRFLOW_DB_MIGRATE": "true"}
    result = docker("run", "--rm", *docker_run_args(env), image, "dags", "list", "--local", "-o", "json", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    listed = {dag["dag_id"]: dag["fileloc"] for dag in json_line(result.stdout)}  # type: ignore[union-attr]
    assert listed == {w: f"{DAG_FOLDER}/{w}-mydag.py" for w in config_api.workflows}
    assert "exec /entrypoint dags list --local -o json" in output
    assert config_api.api_key not in output
