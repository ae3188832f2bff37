"""Run ``dagfleet`` as a user does, in a sandbox that proves it writes nowhere but the dags folder.

``Sandbox(root)`` makes fresh, empty ``cwd``, ``HOME``, ``TMPDIR`` and ``AIRFLOW_HOME`` folders
next to the dags folder; every process it starts gets exactly those (and a minimal environment,
so nothing leaks in from the test runner). ``assert_nothing_written_outside()`` checks they are
still empty. ``snapshot()`` hashes every file of a dags folder so a test can prove that a failing
sync kept every previously generated DAG byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagfleet.fleet import store as fleet_store
from dagfleet.fleet.store import SUFFIX, FleetStore

VENV_BIN = Path(sys.executable).parent
DAGFLEET = str(VENV_BIN / "dagfleet")
# Passed on from the test's own environment when set: `make mutation` runs the mutant in every
# `dagfleet` a test starts (mutmut's copy on PYTHONPATH, the mutant's name) and records which test
# ran which line (scripts/mutation_contexts.py).
PASSED_ON = ("PYTHONPATH", "MUTANT_UNDER_TEST", "COVERAGE_PROCESS_START", "MUTATION_CONTEXT")
# What `.dagfleet/` may hold (dagfleet.fleet.store owns the layout).
STATE_ENTRIES = fleet_store.ENTRIES
# The parts of `.dagfleet/` a failing sync may change (bookkeeping, not DAGs or records; status.json
# records every sync's outcome, failing ones included).
MUTABLE_STATE = frozenset(
    str(Path(fleet_store.STATE_DIR) / name) for name in ("state.json", "manifest.json", "lock", "status.json")
)


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def lines(self, level: str) -> list[str]:
        """The log lines of one level (``ERROR``, ``WARNING``, ``INFO``), without the time stamp."""
        marker = f" dagfleet {level} "
        return [line.split(marker, 1)[1] for line in self.stderr.splitlines() if marker in line]

    @property
    def errors(self) -> list[str]:
        return self.lines("ERROR")

    @property
    def warnings(self) -> list[str]:
        return self.lines("WARNING")

    def explain(self) -> str:
        return (
            f"$ dagfleet {' '.join(self.args)} -> {self.returncode} in {self.seconds:.1f}s\n{self.stderr}{self.stdout}"
        )


class Sandbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.dags = root / "dags"
        self.cwd = root / "cwd"
        self.home = root / "home"
        self.tmp = root / "tmp"
        self.airflow_home = root / "airflow-home"
        for folder in (self.cwd, self.home, self.tmp, self.airflow_home):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def outside(self) -> tuple[Path, ...]:
        return (self.cwd, self.home, self.tmp, self.airflow_home)

    def env(self, **overrides: str | float | int | None) -> dict[str, str]:
        """A minimal environment: the sandbox folders, fast timeouts, one try; ``None`` unsets."""
        env = {
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LANG": "C.UTF-8",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONDONTWRITEBYTECODE": "1",
            "DAGFLEET_DAGS_FOLDER": str(self.dags),
            "DAGFLEET_RETRIES": "1",
            "DAGFLEET_CONNECT_TIMEOUT": "1",
            "DAGFLEET_READ_TIMEOUT": "2",
        }
        env.update({key: os.environ[key] for key in PASSED_ON if key in os.environ})
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)
        return env

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60.0, **overrides: Any) -> Result:
        """``dagfleet ARGS`` to completion, from the sandbox's ``cwd``."""
        started = time.monotonic()
        proc = subprocess.run(
            [DAGFLEET, *args],
            env=env or self.env(**overrides),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)

    def popen(self, *args: str, env: dict[str, str] | None = None, **overrides: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [DAGFLEET, *args],
            env=env or self.env(**overrides),
            cwd=self.cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def written_outside(self) -> list[str]:
        return sorted(str(p) for folder in self.outside for p in folder.rglob("*"))

    def assert_nothing_written_outside(self) -> None:
        stray = self.written_outside()
        assert stray == [], f"dagfleet wrote outside the dags folder: {stray}"


def snapshot(dags: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``dags`` (empty when it does not exist)."""
    if not dags.exists():
        return {}
    return {
        str(p.relative_to(dags)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(dags.rglob("*"))
        if p.is_file()
    }


def assert_kept(before: dict[str, str], after: dict[str, str]) -> None:
    """Every DAG file and stored config of ``before`` is still there, byte for byte, and nothing new
    appeared outside ``.dagfleet/`` bookkeeping."""
    lost = {p: h for p, h in before.items() if p not in MUTABLE_STATE and after.get(p) != h}
    assert lost == {}, f"files lost or changed by a failing sync: {sorted(lost)}"
    new = sorted(p for p in set(after) - set(before) if p not in MUTABLE_STATE)
    assert new == [], f"files created by a failing sync: {new}"


def assert_tidy(dags: Path, *, allow_temp: bool = False) -> None:
    """The dags folder holds generated DAGs and ``.dagfleet/`` only; ``.dagfleet/`` only its parts."""
    if not dags.exists():
        return
    top = sorted(p.name for p in dags.iterdir())
    foreign = [n for n in top if n != ".dagfleet" and not n.endswith(SUFFIX)]
    assert foreign == [], f"foreign files in the dags folder: {foreign}"
    state = dags / ".dagfleet"
    if state.exists():
        unknown = sorted(p.name for p in state.iterdir() if p.name not in STATE_ENTRIES)
        assert unknown == [], f"unexpected entries in .dagfleet/: {unknown}"
        if not allow_temp and (state / "tmp").exists():
            leftovers = sorted(p.name for p in (state / "tmp").iterdir())
            assert leftovers == [], f"temp files left behind by a sync that finished: {leftovers}"
        records = FleetStore(dags).records
        if records.exists():
            odd = sorted(p.name for p in records.iterdir() if not p.name.endswith(".json") or not p.is_file())
            assert odd == [], f"unexpected entries in .dagfleet/records/: {odd}"


def manifest(dags: Path) -> dict[str, str]:
    data = json.loads(FleetStore(dags).manifest_path.read_text())
    return dict(data["files"])


def record_key(dags: Path, workflow_id: str) -> str:
    """The snapshot key (relative path) of a workflow's stored record."""
    return str(FleetStore(dags).record_path(workflow_id).relative_to(dags))


def stored_config(dags: Path, workflow_id: str) -> dict[str, Any] | None:
    """The config ``dagfleet sync`` stored for a workflow (its last known good), or None."""
    record = FleetStore(dags).record(workflow_id)
    return None if record is None else record.config


def template_body(dag_file: bytes) -> bytes:
    """A generated DAG file without its trailer line: the template's bytes."""
    body, sep, _ = dag_file.rpartition(fleet_store.TRAILER_PREFIX)
    return body if sep else dag_file


def dag_files(dags: Path) -> list[str]:
    return sorted(p.name for p in dags.glob("*" + SUFFIX)) if dags.exists() else []
