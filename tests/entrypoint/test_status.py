"""`dagfleet status [--json]`: the fleet as the last sync left it, read from the dags folder only,
after real syncs against loopback servers (good, rejected, outage, per-workflow failure, prune)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dagfleet.fleet.store import FleetStore
from support.faultserver import LIST_PATH, Behaviour, FaultServer, config_path
from support.net import dead_url

DAGFLEET = str(Path(sys.executable).with_name("dagfleet"))
KEY = "status-key-3f9a21"


def _env(dags: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGFLEET_")}
    env.update(DAGFLEET_DAGS_FOLDER=str(dags), DAGFLEET_RETRIES="1", DAGFLEET_CONNECT_TIMEOUT="1")
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DAGFLEET, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def status(dags: Path) -> tuple[int, dict[str, Any]]:
    """`dagfleet status --json` with no API settings at all: it reads the dags folder only."""
    result = _run(["status", "--json"], _env(dags))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, json.loads(result.stdout)


def rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["workflow_id"]: w for w in data["workflows"]}


def test_status_follows_good_rejected_outage_and_prune(config_api_factory: Any, tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    etl = {"template": "tenant_etl", "spec": {"source_conn_id": "src", "tables": ["t1"], "target_schema": "s"}}
    api = config_api_factory({"a": {"tags": ["t"]}, "b": etl}, api_key=KEY)
    env = _env(dags, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY)

    assert _run(["sync"], env).returncode == 0
    code, good = status(dags)
    assert code == 0
    assert good["healthy"] is True
    assert good["outcome"] == "synced"
    assert good["last_success"] == good["attempted_at"]
    assert good["counts"] == {"synced": 2, "kept_last_known_good": 0, "rejected": 0, "pruned": 0}
    for workflow_id, template in (("a", "demo"), ("b", "tenant_etl")):
        row = rows(good)[workflow_id]
        assert row["state"] == "synced"
        assert row["source"] == "config API"
        # Template and stored time come from the workflow's record in the fleet store.
        record = FleetStore(dags).record(workflow_id)
        assert record is not None
        assert row["template"] == template == record.template
        assert row["stored_at"] == record.stored_at
        assert row["problem"] is None
        assert row["dag_file"] == f"{workflow_id}-mydag.py"
    table = _run(["status"], _env(dags)).stdout.splitlines()
    assert any(line.split()[:3] == ["b", "synced", "tenant_etl"] for line in table)

    # Rejected: an existing workflow's config breaks, a new one is invalid, an ID is invalid, "b" leaves.
    api.write({"a": {"tags": "nope"}, "fresh": {"schedule": 12}, "bad id": {}})
    assert _run(["sync"], env).returncode == 0
    code, bad = status(dags)
    assert code == 1
    assert bad["healthy"] is False
    assert bad["outcome"] == "synced"
    by_id = rows(bad)
    assert by_id["a"]["state"] == "rejected"
    assert by_id["a"]["source"] == "last known good"
    assert "'tags'" in by_id["a"]["problem"] and "kept its last known good config" in by_id["a"]["problem"]
    assert by_id["fresh"]["state"] == "rejected"
    assert "import error" in by_id["fresh"]["problem"]
    assert by_id["fresh"]["dag_file"] == "fresh-mydag.py"
    assert by_id["bad id"]["state"] == "rejected"
    assert by_id["bad id"]["dag_file"] is None
    assert "not allowed" in by_id["bad id"]["problem"]
    assert by_id["b"]["state"] == "pruned"
    assert by_id["b"]["dag_file"] is None
    assert bad["counts"] == {"synced": 0, "kept_last_known_good": 0, "rejected": 3, "pruned": 1}

    # Outage: the API's server is stopped; every DAG is kept, the earlier problems still show.
    api.close()
    assert _run(["sync"], env).returncode == 75
    code, down = status(dags)
    assert code == 1
    assert down["outcome"] == "kept_last_known_good"
    assert down["last_success"] == bad["last_success"] < down["attempted_at"]
    assert "unreachable" in down["problems"][0]
    by_id = rows(down)
    assert set(by_id) == {"a", "fresh"}
    assert {r["state"] for r in by_id.values()} == {"kept_last_known_good"}
    assert {r["source"] for r in by_id.values()} == {"last known good"}
    assert "'tags'" in by_id["a"]["problem"]  # still true: nothing changed since

    table = _run(["status"], _env(dags))
    assert table.returncode == 1
    lines = table.stdout.splitlines()
    assert lines[0].startswith("fleet: NOT healthy; 2 generated DAG(s)")
    assert lines[1].startswith("last sync: ") and "kept the last known good set" in lines[1]
    assert any(line.startswith("problem: ") and "unreachable" in line for line in lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("WORKFLOW"))
    assert [line.split()[0] for line in lines[header + 1 :]] == ["a", "fresh"]
    assert KEY not in table.stdout + table.stderr


def test_a_workflow_whose_config_cannot_be_fetched(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    with FaultServer() as api:
        api.serve_workflows({"a": {}, "b": {}}, list_format="ids")
        env = _env(dags, DAGFLEET_API_URL=api.url)
        assert _run(["sync"], env).returncode == 0
        api.serve_workflows({"a": {}, "b": {}, "new": {}}, list_format="ids")
        for workflow_id in ("b", "new"):
            api.set(config_path(workflow_id), Behaviour.json({"error": "boom"}, status=500))
        assert _run(["sync"], env).returncode == 0
    code, data = status(dags)
    assert code == 1
    by_id = rows(data)
    assert by_id["a"]["state"] == "synced"
    assert by_id["b"]["state"] == "kept_last_known_good"
    assert by_id["b"]["source"] == "last known good"
    assert "HTTP 500" in by_id["b"]["problem"]
    assert by_id["new"]["state"] == "not_created"
    assert by_id["new"]["dag_file"] is None
    assert "not created yet" in by_id["new"]["problem"]


def test_static_list_source_and_no_recorded_sync(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    code, never = status(dags)
    assert code == 1
    assert never["outcome"] == "never"
    assert never["workflows"] == []
    # Issue #24: from the checkout, `dagfleet status` looked elsewhere and said only "NOT healthy".
    assert f"no sync recorded yet in {dags}: " in never["summary"]
    assert "set DAGFLEET_DAGS_FOLDER (`make run`'s: .run/airflow/dags" in never["summary"]

    env = _env(dags, DAGFLEET_API_URL=dead_url(), DAGFLEET_STATIC_WORKFLOWS="s1,s2")
    assert _run(["sync"], env).returncode == 0
    _, data = status(dags)
    assert {r["source"] for r in data["workflows"]} == {"static list"}
    assert data["source"] == "static list"
    assert "using DAGFLEET_STATIC_WORKFLOWS" in data["problems"][0]

    # A generated DAG with no recorded outcome (status.json lost): listed, state unknown.
    (dags / ".dagfleet" / "status.json").unlink()
    _, lost = status(dags)
    assert lost["outcome"] == "never"
    assert {r["workflow_id"]: r["state"] for r in lost["workflows"]} == {"s1": "unknown", "s2": "unknown"}


def test_states_follow_the_plan_templates_duplicates_and_foreign_files(tmp_path: Path) -> None:
    """Rejections the plan makes (unknown template, duplicated ID, a name taken by a user's file):
    each is one row with its problem; the template column comes from the records."""
    dags = tmp_path / "dags"
    with FaultServer() as api:
        api.serve_workflows({"a": {}, "d": {}})
        env = _env(dags, DAGFLEET_API_URL=api.url)
        assert _run(["sync"], env).returncode == 0
        (dags / "own-mydag.py").write_text("# a user's own DAG file\n")
        listing = [
            {"id": "a", "config": {"template": "nope"}},
            {"id": "d", "config": {}},
            {"id": "d", "config": {}},
            {"id": "own", "config": {}},
            {"id": "new", "config": {"template": "nope"}},
        ]
        api.set(LIST_PATH, Behaviour.json(listing))
        assert _run(["sync"], env).returncode == 0
    code, data = status(dags)
    assert code == 1
    by_id = rows(data)
    assert (by_id["a"]["state"], by_id["a"]["source"], by_id["a"]["template"]) == (
        "rejected",
        "last known good",
        "demo",
    )
    assert "template" in by_id["a"]["problem"] and "kept its last known good config" in by_id["a"]["problem"]
    assert (by_id["d"]["state"], by_id["d"]["source"], by_id["d"]["template"]) == (
        "rejected",
        "last known good",
        "demo",
    )
    assert "more than once" in by_id["d"]["problem"]
    assert by_id["d"]["dag_file"] == "d-mydag.py"
    assert (by_id["own"]["state"], by_id["own"]["template"], by_id["own"]["dag_file"]) == ("rejected", "-", None)
    assert "not created by dagfleet" in by_id["own"]["problem"]
    assert (by_id["new"]["state"], by_id["new"]["template"]) == ("rejected", "-")  # no record: never stored
    assert "import error" in by_id["new"]["problem"]
    assert data["counts"]["rejected"] == 4
    assert (dags / "own-mydag.py").read_text() == "# a user's own DAG file\n"


def test_every_rejected_id_is_listed_and_counted_exactly(tmp_path: Path) -> None:
    """Issue #28: 15 invalid IDs: the log shows 10 and sums up the rest; the status lists all 15
    and counts 15 (the summary too), with no "not shown" line in its problems."""
    dags = tmp_path / "dags"
    bad = [f"bad id {i}" for i in range(15)]
    with FaultServer() as api:
        api.set(LIST_PATH, Behaviour.json([{"id": "good", "config": {}}, *({"id": b, "config": {}} for b in bad)]))
        result = _run(["sync"], _env(dags, DAGFLEET_API_URL=api.url))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("is not allowed") == 10  # the log stays short
    assert "… and 5 more rejected IDs (not shown)" in result.stderr
    code, data = status(dags)
    assert code == 1
    assert data["counts"]["rejected"] == 15
    assert sorted(w for w, r in rows(data).items() if r["state"] == "rejected") == sorted(bad)
    assert all("not shown" not in p for p in data["problems"]), data["problems"]
    assert "15 rejected" in data["summary"]
    assert data["unlisted_rejected"] == 0


def test_rejected_ids_past_the_cap_are_counted(tmp_path: Path) -> None:
    """Past MAX_REJECTED_IDS_LISTED rows the status counts the rest: the total stays exact."""
    from dagfleet.sync.apply import MAX_REJECTED_IDS_LISTED

    dags = tmp_path / "dags"
    total = MAX_REJECTED_IDS_LISTED + 7
    with FaultServer() as api:
        listing = [{"id": f"../bad-{i}", "config": {}} for i in range(total)]
        api.set(LIST_PATH, Behaviour.json([*listing, {"id": "ok", "config": {}}]))
        assert _run(["sync"], _env(dags, DAGFLEET_API_URL=api.url)).returncode == 0
    _, data = status(dags)
    assert data["counts"]["rejected"] == total
    assert len([r for r in data["workflows"] if r["state"] == "rejected"]) == MAX_REJECTED_IDS_LISTED
    assert data["unlisted_rejected"] == 7
    assert "7 more rejected IDs (past the status's 1,000 rows; not listed)" in data["problems"]
    assert f"{total} rejected" in data["summary"]
    table = _run(["status"], _env(dags))
    assert f"{total} rejected" in table.stdout.splitlines()[0]
