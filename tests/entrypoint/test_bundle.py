"""Issue #30: dagfleet.service.bundle.FleetBundle as Airflow's DagBundlesManager builds it from the shipped config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dagfleet.api.retry import retry_policy
from dagfleet.fleet import versions
from dagfleet.fleet.settings import Settings
from dagfleet.service import dagprocessor
from dagfleet.sync.apply import FleetSync

pytestmark = pytest.mark.airflow


def _sync(dags: Path, url: str) -> str:
    from dagfleet.api.client import ConfigClient

    settings = Settings(api_url=url, api_key_value="test-key-123", dags_folder=dags, retries=1)
    FleetSync(settings, ConfigClient.from_settings(settings, retrying=retry_policy(1, initial=0))).sync()
    return str(versions.current(dags))


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Airflow's own DagBundlesManager, configured as the chart, the image and `make run` configure it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    for name, value in dagprocessor.airflow_env().items():
        monkeypatch.setenv(name, value)
    from airflow import settings as airflow_settings

    monkeypatch.setattr(airflow_settings, "DAGS_FOLDER", str(tmp_path / "dags"))
    return DagBundlesManager()


def test_the_processor_follows_the_pointer_and_a_worker_gets_its_runs_version(
    manager: Any, config_api_factory: Any, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {"tags": ["one"]}})
    first = _sync(dags, api.url)
    processor = manager.get_bundle(dagprocessor.BUNDLE_NAME)
    assert processor.supports_versioning
    processor.initialize()
    assert processor.get_current_version().version == first
    assert processor.path == versions.version_path(dags, first)

    api.write({"alpha": {"tags": ["two"]}})
    second = _sync(dags, api.url)
    assert processor.get_current_version().version == first  # until Airflow refreshes the bundle
    processor.refresh()
    assert (processor.get_current_version().version, processor.path) == (second, versions.version_path(dags, second))

    worker = manager.get_bundle(dagprocessor.BUNDLE_NAME, version=first)
    worker.initialize()
    assert worker.path == versions.version_path(dags, first)
    assert (worker.path / "alpha-mydag.py").exists()


def test_a_version_that_is_gone_fails_on_one_line_naming_it(manager: Any, config_api_factory: Any) -> None:
    api = config_api_factory({"alpha": {}})
    dags = Path(manager.get_bundle(dagprocessor.BUNDLE_NAME).dags)
    _sync(dags, api.url)
    gone = manager.get_bundle(dagprocessor.BUNDLE_NAME, version="f" * 20)
    gone.wait_seconds = 0
    with pytest.raises(versions.VersionGoneError) as caught:
        gone.initialize()
    assert str(caught.value) == (
        f"version {'f' * 20} of the dagfleet bundle is no longer kept (kept 48 h after it stops being current): "
        "clear the run to re-run it on the current version"
    )


def test_the_plain_folder_listing_never_sees_a_snapshot(config_api_factory: Any, tmp_path: Path) -> None:
    """Airflow's own file discovery over the live folder (LocalDagBundle): the snapshots are ignored."""
    from airflow.utils.file import list_py_file_paths

    dags = tmp_path / "dags"
    api = config_api_factory({"alpha": {"tags": ["one"]}})
    _sync(dags, api.url)
    api.write({"alpha": {"tags": ["two"]}})
    _sync(dags, api.url)
    assert len(versions.kept(dags)) == 2
    assert [Path(p).name for p in list_py_file_paths(dags)] == ["alpha-mydag.py"]
    assert [Path(p).relative_to(dags) for p in list_py_file_paths(dags)] == [Path("alpha-mydag.py")]


def test_a_processor_started_before_the_first_sync_sees_the_version_only_through_refresh(
    manager: Any, config_api_factory: Any
) -> None:
    """Airflow compares get_current_version() before and after refresh(): reading the pointer
    outside refresh() would make the first version look unchanged, and the folder never listed."""
    processor = manager.get_bundle(dagprocessor.BUNDLE_NAME)
    processor.initialize()
    assert processor.get_current_version() is None
    assert list(processor.path.glob("*.py")) == []
    api = config_api_factory({"alpha": {}})
    version = _sync(Path(processor.dags), api.url)
    assert processor.get_current_version() is None  # before Airflow's refresh
    processor.refresh()
    assert processor.get_current_version().version == version
    assert [p.name for p in processor.path.glob("*.py")] == ["alpha-mydag.py"]
