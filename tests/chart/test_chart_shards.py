"""Issue #31: `dagProcessor.shards: N` renders N dag-processors, each parsing its own bundle.

Every dag-processor's `--bundle-name` arguments are disjoint and together name every bundle of the
`dag_bundle_config_list` every component reads, which is dagfleet.parsing's list for N shards; each
shard keeps its sync sidecar, and every syncing container is told N (DAGFLEET_SHARDS). N = 1
renders exactly what the chart rendered before shards existed (one `dagfleet` bundle).
"""

from __future__ import annotations

import configparser
import json
import re
from typing import Any

import pytest

from dagfleet.service import dagprocessor as parsing
from support.chart import by_kind, container, containers, env_of, render_chart

pytestmark = pytest.mark.helm


def _processors(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "dag-processor"
    ]


def _bundle_names(deployment: dict[str, Any]) -> list[str]:
    args = container(deployment, "dag-processor")["args"]
    return [args[i + 1] for i, arg in enumerate(args) if arg == "--bundle-name"]


def _config_list(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (config_map,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-airflow-config")]
    config = configparser.ConfigParser()
    config.read_string(config_map["data"]["airflow.cfg"])
    return json.loads(config["dag_processor"]["dag_bundle_config_list"])


@pytest.mark.parametrize("n", [2, 3])
def test_n_dag_processors_with_disjoint_bundles_covering_the_fleet(n: int) -> None:
    docs = render_chart({"dagProcessor": {"shards": n}})
    processors = _processors(docs)
    assert [d["metadata"]["name"] for d in processors] == [f"dagfleet-dag-processor-{k}" for k in range(n)]
    assigned = [_bundle_names(d) for d in processors]
    assert assigned == [[f"dagfleet-{k}"] for k in range(n)]  # one bundle each: disjoint
    configured = _config_list(docs)
    assert sorted(b["name"] for b in configured) == sorted(
        name for names in assigned for name in names
    )  # together: every bundle
    assert sorted(configured, key=lambda b: b["name"]) == json.loads(parsing.bundle_config_list(n))
    selectors = [json.dumps(d["spec"]["selector"]["matchLabels"], sort_keys=True) for d in processors]
    assert len(set(selectors)) == n  # no Deployment adopts another shard's pods
    for d in processors:
        assert d["spec"]["template"]["metadata"]["labels"].items() >= d["spec"]["selector"]["matchLabels"].items()
        assert "dag-sync" in [c["name"] for c in containers(d)]  # each shard keeps its sync sidecar
    status = [d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-fleet-status")]
    budgets = [d for d in by_kind(docs, "PodDisruptionBudget") if d["metadata"]["name"].endswith("-dag-processor")]
    for selector in [d["spec"]["selector"] for d in status] + [d["spec"]["selector"]["matchLabels"] for d in budgets]:
        assert all(d["spec"]["template"]["metadata"]["labels"].items() >= selector.items() for d in processors)
    assert status and budgets  # the Fleet page reads any shard's sidecar; one budget covers every shard
    syncing = [c for d in by_kind(docs, "Deployment") for c in containers(d) if "DAGFLEET_DAGS_FOLDER" in env_of(c)]
    assert syncing and all(env_of(c).get("DAGFLEET_SHARDS") == str(n) for c in syncing)


def _strip(docs: list[dict[str, Any]]) -> str:
    """The render without what differs between two renders: generated secrets and their checksums."""
    text = json.dumps([d for d in docs if d["kind"] != "Secret"], sort_keys=True)
    return re.sub(r'"checksum/[^"]*": "[0-9a-f]+"', "", text)


def test_one_shard_renders_as_before() -> None:
    docs = render_chart()
    assert _strip(render_chart({"dagProcessor": {"shards": 1}})) == _strip(docs)
    (processor,) = _processors(docs)
    assert processor["metadata"]["name"] == "dagfleet-dag-processor"
    assert container(processor, "dag-processor")["args"] == ["dag-processor"]
    assert "dagfleet.io/shard" not in processor["spec"]["selector"]["matchLabels"]
    assert _config_list(docs) == json.loads(parsing.BUNDLE_CONFIG_LIST)
    assert not any("DAGFLEET_SHARDS" in env_of(c) for d in by_kind(docs, "Deployment") for c in containers(d))


def test_your_own_bundle_stays_and_shard_zero_parses_it() -> None:
    own = {"name": "my-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
           "kwargs": {"path": "/opt/airflow/my-dags"}}  # fmt: skip
    listed = json.dumps([json.loads(parsing.BUNDLE_CONFIG_LIST)[0], own])
    config = {"dag_processor": {"dag_bundle_config_list": listed}}
    docs = render_chart({"dagProcessor": {"shards": 2}, "airflow": {"config": config}})
    assert [_bundle_names(d) for d in _processors(docs)] == [["dagfleet-0", "my-dags"], ["dagfleet-1"]]
    assert own in _config_list(docs)
