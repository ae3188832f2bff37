"""Issue 23: a catastrophic param pattern where Airflow itself validates params.

Airflow validates a ``Param``'s default when the DAG is parsed (dag-processor, task runner) and a
trigger's conf when the api-server creates the run (``params.deep_merge(conf).validate()``, both
with plain ``jsonschema.validate``). Each process runs in a subprocess of its own, as in
production: the parse with ``DagBag``; the api-server's trigger path on the serialized DAG, once
after loading plugins as the api-server's ``create_app`` does and once with nothing but the
deserialization (which loads Airflow's plugins, dagfleet's among them, by itself): dagfleet's
plugin registers the RE2 dialect, so both refuse the 50 KB value at once. (A process that never
imports dagfleet skips the pattern: ``entrypoint/test_schemas.py``.) Before #23 Airflow got a
plain ``pattern`` and the trigger check ran Python's backtracking ``re`` on 50 KB: the
subprocess timeout (the parse was already safe: dagfleet's loader checks the default first).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from support.dag import make_dags
from support.proc import run
from support.sandbox import Sandbox

pytestmark = pytest.mark.airflow

EVIL = "^(a+)+$"
VALUE = "a" * 50_000 + "!"

PARSE = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
serialized = {i: DagSerialization.to_dict(d) for i, d in bag.dags.items()}
errors = {k.rsplit("/", 1)[-1]: str(v)[-300:] for k, v in bag.import_errors.items()}
print(json.dumps({"errors": errors, "dags": sorted(bag.dags)}))
open(sys.argv[2], "w").write(json.dumps(serialized))
"""

TRIGGER = r"""
import json, sys
if sys.argv[3] == "plugins":
    from airflow import plugins_manager
    plugins_manager.get_fastapi_plugins()  # what the api-server's create_app does
from airflow.serialization.serialized_objects import DagSerialization
dag = DagSerialization.from_dict(json.load(open(sys.argv[1]))[sys.argv[2]])
try:
    dag.params.deep_merge({"p": "a" * 50_000 + "!"}).validate()  # SerializedDAG.create_dagrun's check
    print("accepted")
except Exception as err:
    print("refused", type(err).__name__, "dagfleet.fleet.schemas" in sys.modules)
"""


def _env(box: Sandbox, dags: Path) -> dict[str, str]:
    return box.env(DAGFLEET_DAGS_FOLDER=str(dags))


def test_a_catastrophic_param_pattern_is_linear_at_parse_and_at_trigger(
    tmp_path: Path, fault: Callable[..., None]
) -> None:
    fault("ReDoS param default at parse time (DagBag)")
    fault("ReDoS trigger conf in the api-server, plugin loaded")
    fault("ReDoS trigger conf in a process without dagfleet")
    box = Sandbox(tmp_path)
    dags = make_dags(
        tmp_path / "dags",
        {
            "redos_ok": {"params": {"p": {"type": "string", "pattern": EVIL, "default": "aaa"}}},
            # a record no sync would store (its default breaks the pattern): at parse time dagfleet's
            # loader refuses it with RE2 before Airflow's own Param check runs
            "redos_default": {"params": {"p": {"type": "string", "pattern": EVIL, "default": VALUE}}},
        },
    )
    serialized = tmp_path / "serialized.json"
    parsed = run([sys.executable, "-c", PARSE, dags, serialized], timeout=120, env=_env(box, dags), cwd=box.cwd)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    result = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert result["dags"] == ["redos_ok"], result
    assert list(result["errors"]) == ["redos_default-mydag.py"]
    assert "does not match" in result["errors"]["redos_default-mydag.py"]
    for mode in ("plugins", "deserialize only"):  # Airflow loads plugins when it deserializes a DAG
        trigger = run(
            [sys.executable, "-c", TRIGGER, serialized, "redos_ok", mode], timeout=120, env=_env(box, dags), cwd=box.cwd
        )
        answer = trigger.stdout.strip().splitlines()[-1:]
        assert answer == ["refused ParamValidationError True"], (mode, trigger.stdout, trigger.stderr[-3000:])
