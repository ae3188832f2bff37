"""The parse path reads each thing once (docs/architecture.md, "The parse path").

A generated DAG is executed as Airflow's parse does (its code compiled first, then run) in a fresh
interpreter that counts, with a Python audit hook, every ``open`` of the DAG file and of its stored
record, and, by wrapping the real ``Settings.from_env``, how often the settings are built. Under
the KubernetesExecutor the DAG's tasks carry the pod override built from that one read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagfleet.fleet.store import FleetStore
from support.dag import make_dags

pytestmark = pytest.mark.airflow

PARSE = r"""
import json, os, sys
from pathlib import Path

import airflow.sdk  # noqa: F401 - what a template imports, before counting starts
import dagfleet.authoring.workflow  # noqa: F401
import dagfleet.fleet.config  # noqa: F401
from dagfleet.fleet.settings import Settings

dag_file, record_file = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
code = compile(dag_file.read_bytes(), str(dag_file), "exec")  # Airflow reads the file to parse it
opens = {"dag": 0, "record": 0}
calls = {"from_env": 0}


def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, Path)):
        path = Path(os.fsdecode(args[0])).resolve()
        if path == dag_file:
            opens["dag"] += 1
        elif path == record_file:
            opens["record"] += 1


real_from_env = Settings.from_env.__func__


def counted(cls, *args, **kwargs):
    calls["from_env"] += 1
    return real_from_env(cls, *args, **kwargs)


Settings.from_env = classmethod(counted)
sys.addaudithook(audit)
namespace = {"__name__": "unusual_prefix_parse", "__file__": str(dag_file)}
exec(code, namespace)
dags = [v for v in namespace.values() if type(v).__name__ == "DAG"]
overrides = sum(1 for dag in dags for task in dag.tasks if (task.executor_config or {}).get("pod_override"))
print(json.dumps({**opens, **calls, "dags": len(dags), "tasks_with_override": overrides}))
"""


def parse_counting(folder: Path, workflow_id: str) -> dict[str, int]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")},
        "DAGFLEET_DAGS_FOLDER": str(folder),
        "AIRFLOW__CORE__EXECUTOR": "KubernetesExecutor",
    }
    dag_file = folder / f"{workflow_id}-mydag.py"
    record = FleetStore(folder).record_path(workflow_id)
    assert dag_file.is_file() and record.is_file()
    done = subprocess.run(
        [sys.executable, "-c", PARSE, str(dag_file), str(record)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_parse_reads_the_dag_file_and_its_record_once_and_builds_settings_once(tmp_path: Path) -> None:
    folder = make_dags(tmp_path / "dags", {"acme": {"tags": ["t"], "items": ["a", "b"]}})
    counts = parse_counting(folder, "acme")
    assert counts["dags"] == 1 and counts["tasks_with_override"] > 0, counts  # the override was built
    assert counts == {**counts, "dag": 1, "record": 1, "from_env": 1}, counts
