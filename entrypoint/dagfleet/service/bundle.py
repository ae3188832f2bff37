"""The fleet as a versioned Airflow DAG bundle (issue #30; docs/parsing.md, "The dagfleet bundle").

``[dag_processor] dag_bundle_config_list`` names ``dagfleet.service.bundle.FleetBundle`` (dagfleet.service.dagprocessor
ships it). The dag-processor uses it without a version: ``refresh()`` reads the current-version
pointer that sync writes, and ``path`` is that version's snapshot, so the DAGs it parses always
match the version it records; with the version unchanged Airflow skips the folder listing. A
worker gets the run's version: ``path`` is that snapshot, and a version that is no longer kept
fails the task on one line naming it (never a silent run of another version).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from airflow.dag_processing.bundles.base import BaseDagBundle, BundleVersion

from dagfleet.fleet import shards, versions
from dagfleet.fleet.settings import read_setting


class FleetBundle(BaseDagBundle):
    """The generated DAGs of one dags folder, one version per published snapshot.

    :param path: the dags folder dagfleet syncs (default: Airflow's ``[core] dags_folder``)
    :param keep_hours: how long sync keeps a version (stated in the task failure of a gone version;
        default: ``DAGFLEET_VERSION_KEEP_HOURS``)
    :param wait_seconds: how long a worker waits for its own sync to publish the run's version
    :param shard: serve shard ``k`` of a sharded fleet (bundle ``dagfleet-<k>``, its own version
        tree, ``DAGFLEET_SHARDS`` > 1); None (the default): the whole, unsharded fleet
    """

    supports_versioning = True

    def __init__(
        self,
        *,
        path: str | None = None,
        keep_hours: float | None = None,
        wait_seconds: float = 120.0,
        shard: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.wait_seconds = wait_seconds
        self.tree = shards.bundle_name(shard)  # whose snapshots ``path`` serves
        if path is None:
            from airflow import settings

            path = settings.DAGS_FOLDER
        self.dags = Path(path)
        self.keep_hours = (
            keep_hours if keep_hours is not None else read_setting(os.environ, "DAGFLEET_VERSION_KEEP_HOURS")
        )
        self._current: str | None = None

    def initialize(self) -> None:
        if self.version is not None:
            self._wait_for_version()
        if self.version is None and self._current is None:
            self._current = versions.current(self.dags, self.tree)
        super().initialize()

    def _wait_for_version(self) -> None:
        """A worker whose own sync is a little behind the dag-processor's gets ``wait_seconds`` to
        publish the run's version (same content, same version); then one line names the version."""
        snapshot = versions.version_path(self.dags, str(self.version), self.tree)
        deadline = time.monotonic() + self.wait_seconds
        while not snapshot.is_dir():
            if time.monotonic() >= deadline:
                raise versions.VersionGoneError(versions.gone_message(str(self.version), self.keep_hours))
            time.sleep(1.0)

    def refresh(self) -> None:
        """Nothing to fetch: sync publishes locally; take the pointer's version."""
        if self.version is None:
            self._current = versions.current(self.dags, self.tree)

    def get_current_version(self) -> BundleVersion | None:
        """The version ``path`` serves: the run's, else the pointer as ``initialize``/``refresh``
        last read it (never read here: Airflow compares it before and after ``refresh``)."""
        version = self.version or self._current
        return BundleVersion(version) if version else None

    @property
    def path(self) -> Path:
        version = self.version or self._current
        if version is None:
            return versions.versions_dir(self.dags, self.tree)  # before the first sync: nothing to list
        return versions.version_path(self.dags, version, self.tree)
