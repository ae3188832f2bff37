"""Issue #31: the chart with `dagProcessor.shards: 2` under the harness's kubelet.

Two dag-processor Deployments, each parsing one bundle: every workflow of the config API becomes a
DAG whose bundle is the shard dagfleet.shards assigns it, each dag-processor lists only its own
bundle and finds exactly its shard's files (so no workflow is parsed by both), every pod's sync
(whole fleet) publishes the same version per shard, and a triggered run of the mapped workflow
succeeds, pinned to its shard's version.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from kubelet import REPO
from release import FLEET, Release

from dagfleet.fleet import shards, versions
from support.wait import wait_until

pytestmark = [pytest.mark.harness, pytest.mark.scenarios("shards")]

# Every workflow the release serves: the examples and the harness's own (release.fleet_values).
WORKFLOWS = set(yaml.safe_load((REPO / "examples" / "workflows.yaml").read_text())["workflows"]) | set(
    yaml.safe_load((FLEET / "workflows.yaml").read_text())["workflows"]
)
SHARDS = 2
MAPPED = "hello_conf"
READY_TIMEOUT = 900


def test_every_workflow_is_parsed_by_exactly_one_dag_processor_and_a_mapped_run_succeeds(release: Release) -> None:
    api, kubelet = release.api, release.kubelet
    assert api is not None

    def all_visible() -> dict[str, str | None] | None:
        dags = {d["dag_id"]: d["bundle_name"] for d in api.call("GET", "/api/v2/dags?limit=100")["dags"]}
        return dags if set(dags) >= WORKFLOWS else None

    bundles = wait_until("every workflow as a DAG", all_visible, READY_TIMEOUT, every=5)
    expected = {w: shards.bundle_of(w, SHARDS) for w in WORKFLOWS}
    assert {w: bundles[w] for w in WORKFLOWS} == expected
    assert set(expected.values()) == set(shards.bundle_names(SHARDS))  # both shards serve workflows
    assert api.call("GET", "/api/v2/importErrors")["total_entries"] == 0

    for k, bundle in enumerate(shards.bundle_names(SHARDS)):
        pod = kubelet.pods[f"dag-processor-{k}"]
        logs = kubelet.logs(pod, "dag-processor")
        found = re.findall(r"Found (\d+) files for bundle (\S+)", logs)
        assert found, logs[-2000:]
        assert {name for _, name in found} == {bundle}  # it never lists the other shard
        assert int(found[-1][0]) == sum(1 for b in expected.values() if b == bundle)
        dags = kubelet.volume_path(f"dag-processor-{k}", "dags")
        other = kubelet.volume_path(f"dag-processor-{1 - k}", "dags")
        assert versions.current(dags, bundle) == versions.current(other, bundle)  # every pod: the same version

    path = api.trigger(MAPPED, {"items": ["north", "south"]})

    def finished() -> dict[str, Any] | None:
        try:
            run = api.call("GET", path)
        except OSError:  # the api-server did not answer in time (2 shared cores): ask again until the deadline
            return None
        return run if run["state"] in ("success", "failed") else None

    run = wait_until(f"{path} to finish", finished, READY_TIMEOUT, every=5)
    assert run["state"] == "success", api.task_instances(path)
    dags = kubelet.volume_path("dag-processor-0", "dags")
    assert run["bundle_version"] in versions.kept(dags, shards.bundle_of(MAPPED, SHARDS))
