"""The `dagfleet` command as a user runs it: real subprocesses, real loopback servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dagfleet.fleet.settings import Settings
from dagfleet.service.cli import AIRFLOW_COMPONENTS, resolve_command

DAGFLEET = str(Path(sys.executable).with_name("dagfleet"))
KEY = "cli-key-5b6c9d"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")}
    env.update(DAGFLEET_DAGS_FOLDER=str(tmp_path / "dags"), DAGFLEET_RETRIES="1", DAGFLEET_CONNECT_TIMEOUT="1")
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAGFLEET, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def test_sync_then_exec_replaces_the_process(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {}}, api_key=KEY)
    env = _env(tmp_path, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY)
    code = "import os, sys; print(os.getpid()); sys.exit(7)"
    proc = subprocess.Popen(
        [DAGFLEET, "run", "--", sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 7  # the exec'd program's own exit status
    assert int(out) == proc.pid  # same process: exec, not a child
    assert (tmp_path / "dags" / "a-mydag.py").exists()
    assert b"exec " in err
    assert KEY.encode() not in out + err


def test_run_starts_even_without_dags_unless_required(tmp_path: Path) -> None:
    env = _env(tmp_path)
    started = _run(["run", "--", sys.executable, "-c", "print('started')"], env)
    assert started.returncode == 0
    assert "started" in started.stdout
    assert "without generated DAGs" in started.stderr
    required = _run(["run", "--require-sync", "--", sys.executable, "-c", "print('started')"], env)
    assert required.returncode == 69
    assert "started" not in required.stdout
    assert "DAGFLEET_API_URL" in required.stderr


def test_sync_exit_codes_and_one_line_errors(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {}}, api_key=KEY)
    ok = _run(["sync"], _env(tmp_path, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY))
    assert ok.returncode == 0, ok.stderr
    assert "synced 1 workflow(s)" in ok.stderr

    wrong = _run(["sync"], _env(tmp_path, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY="nope-nope"))
    assert wrong.returncode == 75
    errors = [line for line in wrong.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "HTTP 401" in errors[0]
    assert "kept the last known good set of 1 DAG(s)" in errors[0]
    assert "nope-nope" not in wrong.stderr

    fresh = _run(["sync"], _env(tmp_path / "other", DAGFLEET_API_URL=api.url))
    assert fresh.returncode == 69
    assert "no API key was sent" in fresh.stderr


def test_api_key_from_a_mounted_file(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {}}, api_key=KEY)
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    result = _run(["sync"], _env(tmp_path, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY_FILE=str(key_file)))
    assert result.returncode == 0, result.stderr
    missing = _run(["sync"], _env(tmp_path, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY_FILE=str(tmp_path / "nope")))
    assert missing.returncode == 2
    assert "cannot read the API key file" in missing.stderr


def test_watch_follows_the_api_and_stops_on_sigterm(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"a": {}}, api_key=KEY)
    env = _env(tmp_path, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY, DAGFLEET_SYNC_INTERVAL="0.3")
    proc = subprocess.Popen([DAGFLEET, "watch"], env=env, stderr=subprocess.PIPE, text=True)
    dags = tmp_path / "dags"
    try:
        _wait_for(lambda: (dags / "a-mydag.py").exists())
        api.write({"a": {}, "b": {}})
        _wait_for(lambda: (dags / "b-mydag.py").exists())
        api.write({"b": {}})
        _wait_for(lambda: not (dags / "a-mydag.py").exists())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "received SIGTERM, stopping" in err


def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_check_accepts_the_contract_and_rejects_the_rest(tmp_path: Path) -> None:
    good = _run(["check", "--", "scheduler"], _env(tmp_path, DAGFLEET_API_URL="http://api:8000"))
    assert good.returncode == 0, good.stderr
    assert "would sync" in good.stderr
    for component in AIRFLOW_COMPONENTS:
        assert _run(["check", "--", component], _env(tmp_path)).returncode == 0
    unknown = _run(["check", "--", "scheduler"], _env(tmp_path, DAGFLEET_API_URLL="http://typo"))
    assert unknown.returncode == 2
    assert "DAGFLEET_API_URLL is not a dagfleet setting" in unknown.stderr
    bad_value = _run(["check", "--", "scheduler"], _env(tmp_path, DAGFLEET_SYNC_INTERVAL="-1"))
    assert bad_value.returncode == 2
    assert "DAGFLEET_SYNC_INTERVAL" in bad_value.stderr
    bad_command = _run(["check", "--", "schedular"], _env(tmp_path))
    assert bad_command.returncode == 2
    assert "'schedular' is neither an Airflow subcommand" in bad_command.stderr


def test_check_rejects_a_missing_templates_folder_and_a_bad_default_template(tmp_path: Path) -> None:
    missing = _run(["check", "--", "scheduler"], _env(tmp_path, DAGFLEET_TEMPLATES=str(tmp_path / "nope")))
    assert missing.returncode == 2
    assert f"DAGFLEET_TEMPLATES: {tmp_path / 'nope'} is not a folder of templates" in missing.stderr
    bad_name = _run(["check", "--", "scheduler"], _env(tmp_path, DAGFLEET_DEFAULT_TEMPLATE="my-dag"))
    assert bad_name.returncode == 2
    assert "DAGFLEET_DEFAULT_TEMPLATE: expected a template name" in bad_name.stderr


@pytest.mark.parametrize(
    ("exec_program", "args", "expected"),
    [
        ("/entrypoint", ["scheduler"], ["/entrypoint", "scheduler"]),
        ("/entrypoint", ["bash", "-c", "x"], ["/entrypoint", "bash", "-c", "x"]),
        ("airflow", ["dag-processor"], ["airflow", "dag-processor"]),
        ("airflow", ["db", "migrate"], ["airflow", "db", "migrate"]),
        ("airflow", ["python", "-V"], ["python", "-V"]),
    ],
)
def test_components_go_to_the_official_entrypoint_or_airflow(
    exec_program: str, args: list[str], expected: list[str]
) -> None:
    assert resolve_command(Settings(exec_program=exec_program), args) == expected
