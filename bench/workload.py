"""Synthetic workflow sets built from the example configs (examples/workflows.yaml)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from dagfleet.fleet.settings import packaged_file
from dagfleet.service.server import load_workflows

# The two shapes the parse benchmark compares: a pod-free workflow and one with pods.
POD_FREE = "nightly_report"
POD = "acme_sync"


def examples() -> dict[str, dict[str, Any]]:
    return {str(wid): dict(cfg) for wid, cfg in load_workflows(packaged_file("data", "workflows.yaml"))}


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(examples()[name])


def fleet(n: int, prefix: str = "wf") -> dict[str, dict[str, Any]]:
    """``n`` workflows cycling through the example configs, each with its own description."""
    templates = list(examples().values())
    workflows = {}
    for i in range(n):
        config = copy.deepcopy(templates[i % len(templates)])
        config["description"] = f"{config.get('description') or 'workflow'} (#{i})"
        workflows[f"{prefix}{i:05d}"] = config
    return workflows


def write_workflows(path: Path, workflows: dict[str, dict[str, Any]]) -> Path:
    """The workflows file the reference server serves (JSON is YAML; see bench/apiserver.py)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"workflows": workflows}))
    tmp.replace(path)
    return path
