"""`make run WORKFLOWS=<file> TEMPLATES=<dir>` as docs/templates.md shows it ("Try your template locally").

Runs the real `make run` with the page's three files (its template, schema and workflows) plus one
workflow of the shipped `demo` template, on free ports: the user's template and the shipped one
both give DAGs that run to `success`; an edit of the template, then of the workflows file, reaches
Airflow without a restart; `make status` finds the fleet. Before issue #24, devstack dropped every
DAGFLEET_* variable and `make run` took no templates folder.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.airflowapi import Airflow, when_ready
from support.net import free_port
from support.paths import REPO
from support.proc import run
from support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.airflow]
DOCS = REPO / "docs" / "templates.md"
SYNC_INTERVAL = 2


def _doc_files() -> dict[str, str]:
    """The page's example files: ```<lang> <path> blocks."""
    return dict(re.findall(r"^```\w+ ([\w./-]+)\n(.*?)^```", DOCS.read_text(), flags=re.S | re.M))


def _documented_command() -> str:
    (line,) = [ln for ln in DOCS.read_text().splitlines() if ln.startswith("make run WORKFLOWS=")]
    return line.split("#")[0].strip()


def _make(*args: str) -> list[str]:
    env_free = ["env", "-u", "MAKEFLAGS", "-u", "MAKELEVEL", "-u", "MFLAGS"]
    return [*env_free, "make", "-C", str(REPO), "--no-print-directory", *args]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    tmp = tmp_path_factory.mktemp("templates-stack")
    for name, body in _doc_files().items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(body)
    workflows = yaml.safe_load((tmp / "my-workflows.yaml").read_text())
    workflows["workflows"]["shipped_demo"] = {"template": "demo"}  # the shipped templates stay reachable
    (tmp / "my-workflows.yaml").write_text(yaml.safe_dump(workflows))
    port, run_dir = free_port(), tmp / "run"
    words = _documented_command().split()[1:]  # run WORKFLOWS=... TEMPLATES=...
    words = [w.split("=")[0] + "=" + str(tmp / w.split("=", 1)[1]) if "=" in w else w for w in words]
    extra = [f"PORT={port}", f"CONFIG_PORT={free_port()}", f"SYNC_INTERVAL={SYNC_INTERVAL}", f"RUN_DIR={run_dir}"]
    log = (tmp / "make-run.log").open("w+")
    proc = subprocess.Popen(
        _make(*words, *extra), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        yield when_ready(proc, Path(log.name), run_dir, port, tmp / "my-workflows.yaml")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole process group
        try:
            proc.wait(timeout=90)
        finally:
            log.close()


def _tasks(stack: Airflow, dag_id: str) -> set[str]:
    return {t["task_id"] for t in stack.api("GET", f"/dags/{dag_id}/tasks")["tasks"]}


def test_your_template_and_a_shipped_one_both_run(stack: Airflow) -> None:
    wait_until("acme_copy in Airflow", lambda: stack.dag_visible("acme_copy"), 120)
    wait_until("shipped_demo in Airflow", lambda: stack.dag_visible("shipped_demo"), 120)
    assert _tasks(stack, "acme_copy") == {"copy"}
    stack.run_to_completion("acme_copy", {})
    stack.run_to_completion("shipped_demo", {"items": ["a"]})


def test_a_template_edit_and_a_workflows_edit_reach_airflow_without_a_restart(stack: Airflow) -> None:
    template = stack.workflows_file.parent / "my-templates" / "copy_tables.py"
    template.write_text(
        template.read_text().replace("def copy(", "def copy_table(").replace("copy.expand", "copy_table.expand")
    )
    wait_until(
        "the edited template's task in Airflow", lambda: _tasks(stack, "acme_copy") == {"copy_table"}, 120, every=2
    )
    workflows = yaml.safe_load(stack.workflows_file.read_text())
    workflows["workflows"]["initech_copy"] = {**workflows["workflows"]["acme_copy"], "tags": ["initech"]}
    stack.workflows_file.write_text(yaml.safe_dump(workflows))
    wait_until("the added workflow in Airflow", lambda: stack.dag_visible("initech_copy"), 120)
    assert _tasks(stack, "initech_copy") == {"copy_table"}


def test_make_status_finds_the_fleet_of_make_run(stack: Airflow) -> None:
    run_dir = stack.dags.parent.parent
    result = run(_make("status", f"RUN_DIR={run_dir}"), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("fleet: healthy"), result.stdout
    assert "acme_copy" in result.stdout and "shipped_demo" in result.stdout
