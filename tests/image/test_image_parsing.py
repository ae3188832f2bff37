"""Issue #15: the image carries dagfleet's dag-processor settings; AIRFLOW__* variables still win."""

from __future__ import annotations

import json

import pytest

from dagfleet.service.dagprocessor import DAG_PROCESSOR_DEFAULTS, SECTION, env_name
from support.image import docker

pytestmark = pytest.mark.docker

# What Airflow itself resolves in the container (env > airflow.cfg > Airflow's default).
READ = (
    "import json, sys; from airflow.configuration import conf; "
    "print(json.dumps({k: conf.get(sys.argv[1], k) for k in sys.argv[2:]}))"
)


def resolved(image: str, *env: str) -> dict[str, str]:
    args = [f"--env={e}" for e in env]
    result = docker(
        "run", "--rm", "--entrypoint", "python", *args, image, "-c", READ, SECTION, *DAG_PROCESSOR_DEFAULTS,
        timeout=180,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_airflow_in_the_image_resolves_the_shipped_settings(image: str) -> None:
    assert resolved(image) == DAG_PROCESSOR_DEFAULTS


def test_an_airflow_variable_overrides_one_setting(image: str) -> None:
    values = resolved(image, f"{env_name('min_file_process_interval')}=45")
    assert values == {**DAG_PROCESSOR_DEFAULTS, "min_file_process_interval": "45"}
