"""The image on a laptop: `docker run` with the default command (`standalone`) and a config API.

One container serves all the tests of this module (Airflow standalone is heavy on 2 cores); the
SIGTERM test stops it and therefore comes last.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagfleet.fleet.store import TRAILER_PREFIX
from support.image import DAG_FOLDER, Container, HostConfigApi, http_ok, json_line, processes, start_container
from support.paths import REPO

pytestmark = pytest.mark.docker

KEY_IN_CONTAINER = "/run/secrets/dagfleet-api-key"
STARTUP_TIMEOUT = 300  # standalone on 2 shared cores: migrate, then api-server, scheduler, processor


@pytest.fixture(scope="module")
def standalone(image: str, config_api: HostConfigApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    """`docker run -p 8080 IMAGE` (CMD standalone), the API key from a mounted file."""
    key_file = tmp_path_factory.mktemp("secret") / "api-key"
    key_file.write_text(config_api.api_key + "\n")
    key_file.chmod(0o644)  # readable by uid 50000 in the container
    container = start_container(
        image,
        "standalone",
        env={"DAGFLEET_API_URL": config_api.url, "DAGFLEET_API_KEY_FILE": KEY_IN_CONTAINER},
        options=("-v", f"{key_file}:{KEY_IN_CONTAINER}:ro", "-p", "127.0.0.1::8080"),
    )
    try:
        health = f"http://127.0.0.1:{container.host_port(8080)}/api/v2/monitor/health"
        container.wait_for("the UI on port 8080", lambda: http_ok(health), STARTUP_TIMEOUT, every=3)
        yield container
    finally:
        container.remove()


def test_one_dag_file_per_workflow(standalone: Container, config_api: HostConfigApi) -> None:
    listing = standalone.exec("ls", "-1", DAG_FOLDER)
    assert listing.returncode == 0, listing.stderr
    dag_files = {name for name in listing.stdout.split() if name.endswith(".py")}
    assert dag_files == {f"{workflow}-mydag.py" for workflow in config_api.workflows}
    copy = standalone.exec("cat", f"{DAG_FOLDER}/{config_api.workflows[0]}-mydag.py")
    demo = (REPO / "dags" / "demo.py").read_text()
    body, _, trailer = copy.stdout.rpartition(TRAILER_PREFIX.decode())
    assert body.rstrip("\n") == demo.rstrip("\n"), "the image does not bake the current demo template"
    assert trailer.startswith("dagfleet ") and ", record " in trailer


def test_airflow_lists_every_dag_without_import_errors(standalone: Container, config_api: HostConfigApi) -> None:
    # As the image's entrypoint runs every command (umask 0002: files group-writable); a bare
    # `docker exec` bypasses it, and the bytecode caches these imports write would be 0644.
    airflow = ("sh", "-c", 'umask 0002 && exec airflow "$@"', "airflow")
    errors = standalone.exec(*airflow, "dags", "list-import-errors", "--local", "-o", "json")
    assert json_line(errors.stdout) == [], errors.stdout + errors.stderr
    dags = standalone.exec(*airflow, "dags", "list", "--local", "-o", "json")
    assert dags.returncode == 0, dags.stderr
    listed = {dag["dag_id"]: dag["fileloc"] for dag in json_line(dags.stdout)}  # type: ignore[union-attr]
    # The dagfleet bundle (docs/parsing.md): Airflow parses the current version's snapshot.
    version = standalone.exec("cat", f"{DAG_FOLDER}/.dagfleet/versions/current").stdout.strip()
    snapshot = f"{DAG_FOLDER}/.dagfleet/versions/{version}"
    assert listed == {w: f"{snapshot}/{w}-mydag.py" for w in config_api.workflows}


def test_runs_as_airflow_uid_50000_gid_0(standalone: Container, image_config: dict[str, object]) -> None:
    assert image_config["User"] == "50000"
    procs = processes(standalone)
    assert any("standalone" in cmd for _, _, cmd in procs), procs
    wrong = [(uid, gid, cmd) for uid, gid, cmd in procs if (uid, gid) != (50000, 0)]
    assert not wrong, f"processes not running as 50000:0: {wrong}"


def test_written_files_are_group_writable_gid_0(standalone: Container) -> None:
    """Arbitrary-UID platforms run with gid 0: what the container writes must be g+w, group 0."""
    found = standalone.exec("find", DAG_FOLDER, "-printf", r"%m %G %p\n")
    assert found.returncode == 0, found.stderr
    bad = []
    for line in found.stdout.splitlines():
        mode, group, path = line.split(" ", 2)
        if group != "0" or not int(mode, 8) & stat.S_IWGRP:
            bad.append(f"{mode} gid={group} {Path(path)}")
    assert not bad, "not group-writable with gid 0:\n" + "\n".join(bad)


def test_ui_answers_on_port_8080(standalone: Container) -> None:
    assert http_ok(f"http://127.0.0.1:{standalone.host_port(8080)}/api/v2/monitor/health")


def test_api_key_never_in_logs(standalone: Container, config_api: HostConfigApi) -> None:
    logs = standalone.logs()
    assert "synced 3 workflow(s)" in logs or "3 written" in logs, logs[:2000]
    assert config_api.api_key not in logs


def test_stops_within_10s_on_sigterm(standalone: Container) -> None:
    elapsed, code = standalone.stop_with_sigterm(limit=10)
    assert code != -1, f"still running 10 s after SIGTERM:\n{standalone.tail()}"
    assert elapsed < 10
    assert code in (0, 143), f"exit code {code} after SIGTERM:\n{standalone.tail()}"
