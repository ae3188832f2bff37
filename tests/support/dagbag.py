"""Import DAG files with Airflow's own ``DagBag``, in a subprocess with its own AIRFLOW_HOME and a timeout.

The subprocess first imports what the DAG processor pre-imports (the base DAG's top-level
``airflow.*`` imports), so each file's measured duration is its own parse, as in production.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.sandbox import Sandbox

SCRIPT = r"""
import json, sys, time
started = time.monotonic()
import airflow.providers.cncf.kubernetes.operators.pod  # what the DAG processor pre-imports
import airflow.sdk.definitions.decorators
from airflow.dag_processing.dagbag import DagBag
imported = time.monotonic()
files = json.loads(sys.argv[1])
bag = DagBag(dag_folder=sys.argv[2], collect_dags=False)
durations = {}
for path in files:
    began = time.monotonic()
    bag.process_file(path, only_if_updated=False)
    durations[path] = time.monotonic() - began
print("DAGBAG-RESULT " + json.dumps({
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "dags": {i: {"tags": sorted(d.tags), "description": d.description} for i, d in bag.dags.items()},
    "durations": durations,
    "import_seconds": imported - started,
}))
"""


@dataclass(frozen=True)
class Parsed:
    import_errors: dict[str, str]
    dag_ids: list[str]
    dags: dict[str, dict[str, Any]]  # dag_id -> {"tags", "description"}
    durations: dict[str, float]  # file -> seconds its import took
    import_seconds: float  # Airflow's own import, before any DAG file
    seconds: float  # the whole subprocess
    stdout: str
    stderr: str

    def error_for(self, path: Path) -> str | None:
        for key, text in self.import_errors.items():
            if key == str(path) or key.endswith("/" + path.name) or key == path.name:
                return text
        return None


def parse_in_subprocess(
    sandbox: Sandbox, files: Iterable[Path], *, env: dict[str, Any] | None = None, timeout: float = 180.0
) -> Parsed:
    """Import ``files`` with a DagBag; ``env`` adds to (``None`` removes from) the sandbox environment."""
    parser_root = sandbox.root / "parser"  # Airflow writes its home: keep it apart from the checked folders
    home = parser_root / "home"
    for folder in (home, parser_root / "airflow-home", parser_root / "tmp", parser_root / "empty"):
        folder.mkdir(parents=True, exist_ok=True)
    environment = sandbox.env(
        HOME=home,
        TMPDIR=parser_root / "tmp",
        AIRFLOW_HOME=parser_root / "airflow-home",
        AIRFLOW__CORE__DAGS_FOLDER=sandbox.dags,
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        **(env or {}),
    )
    paths = [str(p) for p in files]
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(paths), str(parser_root / "empty")],
        env=environment,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.monotonic() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("DAGBAG-RESULT ")]
    assert proc.returncode == 0 and lines, f"DagBag subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    data = json.loads(lines[-1].removeprefix("DAGBAG-RESULT "))
    return Parsed(
        data["import_errors"],
        data["dag_ids"],
        data["dags"],
        data["durations"],
        data["import_seconds"],
        seconds,
        proc.stdout,
        proc.stderr,
    )
