"""Issue #30: dagfleet.fleet.versions, the fleet's content-addressed version snapshots, through real syncs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dagfleet.api.retry import retry_policy
from dagfleet.authoring.loader import parse_settings
from dagfleet.fleet import versions
from dagfleet.fleet.settings import Settings
from dagfleet.fleet.store import FleetStore
from dagfleet.sync.apply import FleetSync
from support.sandbox import assert_tidy


def _sync(dags: Path, url: str, **kw: Any) -> None:
    from dagfleet.api.client import ConfigClient

    settings = Settings(api_url=url, api_key_value="test-key-123", dags_folder=dags, retries=1, **kw)
    FleetSync(settings, ConfigClient.from_settings(settings, retrying=retry_policy(1, initial=0))).sync()


def _old_then_new(config_api_factory: Any, dags: Path) -> str:
    """Sync alpha with tags ["old"], then ["new"]; returns the first version."""
    api = config_api_factory({"alpha": {"tags": ["old"]}})
    _sync(dags, api.url)
    old = str(versions.current(dags))
    api.write({"alpha": {"tags": ["new"]}})
    _sync(dags, api.url)
    return old


def _snapshot_config(dags: Path, version: str, workflow_id: str) -> dict[str, Any]:
    record = FleetStore(versions.version_path(dags, version)).record(workflow_id)
    assert record is not None
    return record.config


def test_each_change_publishes_a_version_and_old_versions_keep_their_content(
    config_api_factory: Any, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {"spec": {}, "tags": ["one"]}, "beta": {}})
    _sync(dags, api.url)
    first = versions.current(dags)
    assert first is not None
    old_dag = (versions.version_path(dags, first) / "alpha-mydag.py").read_bytes()

    api.write({"alpha": {"tags": ["two"]}, "beta": {}})
    _sync(dags, api.url)
    second = versions.current(dags)
    assert second not in (None, first)
    assert _snapshot_config(dags, first, "alpha")["tags"] == ["one"]  # the old version is immutable
    assert _snapshot_config(dags, second, "alpha")["tags"] == ["two"]  # type: ignore[arg-type]
    assert (versions.version_path(dags, first) / "alpha-mydag.py").read_bytes() == old_dag
    assert versions.kept(dags) == [second, first]
    # hard links: the unchanged workflow's file is one inode in the live folder and both versions
    links = (dags / "beta-mydag.py", versions.version_path(dags, first) / "beta-mydag.py")
    inodes = {path.stat().st_ino for path in links}
    assert len(inodes) == 1
    assert_tidy(dags)


def test_an_unchanged_sync_publishes_nothing(config_api_factory: Any, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {}})
    _sync(dags, api.url)
    pointer = versions.versions_dir(dags) / versions.POINTER
    before = pointer.stat().st_mtime_ns
    _sync(dags, api.url)
    assert pointer.stat().st_mtime_ns == before
    assert len(versions.kept(dags)) == 1


def test_the_version_is_the_content_so_every_pod_that_syncs_it_agrees(config_api_factory: Any, tmp_path: Path) -> None:
    api = config_api_factory({"alpha": {"tags": ["x"]}, "beta": {}})
    _sync(tmp_path / "processor", api.url)
    _sync(tmp_path / "worker", api.url)
    assert versions.current(tmp_path / "processor") == versions.current(tmp_path / "worker")


def test_a_removed_workflow_stays_unscheduled_for_its_grace_then_leaves(
    config_api_factory: Any, tmp_path: Path
) -> None:
    """Airflow never schedules the tasks of a stale DAG's runs: a removed workflow's DAG stays in
    new versions with its schedule off for DAGFLEET_REMOVED_GRACE, then a sync drops it."""
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {}, "beta": {"schedule": "@daily"}})
    _sync(dags, api.url)
    first = str(versions.current(dags))
    api.write({"alpha": {}})
    _sync(dags, api.url, removed_grace=3600)
    second = str(versions.current(dags))
    assert second != first
    assert not (dags / "beta-mydag.py").exists()  # gone from the live folder at once
    kept_copy = versions.version_path(dags, second) / "beta-mydag.py"
    original = versions.version_path(dags, first) / "beta-mydag.py"
    assert kept_copy.read_bytes() == original.read_bytes() + versions.REMOVED_MARK  # new bytes: Airflow re-parses
    assert kept_copy.stat().st_ino != original.stat().st_ino
    assert _snapshot_config(dags, second, "beta") == {"schedule": None}
    assert _snapshot_config(dags, first, "beta") == {"schedule": "@daily"}
    _sync(dags, api.url, removed_grace=3600)
    assert versions.current(dags) == second  # nothing due: nothing published
    assert versions.removal_due(dags, 3600) is False
    assert versions.removal_due(dags, 0.001) is True
    _sync(dags, api.url, removed_grace=0.001)
    third = str(versions.current(dags))
    assert third not in (first, second)
    assert not (versions.version_path(dags, third) / "beta-mydag.py").exists()
    assert (versions.version_path(dags, third) / "alpha-mydag.py").exists()


def test_prune_keeps_the_current_version_and_those_retired_within_the_keep_time(
    config_api_factory: Any, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {"tags": ["1"]}})
    published = []
    for tag in ("1", "2", "3"):
        api.write({"alpha": {"tags": [tag]}})
        _sync(dags, api.url)
        published.append(versions.current(dags))
    history = versions.versions_dir(dags) / versions.HISTORY
    rows = [{"version": v, "since": 1000.0 * (i + 1)} for i, v in enumerate(published)]
    history.write_text(json.dumps({"history": rows}))  # became current at 1000, 2000, 3000 s
    assert versions.retired_at(dags) == {published[0]: 2000.0, published[1]: 3000.0}
    stray = versions.versions_dir(dags) / ("0" * 20)
    stray.mkdir()  # a snapshot no history knows (a crashed sync's)
    half_built = versions.versions_dir(dags) / ".build-1-2"
    (half_built / "x").mkdir(parents=True)
    removed = versions.prune(dags, keep_hours=1.0, now=2000.0 + 3601)
    assert sorted(removed) == sorted([published[0], stray.name])
    assert not half_built.exists()
    assert versions.kept(dags) == [published[2], published[1]]
    assert versions.prune(dags, keep_hours=1.0, now=3000.0 + 3600) == []
    assert versions.prune(dags, keep_hours=1.0, now=3000.0 + 3601) == [published[1]]
    assert versions.kept(dags) == [published[2]]  # the current one stays, however old


def test_a_dag_in_a_snapshot_reads_that_snapshots_record_whatever_the_environment_says(
    config_api_factory: Any, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    old = _old_then_new(config_api_factory, dags)
    snapshot_file = versions.version_path(dags, old) / "alpha-mydag.py"  # type: ignore[arg-type]
    settings = parse_settings(snapshot_file, {"DAGFLEET_DAGS_FOLDER": str(dags)})
    assert settings.dags_folder == snapshot_file.parent
    assert settings.store.record("alpha").config == {"tags": ["old"]}  # type: ignore[union-attr]
    live = parse_settings(dags / "alpha-mydag.py", {"DAGFLEET_DAGS_FOLDER": str(dags)})
    assert live.dags_folder == dags


def test_record_at_and_a_gone_version_name_the_version(config_api_factory: Any, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {"tags": ["a"]}})
    _sync(dags, api.url)
    assert versions.record_at(dags, "alpha").config == {"tags": ["a"]}  # type: ignore[union-attr]
    with pytest.raises(versions.VersionGoneError, match="version 0123456789abcdef0123 of the dagfleet bundle is no"):
        versions.record_at(dags, "alpha", "0123456789abcdef0123")
    with pytest.raises(versions.VersionGoneError, match="not a version"):
        versions.record_at(dags, "alpha", "../../etc")


def test_snapshots_are_hidden_from_a_plain_folder_listing(config_api_factory: Any, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {}})
    _sync(dags, api.url)
    ignore = versions.versions_dir(dags) / versions.IGNORE_FILE
    assert ignore.read_text() == "*\n"
    history = json.loads((versions.versions_dir(dags) / versions.HISTORY).read_text())["history"]
    assert [row["version"] for row in history] == [versions.current(dags)]


def test_dagfleet_show_prints_the_config_a_version_had(
    config_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagfleet.service.cli import main

    dags = tmp_path / "dags"
    old = _old_then_new(config_api_factory, dags)
    monkeypatch.setenv("DAGFLEET_DAGS_FOLDER", str(dags))
    assert main(["show", "alpha", "--version", str(old)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["version"], shown["current"], shown["config"]) == (old, False, {"tags": ["old"]})
    assert main(["show", "alpha"]) == 0
    assert json.loads(capsys.readouterr().out)["config"] == {"tags": ["new"]}
    assert main(["show", "alpha", "--version", "0" * 20]) == 1
    assert main(["show", "nobody"]) == 1
    assert main(["status"]) in (0, 1)
    assert f"fleet version: {versions.current(dags)} (2 kept on disk" in capsys.readouterr().out


def test_a_task_pod_writes_the_runs_version_from_its_pod_override(config_api_factory: Any, tmp_path: Path) -> None:
    """KubernetesExecutor: the pod has an empty dags folder; the override's DAG and record become the
    snapshot of the version named in the workload, where the bundle looks."""
    import base64

    from dagfleet.service import taskpod

    dags = tmp_path / "processor"
    api = config_api_factory({"alpha": {"tags": ["x"]}})
    _sync(dags, api.url)
    version = str(versions.current(dags))
    store = FleetStore(dags)
    record = store.record("alpha")
    assert record is not None
    payload = {"workflow_id": "alpha", "record": record.to_json(),
               "dag": base64.b64encode(store.dag_path("alpha").read_bytes()).decode()}  # fmt: skip
    workload = {"bundle_info": {"name": "dagfleet", "version": version}}
    args = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", json.dumps(workload)]
    pod = Settings(dags_folder=tmp_path / "pod")
    assert taskpod.prepare(pod, {taskpod.ENV_VAR: json.dumps(payload)}, args) == "pod-override"
    snapshot = versions.version_path(pod.dags_folder, version)
    assert (snapshot / "alpha-mydag.py").read_bytes() == store.dag_path("alpha").read_bytes()
    assert FleetStore(snapshot).record("alpha") == record
    assert taskpod.bundle_version(["--json-string", json.dumps({"bundle_info": {"version": "../x"}})]) is None


def test_each_workflow_keeps_the_version_that_first_held_its_current_dag_file(
    config_api_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workflow's version (status, Fleet page) is the one a run created now pins: Airflow
    re-parses only a changed file, so an unchanged workflow stays on the version that first held it."""
    from dagfleet.service.cli import main
    from dagfleet.sync import fleetstatus

    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {"tags": ["one"]}, "beta": {}, "gamma": {"schedule": "@daily"}})
    _sync(dags, api.url)
    first = versions.current(dags)
    assert versions.workflow_versions(dags) == {"alpha": first, "beta": first, "gamma": first}

    api.write({"alpha": {"tags": ["two"]}, "beta": {}, "gamma": {"schedule": "@daily"}})
    _sync(dags, api.url)
    second = versions.current(dags)
    assert versions.workflow_versions(dags) == {"alpha": second, "beta": first, "gamma": first}

    api.write({"alpha": {"tags": ["one"]}, "beta": {}})  # alpha back to its first config; gamma removed
    _sync(dags, api.url, removed_grace=3600)
    third = versions.current(dags)
    assert len({first, second, third}) == 3
    # alpha's content is its first one again, but a run now pins the version that brought it back
    assert versions.workflow_versions(dags) == {"alpha": third, "beta": first, "gamma": third}

    status = fleetstatus.load(Settings(dags_folder=dags))
    assert status.fleet_version == third
    assert {w.workflow_id: w.version for w in status.workflows} == {"alpha": third, "beta": first, "gamma": third}
    assert fleetstatus.from_json(status.to_json()) == status  # what a watch's /status.json carries
    monkeypatch.setenv("DAGFLEET_DAGS_FOLDER", str(dags))
    assert main(["show", "beta", "--version", str(first)]) == 0  # the version status names is one show takes
    assert json.loads(capsys.readouterr().out)["config"] == {}
    assert main(["status"]) in (0, 1)
    table = capsys.readouterr().out.splitlines()
    header = next(line for line in table if line.startswith("WORKFLOW"))
    assert header.split()[5] == "VERSION"
    beta = next(line for line in table if line.startswith("beta "))
    assert beta.split()[-2:] == [first, "-"]  # VERSION, then PROBLEM


def test_a_version_costs_its_directory_entries_only(config_api_factory: Any, tmp_path: Path) -> None:
    """docs/parsing.md's disk cost: a snapshot is hard links (no file data of its own) in two
    folders; their size is the directory entries, about 2 x 40 bytes per workflow on ext4."""
    n = 400
    dags = tmp_path / "dags"
    api = config_api_factory({f"wf{i:05d}": {} for i in range(n)})
    _sync(dags, api.url)
    snapshot = versions.version_path(dags, str(versions.current(dags)))
    files = [p for p in snapshot.rglob("*") if p.is_file()]
    assert len(files) == 2 * n  # each workflow's DAG file and record
    assert all(p.stat().st_nlink >= 2 for p in files)  # shared with the live folder: no data of its own
    folders = [snapshot, *(p for p in snapshot.rglob("*") if p.is_dir())]
    allocated = sum(p.stat().st_blocks * 512 for p in folders)
    print(f"version of {n} workflows: {allocated} bytes of directories ({allocated / n:.0f} per workflow)")
    assert allocated <= n * 2 * 64 + len(folders) * 4096  # the derivation's ~80 B per workflow, with slack
