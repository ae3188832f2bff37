"""`dagfleet run` and the keys Airflow's processes in one container must share (dagfleet.service.airflowkeys).

Real `dagfleet run` processes exec a Python program that prints what it inherited, as Airflow would.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from dagfleet.service.airflowkeys import KEYS_FILE, SHARED, env_name, shared_env
from support.paths import REPO
from support.proc import run

DAGFLEET = str(Path(sys.executable).with_name("dagfleet"))
NAMES = sorted(env_name(section, key) for section, key in SHARED)
SHOW = f"import json, os; print(json.dumps({{k: os.environ.get(k) for k in {NAMES!r}}}))"


def _home(tmp_path: Path, cfg: str | None = "[dag_processor]\nrefresh_interval = 10\n") -> Path:
    """An Airflow home like the image's: an airflow.cfg that dagfleet wrote, without keys."""
    home = tmp_path / "airflow"
    home.mkdir()
    if cfg is not None:
        (home / "airflow.cfg").write_text(cfg)
    return home


def _run(home: Path, tmp_path: Path, **extra: str) -> tuple[dict[str, str | None], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW"))}
    env.update(AIRFLOW_HOME=str(home), DAGFLEET_STATIC_WORKFLOWS="a", DAGFLEET_DAGS_FOLDER=str(tmp_path / "dags"))
    env.update(extra)
    result = run([DAGFLEET, "run", "--", sys.executable, "-c", SHOW], timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), result.stderr


def test_every_process_gets_the_same_keys_made_once_per_airflow_home(tmp_path: Path) -> None:
    home = _home(tmp_path)
    first, log = _run(home, tmp_path)
    assert all(first[name] for name in NAMES), first
    assert len(set(first.values())) == len(NAMES)
    second, _ = _run(home, tmp_path)
    assert second == first  # a restarted container (same volume) keeps them: encrypted data stays readable
    kept = home / KEYS_FILE
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640  # group 0 reads it: arbitrary UIDs
    assert json.loads(kept.read_text()) == first
    assert not any(value in log for value in first.values() if value), "a key was logged"
    assert KEYS_FILE in log
    assert len(base64.urlsafe_b64decode(first["AIRFLOW__CORE__FERNET_KEY"] or "")) == 32  # a valid Fernet key


@pytest.mark.parametrize(
    "how",
    [
        {"AIRFLOW__API_AUTH__JWT_SECRET": "mine"},
        {"AIRFLOW__API_AUTH__JWT_SECRET_CMD": "cat /run/secrets/jwt"},  # what the Helm chart sets
        {"AIRFLOW__API_AUTH__JWT_SECRET_SECRET": "jwt"},
        {"AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH": "/keys/private.pem"},
        {"cfg": "[api_auth]\njwt_secret = mine\n"},
        {"cfg": "[api_auth]\njwt_secret_cmd = cat /run/secrets/jwt\n"},
    ],
    ids=["env", "env-cmd", "env-secret", "private-key", "cfg", "cfg-cmd"],
)
def test_a_key_the_user_sets_is_never_replaced(tmp_path: Path, how: dict[str, str]) -> None:
    cfg = how.pop("cfg", "[core]\nload_examples = False\n")
    seen, _ = _run(_home(tmp_path, cfg), tmp_path, **how)
    assert seen["AIRFLOW__API_AUTH__JWT_SECRET"] == how.get("AIRFLOW__API_AUTH__JWT_SECRET")
    assert seen["AIRFLOW__CORE__FERNET_KEY"]  # the others are still made


def test_the_helm_charts_own_keys_are_never_replaced(tmp_path: Path) -> None:
    """The chart sets every key from its Secret as `…_CMD` variables (one place: _helpers.tpl)."""
    helpers = (REPO / "chart" / "templates" / "_helpers.tpl").read_text()
    chart = dict.fromkeys(re.findall(r"- name: (AIRFLOW__\w+_CMD)\n", helpers), "cat /opt/dagfleet/secrets/x")
    assert {f"{name}_CMD" for name in NAMES} <= set(chart)
    home = _home(tmp_path)
    assert shared_env({**chart, "AIRFLOW_HOME": str(home)}) == {}
    assert shared_env({"AIRFLOW_HOME": str(home)}).keys() == set(NAMES)  # the same home without them


def test_without_an_airflow_cfg_airflow_makes_its_own(tmp_path: Path) -> None:
    """Airflow writes a complete airflow.cfg, keys included, when there is none (`make run`)."""
    home = _home(tmp_path, cfg=None)
    seen, _ = _run(home, tmp_path)
    assert seen == dict.fromkeys(NAMES)
    assert not (home / KEYS_FILE).exists()
