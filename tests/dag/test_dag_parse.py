"""Generated DAGs parse (DagBag, in this process): zero import errors, structure follows the config,
bad configs are isolated import errors, and a dead config API does not slow parsing down."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dagfleet.authoring.cache import DiskCache
from dagfleet.fleet.config import validate_config
from dagfleet.fleet.store import FleetStore
from support.dag import BASE_DAG, EXAMPLES, example_workflows, make_dags, parse_dags
from support.net import SilentServer, dead_url

pytestmark = pytest.mark.airflow

CORE_TASKS = {"read_context", "plan_items", "process_item", "process_item_kwargs", "summarize"}
BAD_SPEC = {"deploy_type": "env", "deploy_target": "A", "secret": "Bad_Name", "key": "k"}
BAD_SECRET = {"pod": {"image": "busybox", "secrets": [BAD_SPEC]}}


def _file_duration(bag: Any, file_name: str) -> float:
    stat = next(s for s in bag.dagbag_stats if s.file.endswith(file_name))
    return stat.duration.total_seconds()


def test_base_dag_is_short_and_names_its_heavy_imports() -> None:
    source = BASE_DAG.read_text()
    # Written only against the public API: no dagfleet internals.
    dagfleet_imports = [line for line in source.splitlines() if re.match(r"(from|import) dagfleet\b", line)]
    assert dagfleet_imports and all(line.startswith("from dagfleet import ") for line in dagfleet_imports)
    # The DAG processor pre-imports only top-level `airflow.*` imports found in the file itself.
    assert "\nimport airflow.providers.cncf.kubernetes.operators.pod" in source
    assert "\nimport airflow.sdk.definitions.decorators" in source
    assert "\nfrom airflow.sdk import DAG" in source
    assert "workflow(__file__)" in source


def test_examples_parse_with_zero_import_errors(examples: Any) -> None:
    assert examples.bag.import_errors == {}
    assert set(examples.bag.dag_ids) == set(examples.configs)
    assert len(examples.configs) >= 3
    with_pods = {wid for wid, config in examples.configs.items() if config.get("pod")}
    assert with_pods and with_pods != set(examples.configs)  # some with pods, some pod-free


@pytest.mark.parametrize("workflow_id", sorted(example_workflows("demo")))
def test_structure_matches_the_config(examples: Any, workflow_id: str) -> None:
    from airflow.sdk.definitions._internal.expandinput import DictOfListsExpandInput, ListOfDictsExpandInput
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.sdk.definitions.xcom_arg import MapXComArg

    dag = examples.bag.dags[workflow_id]
    config = validate_config(workflow_id, examples.configs[workflow_id])
    expected = set(CORE_TASKS)
    if config.pod is not None:
        expected.add("pod_static")
        if config.pod.per_item:
            expected.add("pod_per_item")
    assert set(dag.task_ids) == expected

    assert dag.dag_id == workflow_id
    assert dag.schedule == config.schedule
    assert dag.start_date == config.start_date
    assert dag.catchup == config.catchup
    if config.max_active_runs is not None:
        assert dag.max_active_runs == config.max_active_runs
    assert set(dag.tags) == {"dagfleet", *config.tags}
    assert dag.default_args["retries"] == config.default_args.retries
    assert dag.default_args["retry_delay"] == config.default_args.retry_delay
    assert dag.params.dump() == {name: spec.default for name, spec in config.params.items()}

    # The fan-out is not in the DAG: both mapped stages expand over plan_items' output at run time.
    process_item = dag.get_task("process_item")
    assert isinstance(process_item, MappedOperator)
    expand_input = getattr(process_item, process_item._expand_input_attr)  # TaskFlow: op_kwargs
    assert isinstance(expand_input, DictOfListsExpandInput)
    item_arg = expand_input.value["item"]
    assert isinstance(item_arg, MapXComArg)
    assert item_arg.arg.operator.task_id == "plan_items"
    kwargs_stage = dag.get_task("process_item_kwargs")
    assert isinstance(kwargs_stage, MappedOperator)
    assert isinstance(getattr(kwargs_stage, kwargs_stage._expand_input_attr), ListOfDictsExpandInput)
    assert dag.get_task("summarize").upstream_task_ids == {"read_context", "process_item", "process_item_kwargs"}
    assert dag.get_task("plan_items").upstream_task_ids == {"read_context"}

    if "pod_per_item" in expected:
        pods = dag.get_task("pod_per_item")
        assert isinstance(pods, MappedOperator)
        assert isinstance(pods.expand_input, ListOfDictsExpandInput)
    if "pod_static" in expected:
        from dagfleet.authoring.operator import to_secrets

        assert config.pod is not None
        assert dag.get_task("pod_static").secrets == to_secrets(config.pod.secrets)


def test_generated_dags_serialize(examples: Any) -> None:
    """What the DAG processor stores for the scheduler: every example round-trips."""
    from airflow.serialization.serialized_objects import DagSerialization

    for workflow_id, dag in examples.bag.dags.items():
        restored = DagSerialization.from_dict(DagSerialization.to_dict(dag))
        assert set(restored.task_ids) == set(dag.task_ids), workflow_id


def test_a_bad_config_is_an_import_error_of_that_dag_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = {"good": {"tags": ["ok"]}, "broken": BAD_SECRET, "bad-schedule": {"schedule": "@sometimes"}}
    folder = make_dags(tmp_path / "dags", configs)
    bag = parse_dags(folder, monkeypatch)
    assert set(bag.dag_ids) == {"good"}
    errors = {Path(path).name: text for path, text in bag.import_errors.items()}
    assert set(errors) == {"broken-mydag.py", "bad-schedule-mydag.py"}
    last_line = errors["broken-mydag.py"].strip().splitlines()[-1]
    assert last_line == (
        "dagfleet.fleet.errors.WorkflowConfigError: workflow 'broken': config field 'pod.secrets[0].secret': "
        "'Bad_Name' is not a valid Kubernetes secret name (lower-case letters, digits, '-' and '.', at most 253); "
        "fix it in the config API"
    )
    assert (
        "workflow 'bad-schedule': config field 'schedule': '@sometimes' is not a preset"
        in errors["bad-schedule-mydag.py"]
    )


def test_the_config_next_to_the_dag_file_is_found_without_any_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    folder = make_dags(tmp_path / "elsewhere", {"beside": {"tags": ["beside"]}})
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "not-here"))
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    assert "beside" in bag.dags["beside"].tags


def test_a_file_not_named_by_sync_is_a_readable_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "copied_by_hand.py").write_bytes(BASE_DAG.read_bytes())
    bag = parse_dags(folder, monkeypatch)
    (text,) = bag.import_errors.values()
    assert "is not named '<workflow_id>-mydag.py'" in text


def test_api_dead_with_cached_config_still_parses_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_api: SilentServer
) -> None:
    """No stored config, a hung config API, a stale cache entry: the DAG parses from the cache."""
    folder = make_dags(tmp_path / "dags", {"cached": None, "refused": None})
    disk = DiskCache(FleetStore(folder).cache_dir)
    disk.put("cached", {"tags": ["from-cache"], "items": ["x"]}, now=time.time() - 3600)
    disk.put("refused", {"tags": ["from-cache"]}, now=time.time() - 3600)
    env = {"DAGFLEET_API_URL": silent_api.url, "DAGFLEET_PARSE_TIMEOUT": "1", "DAGFLEET_CACHE_TTL": "60"}
    bag = parse_dags(folder, monkeypatch, **env)
    assert bag.import_errors == {}
    assert "from-cache" in bag.dags["cached"].tags
    assert _file_duration(bag, "cached-mydag.py") < 2.5  # 1 s parse timeout + the parse itself

    # A refused connection costs nothing at all.
    monkeypatch.setenv("DAGFLEET_API_URL", dead_url())
    bag = parse_dags(folder, monkeypatch)
    assert bag.import_errors == {}
    assert _file_duration(bag, "refused-mydag.py") < 1.5


def test_api_dead_and_nothing_cached_is_a_clear_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, silent_api: SilentServer
) -> None:
    folder = make_dags(tmp_path / "dags", {"orphan": None, "fine": {}})
    bag = parse_dags(folder, monkeypatch, DAGFLEET_API_URL=silent_api.url, DAGFLEET_PARSE_TIMEOUT="1")
    assert set(bag.dag_ids) == {"fine"}
    (text,) = bag.import_errors.values()
    assert "workflow 'orphan': no config to build the DAG from" in text
    assert "did not answer" in text
    assert _file_duration(bag, "orphan-mydag.py") < 2.5


def test_dagfleet_sync_output_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config_api_factory: Any) -> None:
    """The real path: `dagfleet sync` against the reference config API serving the examples."""
    import yaml

    workflows = {**yaml.safe_load(EXAMPLES.read_text())["workflows"], "broken": BAD_SECRET}
    api = config_api_factory(workflows)
    folder = tmp_path / "dags"
    env = {
        **os.environ,
        "DAGFLEET_API_URL": api.url,
        "DAGFLEET_API_KEY": api.api_key,
        "DAGFLEET_DAGS_FOLDER": str(folder),
    }
    result = subprocess.run(
        [sys.executable, "-m", "dagfleet.service.cli", "sync"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "workflow 'broken': config field 'pod.secrets[0].secret'" in result.stderr
    stored = FleetStore(folder).record("acme_sync")
    assert stored is not None and stored.config == workflows["acme_sync"]

    bag = parse_dags(folder, monkeypatch)
    assert set(bag.dag_ids) == set(workflows) - {"broken"}
    assert [Path(p).name for p in bag.import_errors] == ["broken-mydag.py"]


def test_each_generated_file_counts_exactly_one_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's file statistics (`airflow dags report`): one DAG per generated file, as for a
    hand-written one. ``fileloc`` set after the ``with DAG`` block changed the DAG's hash, so the
    DAG registered on exit and the module's ``dag`` did not merge: ``dag_num`` was 2."""
    configs = {"plain": {}, "with_pod": example_workflows()["acme_sync"]}
    folder = make_dags(tmp_path / "dags", configs)
    (folder / "handwritten.py").write_text(
        "from airflow.sdk import DAG\n\nwith DAG(dag_id='handwritten', schedule=None) as dag:\n    pass\n"
    )
    bag = parse_dags(folder, monkeypatch)
    assert bag.import_errors == {}
    counts = {Path(stat.file).name: stat.dag_num for stat in bag.dagbag_stats}
    assert counts == {"handwritten.py": 1, "plain-mydag.py": 1, "with_pod-mydag.py": 1}
    assert bag.dags["plain"].fileloc == str(folder / "plain-mydag.py")
