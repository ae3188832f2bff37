"""Extending the image with your own templates, exactly as docs/templates.md says: `FROM` the
dagfleet image, `COPY` a templates folder, set `DAGFLEET_TEMPLATES`; then sync and parse in it."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.image import DAG_FOLDER, HostConfigApi, bridge_ip, docker, docker_run_args, json_line

pytestmark = pytest.mark.docker

DOCS = Path(__file__).resolve().parents[2] / "docs" / "templates.md"


def _doc_blocks() -> dict[str, str]:
    """The documented example's files and its Dockerfile, as written in docs/templates.md."""
    text = DOCS.read_text()
    blocks = dict(re.findall(r"^```\w+ ([\w./-]+)\n(.*?)^```", text, flags=re.S | re.M))
    (dockerfile,) = re.findall(r"^```dockerfile\n(.*?)^```", text, flags=re.S | re.M)
    return {**blocks, "Dockerfile": dockerfile}


@pytest.fixture(scope="module")
def extended_image(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    context = tmp_path_factory.mktemp("extended")
    for name, body in _doc_blocks().items():
        if name.startswith("my-templates/") or name == "Dockerfile":
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_text(body)
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM dagfleet:dev\n")
    (context / "Dockerfile").write_text(dockerfile.replace("FROM dagfleet:dev", f"FROM {image}", 1))
    tag = f"{image}-templates"
    docker("build", "-q", "-t", tag, str(context), timeout=600)
    yield tag
    docker("image", "rm", "-f", tag, check=False)


@pytest.fixture(scope="module")
def workflows_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostConfigApi]:
    from dagfleet.service.server import make_server

    workflows = yaml.safe_load(_doc_blocks()["my-workflows.yaml"])["workflows"]
    workflows["default_one"] = {"spec": {"source_conn_id": "db", "tables": ["t"], "target_schema": "s"}}
    path = tmp_path_factory.mktemp("templates-api") / "workflows.yaml"
    path.write_text(yaml.safe_dump({"workflows": workflows}))
    server = make_server(path, bridge_ip(), 0, "templates-key-1234", "objects")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HostConfigApi(f"http://host.docker.internal:{server.server_port}", "templates-key-1234", tuple(workflows))
    server.shutdown()
    server.server_close()


def test_an_extended_image_syncs_and_parses_its_own_template(extended_image: str, workflows_api: HostConfigApi) -> None:
    env = {
        "DAGFLEET_API_URL": workflows_api.url,
        "DAGFLEET_API_KEY": workflows_api.api_key,
        "_AIRFLOW_DB_MIGRATE": "true",
    }
    args = ("dags", "list", "--local", "-o", "json")
    result = docker("run", "--rm", *docker_run_args(env), extended_image, *args, check=False, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "0 rejected, 0 problem(s)" in output, output[-3000:]
    listed = {dag["dag_id"]: dag["fileloc"] for dag in json_line(result.stdout)}  # type: ignore[union-attr]
    assert listed == {w: f"{DAG_FOLDER}/{w}-mydag.py" for w in workflows_api.workflows}

    # The workflow without `template` got DAGFLEET_DEFAULT_TEMPLATE from the image; every copy is
    # the documented template, and the DAG processor finds no import error.
    errors = docker(
        "run", "--rm", *docker_run_args(env), extended_image, "dags", "list-import-errors", "--local", "-o", "json",
        check=False, timeout=300,
    )  # fmt: skip
    assert errors.returncode == 0, (errors.stdout + errors.stderr)[-3000:]
    assert json_line(errors.stdout) == []
