"""Shards of the fleet (issue #31; docs/parsing.md, "Shards"): which DAG bundle serves a workflow.

With ``DAGFLEET_SHARDS`` = 1 (the default) the whole fleet is one bundle, ``dagfleet``, as before.
With n > 1 the fleet is split into the bundles ``dagfleet-0`` … ``dagfleet-(n-1)``, each parsed by
its own ``airflow dag-processor --bundle-name dagfleet-k``. A workflow's shard is chosen by
rendezvous (highest random weight) hashing of its ID: every shard gets a score from a digest of
(shard, ID) and the highest wins. So the assignment needs no state, is the same in every process
and pod, and changing n moves as few workflows as possible: growing from n to n + 1 moves only the
workflows the new shard wins (about 1 in n + 1), all of them to the new shard; shrinking moves only
the workflows of the shards that go.

Nothing here imports Airflow: sync, the bundle, ``dagfleet status`` and the benchmark use it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

BUNDLE_NAME = "dagfleet"
MAX_SHARDS = 64
SHARD_BUNDLE_RE = re.compile(rf"{BUNDLE_NAME}-(0|[1-9][0-9]?)")


def bundle_name(shard: int | None) -> str:
    """The bundle of ``shard`` (``dagfleet-<shard>``); None is the one bundle of an unsharded fleet."""
    return BUNDLE_NAME if shard is None else f"{BUNDLE_NAME}-{shard}"


def bundle_names(shards: int) -> list[str]:
    """The bundles of a fleet split into ``shards``: ``["dagfleet"]`` for 1 (today's single bundle)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the fleet has 1 to {MAX_SHARDS} shards, not {shards}")
    return [BUNDLE_NAME] if shards == 1 else [bundle_name(k) for k in range(shards)]


def shard_from_bundle(name: str) -> int | None:
    """``dagfleet-3`` -> 3; ``dagfleet`` (or any other name) -> None (the unsharded tree)."""
    match = SHARD_BUNDLE_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def _score(shard: int, workflow_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{shard}\0{workflow_id}".encode()).digest()[:8], "big")


def shard_of(workflow_id: str, shards: int) -> int:
    """The shard (0 … shards-1) that serves ``workflow_id``: the highest (score, shard) wins."""
    if shards == 1:
        return 0
    return max(range(shards), key=lambda k: (_score(k, workflow_id), k))


def bundle_of(workflow_id: str, shards: int) -> str:
    """The name of the bundle that serves ``workflow_id`` in a fleet of ``shards``."""
    return bundle_names(shards)[shard_of(workflow_id, shards)]


def split(manifest: Mapping[str, str], shards: int) -> dict[str, dict[str, str]]:
    """A manifest (file name -> workflow ID) per bundle, every bundle present (maybe empty)."""
    names = bundle_names(shards)
    parts: dict[str, dict[str, str]] = {name: {} for name in names}
    for file_name, workflow_id in manifest.items():
        parts[names[shard_of(workflow_id, shards)]][file_name] = workflow_id
    return parts


def counts(workflow_ids: Iterable[str], shards: int) -> dict[str, int]:
    """How many of ``workflow_ids`` each bundle serves."""
    names = bundle_names(shards)
    result = dict.fromkeys(names, 0)
    for workflow_id in workflow_ids:
        result[names[shard_of(workflow_id, shards)]] += 1
    return result
