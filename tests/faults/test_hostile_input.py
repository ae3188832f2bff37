"""Issue 13: input that used to crash the whole sync, a user's own DAG file, connection reuse.

Every case runs the real ``dagfleet`` command in a sandbox against the fault server on loopback.
The bad input goes over the wire as raw JSON text (Python's own encoder cannot even write a
5,000-deep document), in both list formats.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dagfleet.api.client import POOL_SIZE
from dagfleet.api.jsonlimits import MAX_DEPTH
from dagfleet.fleet.store import FleetStore
from dagfleet.sync.apply import MAX_REJECTED_IDS_SHOWN
from support import sandbox as sandboxing
from support.faultserver import Behaviour, FaultServer, config_path, etag_of
from support.sandbox import Result, Sandbox

KEY = "hostile-key-0c1d2e3f4a5b"
DEEP = "[" * 5000 + "]" * 5000
HUGE = "1" + "0" * 4999  # 5,000 digits: past Python's int() limit of 4,300
EXIT_CODES = {0, 69, 75}  # docs/reference.md

LONG = "too long a duration"
DEEPER = f"nested deeper than the {MAX_DEPTH} levels"


def _retry_delay(text: str) -> str:
    return '{"default_args": {"retry_delay": ' + text + "}}"


# (name, the config as raw JSON text, what its one error line says, kept by: "config" | "dag")
HOSTILE_CONFIGS: list[tuple[str, str, str, str]] = [
    ("retry_delay of 10^9 days", _retry_delay('{"days": 1000000000}'), LONG, "config"),
    ("schedule of 10^9 days", '{"schedule": {"days": 1000000000}}', LONG, "config"),
    ("retry_delay of 10^30 seconds", _retry_delay("1" + "0" * 30), LONG, "config"),
    ("infinite duration", '{"schedule": {"seconds": Infinity}}', LONG, "config"),
    ("NaN duration", _retry_delay("NaN"), "config field 'default_args.retry_delay'", "config"),
    ("nested 5,000 deep", '{"params": {"p": {"default": ' + DEEP + "}}}", DEEPER, "dag"),
    ("nested 70 deep", '{"params": {"p": {"default": ' + "[" * 70 + "]" * 70 + "}}}", DEEPER, "dag"),
    ("a 5,000-digit integer", '{"max_items": ' + HUGE + "}", "5,000-digit number", "dag"),
    ("a 5,000-digit duration", _retry_delay(HUGE), "5,000-digit number", "dag"),
    ('catchup "yes"', '{"catchup": "yes"}', "field 'catchup': input should be a valid boolean, got 'yes'", "config"),
    ("catchup 1", '{"catchup": 1}', "config field 'catchup'", "config"),
    ('per_item "true"', '{"pod": {"image": "busybox", "per_item": "true"}}', "config field 'pod.per_item'", "config"),
]
IDS = {name: f"h{index}" for index, (name, *_) in enumerate(HOSTILE_CONFIGS)}


def _sync(box: Sandbox, server: FaultServer, *command: str, **env: Any) -> Result:
    result = box.run(*(command or ("sync",)), DAGFLEET_API_URL=server.url, DAGFLEET_API_KEY=KEY, **env)
    assert "Traceback" not in result.output, result.explain()
    assert result.returncode in EXIT_CODES, result.explain()
    assert KEY not in result.output
    return result


def _serve_raw(server: FaultServer, configs: dict[str, str], list_format: str) -> None:
    """Serve ``{id: raw JSON text of its config}`` as a correct API would, with ETags."""
    server.clear()
    if list_format == "ids":
        server.set("/airflowconfigs", Behaviour.json(list(configs), etag=True))
        for workflow_id, text in configs.items():
            server.set(config_path(workflow_id), Behaviour.raw(text, etag=etag_of(text.encode())))
    else:
        body = "[" + ", ".join(f'{{"id": {json.dumps(i)}, "config": {t}}}' for i, t in configs.items()) + "]"
        server.set("/airflowconfigs", Behaviour.raw(body, etag=etag_of(body.encode())))


@pytest.mark.parametrize("list_format", ["objects", "ids"])
def test_hostile_configs_stay_with_their_workflow(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None], list_format: str
) -> None:
    """Each hostile config is one line for its workflow, which keeps its last known good DAG and
    config; the others sync (it was a traceback, exit 1, nothing synced)."""
    for name, *_ in HOSTILE_CONFIGS:
        fault(f"hostile config ({list_format}): {name}")
    good = {"good": '{"tags": ["v1"]}'} | dict.fromkeys(IDS.values(), '{"tags": ["ok"]}')
    _serve_raw(api, good, list_format)
    assert _sync(sandbox, api).returncode == 0
    before = sandboxing.snapshot(sandbox.dags)

    _serve_raw(api, {"good": '{"tags": ["v2"]}'} | {IDS[n]: text for n, text, *_ in HOSTILE_CONFIGS}, list_format)
    result = _sync(sandbox, api)

    assert result.returncode == 0, result.explain()
    assert len(result.errors) == len(HOSTILE_CONFIGS), result.explain()
    for name, _, says, kept_by in HOSTILE_CONFIGS:
        workflow_id = IDS[name]
        lines = [e for e in result.errors if e.startswith(f"workflow '{workflow_id}': ")]
        assert len(lines) == 1, (name, result.errors)
        assert says in lines[0], (name, lines[0])
        ending = "; kept its last known good config" if kept_by == "config" else "; kept its last known good DAG"
        assert lines[0].endswith(ending), (name, lines[0])
        for path in (f"{workflow_id}-mydag.py", sandboxing.record_key(sandbox.dags, workflow_id)):
            assert sandboxing.snapshot(sandbox.dags)[path] == before[path], (name, path)
    assert sandboxing.stored_config(sandbox.dags, "good") == {"tags": ["v2"]}
    assert len(sandboxing.dag_files(sandbox.dags)) == len(HOSTILE_CONFIGS) + 1
    sandboxing.assert_tidy(sandbox.dags)


@pytest.mark.parametrize("list_format", ["objects", "ids"])
def test_hostile_configs_of_new_workflows(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None], list_format: str
) -> None:
    fault(f"hostile configs of new workflows ({list_format})")
    _serve_raw(api, {"good": "{}"} | {IDS[n]: text for n, text, *_ in HOSTILE_CONFIGS}, list_format)

    result = _sync(sandbox, api)

    assert result.returncode == 0, result.explain()
    assert len(result.errors) == len(HOSTILE_CONFIGS), result.explain()
    for name, _, says, kept_by in HOSTILE_CONFIGS:
        line = next(e for e in result.errors if e.startswith(f"workflow '{IDS[name]}': "))
        assert says in line
        # Unreadable: no DAG yet. Readable but invalid: a DAG whose import error shows the line.
        ending = "; its DAG will show this as an import error" if kept_by == "config" else "; not created yet"
        assert line.endswith(ending), line
    assert "good-mydag.py" in sandboxing.dag_files(sandbox.dags)
    sandboxing.assert_tidy(sandbox.dags)


LIST_GARBAGE: list[tuple[str, str]] = [
    ("a list nested 5,000 deep", DEEP),
    ("a list of IDs nested 5,000 deep", "[" * 5000 + '"alpha"' + "]" * 5000),
    ("the list under 'workflows' nested 5,000 deep", '{"workflows": ' + DEEP + "}"),
    ("a list holding only a 5,000-digit integer", "[" + HUGE + "]"),
    ("a 5,000-digit integer instead of a list", HUGE),
    ("an object with a 5,000-digit integer", '{"workflows": ["alpha"], "n": ' + HUGE + "}"),
    ("a list nested 70 deep", "[" * 70 + "]" * 70),
]


@pytest.fixture
def seeded(sandbox: Sandbox, api: FaultServer) -> Sandbox:
    api.serve_workflows({"alpha": {"tags": ["a"]}, "beta": {}, "gamma": {"schedule": "@daily"}})
    assert _sync(sandbox, api).returncode == 0
    api.clear()
    return sandbox


@pytest.mark.parametrize(("name", "body"), LIST_GARBAGE, ids=[n for n, _ in LIST_GARBAGE])
def test_list_level_garbage_keeps_the_last_known_good_set(
    seeded: Sandbox, api: FaultServer, fault: Callable[..., None], name: str, body: str
) -> None:
    fault(f"list-level garbage: {name}")
    api.set("/airflowconfigs", Behaviour.raw(body))
    before = sandboxing.snapshot(seeded.dags)

    result = _sync(seeded, api)

    assert result.returncode == 75, result.explain()
    assert len(result.errors) == 1, result.explain()
    assert "workflow list" in result.errors[0]
    assert "kept the last known good set of 3 DAG(s)" in result.errors[0]
    sandboxing.assert_kept(before, sandboxing.snapshot(seeded.dags))


def test_list_level_garbage_without_a_last_known_good_set(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault("list-level garbage on the first start")
    api.set("/airflowconfigs", Behaviour.raw(DEEP))
    result = _sync(sandbox, api)
    assert result.returncode == 69, result.explain()
    assert len(result.errors) == 1 and "nested deeper than" in result.errors[0], result.explain()
    assert sandboxing.dag_files(sandbox.dags) == []


def test_an_unreadable_entry_affects_only_itself_and_prunes_nothing(
    seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """An entry beyond a bound whose ID cannot be read might be any workflow: nothing is pruned."""
    fault("list entry nested 5,000 deep, next to good ones")
    body = '[{"id": "alpha", "config": {"tags": ["new"]}}, ' + DEEP + ', {"id": "beta", "config": {}}]'
    api.set("/airflowconfigs", Behaviour.raw(body))

    result = _sync(seeded, api)

    assert result.returncode == 0, result.explain()
    assert result.errors == [
        f"entry #1 of the workflow list is nested deeper than the {MAX_DEPTH} levels an answer may have: "
        "skipped; nothing is pruned"
    ]
    assert sandboxing.dag_files(seeded.dags) == ["alpha-mydag.py", "beta-mydag.py", "gamma-mydag.py"]
    assert sandboxing.stored_config(seeded.dags, "alpha") == {"tags": ["new"]}


def test_an_entry_beyond_a_bound_keeps_its_workflow(
    seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault("list entry with a 5,000-digit integer, its ID readable")
    before = sandboxing.snapshot(seeded.dags)
    body = '[{"config": {"max_items": ' + HUGE + '}, "id": "alpha"}, {"id": "beta", "config": {"tags": ["b"]}}]'
    api.set("/airflowconfigs", Behaviour.raw(body))

    result = _sync(seeded, api)

    assert result.returncode == 0, result.explain()
    assert len(result.errors) == 1, result.explain()
    assert result.errors[0].startswith("workflow 'alpha': its entry in the workflow list holds a 5,000-digit number")
    assert result.errors[0].endswith("; kept its last known good DAG")
    after = sandboxing.snapshot(seeded.dags)
    assert after["alpha-mydag.py"] == before["alpha-mydag.py"]
    assert after[sandboxing.record_key(seeded.dags, "alpha")] == before[sandboxing.record_key(seeded.dags, "alpha")]
    assert "gamma-mydag.py" not in after  # no longer listed: pruned as usual
    assert sandboxing.stored_config(seeded.dags, "beta") == {"tags": ["b"]}


def test_watch_keeps_going_on_hostile_input(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """`dagfleet watch` (the chart's sidecar) exited on its first pass over such input."""
    fault("watch: hostile list and configs")
    _serve_raw(api, {"good": "{}"} | {IDS[n]: text for n, text, *_ in HOSTILE_CONFIGS}, "ids")
    result = _sync(sandbox, api, "watch", "--once")
    assert result.returncode == 0, result.explain()
    assert "good-mydag.py" in sandboxing.dag_files(sandbox.dags)
    api.set("/airflowconfigs", Behaviour.raw(DEEP))
    result = _sync(sandbox, api, "watch", "--once")
    assert result.returncode == 0, result.explain()
    assert any("nested deeper than" in e for e in result.errors), result.explain()


# -- a user's own DAG file ------------------------------------------------------------------------
USER_DAG = b"# my own DAG, written by hand\nfrom airflow.sdk import DAG\n\nDAG(dag_id='acme_mine')\n"


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_a_users_file_is_never_written_or_deleted(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None], kind: str
) -> None:
    """A file dagfleet did not create, under the name an ID would get: that ID is rejected on one
    line; the file stays byte for byte when the ID comes and when it goes (it was overwritten with
    the base DAG, then deleted)."""
    fault(f"ID colliding with a user's DAG {kind}")
    sandbox.dags.mkdir()
    target = sandbox.dags / "acme-mydag.py"
    if kind == "symlink":
        mine = sandbox.root / "mine.py"  # the user's file elsewhere, linked into the dags folder
        mine.write_bytes(USER_DAG)
        target.symlink_to(mine)
    else:
        target.write_bytes(USER_DAG)
    api.serve_workflows({"globex": {}})
    assert _sync(sandbox, api).returncode == 0

    api.serve_workflows({"globex": {}, "acme": {"tags": ["x"]}})
    result = _sync(sandbox, api)

    assert result.returncode == 0, result.explain()
    assert result.errors == [
        "workflow 'acme': its DAG file acme-mydag.py already exists in the dags folder and was not created by "
        "dagfleet; left that file untouched and skipped the workflow (rename the workflow in the config API, "
        "or move that file away)"
    ]
    assert target.read_bytes() == USER_DAG
    assert target.is_symlink() == (kind == "symlink")
    assert sandboxing.manifest(sandbox.dags) == {"globex-mydag.py": "globex"}
    assert not FleetStore(sandbox.dags).record_path("acme").exists()
    assert api.count(config_path("acme")) == 0

    api.clear()
    api.serve_workflows({"globex": {}})  # the ID goes away again
    result = _sync(sandbox, api)
    assert result.returncode == 0, result.explain()
    assert result.errors == []
    assert target.read_bytes() == USER_DAG
    assert target.is_symlink() == (kind == "symlink")

    target.unlink()  # the user moves their file away: now the workflow gets its DAG
    api.serve_workflows({"globex": {}, "acme": {}})
    assert _sync(sandbox, api).errors == []
    assert sorted(sandboxing.manifest(sandbox.dags)) == ["acme-mydag.py", "globex-mydag.py"]
    if kind == "symlink":
        assert (sandbox.root / "mine.py").read_bytes() == USER_DAG
        (sandbox.root / "mine.py").unlink()  # the sandbox checks nothing else is left outside


# -- keep-alive ------------------------------------------------------------------------------------
def test_every_request_of_a_sync_reuses_kept_alive_connections(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """ID-list format, 52 workflows: a cold sync and a warm re-sync (every answer a 304) each
    open at most one connection per fetch worker (the re-sync opened 53: a 304's connection was
    closed instead of going back to the pool)."""
    fault("keep-alive across a cold and a warm sync")
    api.serve_workflows({f"wf-{i:02}": {"tags": [str(i)]} for i in range(52)}, "ids")

    cold = _sync(sandbox, api)
    assert cold.returncode == 0 and cold.errors == [], cold.explain()
    assert api.count() == 53
    cold_connections = api.connections_accepted
    assert cold_connections <= POOL_SIZE, f"cold sync: {cold_connections} connections for 53 requests"

    warm = _sync(sandbox, api)
    assert warm.returncode == 0 and warm.errors == [], warm.explain()
    assert api.count() == 2 * 53
    warm_connections = api.connections_accepted - cold_connections
    assert warm_connections <= POOL_SIZE, f"warm sync: {warm_connections} connections for 53 requests (304s)"


# -- floods and look-alikes ------------------------------------------------------------------------
def test_a_flood_of_rejected_ids_is_summed_up(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    fault("100,000 invalid IDs")
    api.set("/airflowconfigs", Behaviour.json(["good", *(f"../bad-{i}" for i in range(100_000))]))
    api.set("/airflowconfigs/*", Behaviour.json({}))

    result = _sync(sandbox, api, timeout=120)

    assert result.returncode == 0, result.explain()[:2000]
    assert len(result.errors) == MAX_REJECTED_IDS_SHOWN + 1
    assert result.errors[-1] == f"… and {100_000 - MAX_REJECTED_IDS_SHOWN:,} more rejected IDs (not shown)"
    assert result.errors[-1] == "… and 99,990 more rejected IDs (not shown)"
    assert sandboxing.dag_files(sandbox.dags) == ["good-mydag.py"]


def test_a_look_alike_id_is_shown_escaped(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    fault("Cyrillic look-alike ID")
    look_alike = "\u0430\u0441me"  # Cyrillic a and es, Latin m and e: reads as "acme"
    api.set("/airflowconfigs", Behaviour.json([look_alike, "acme"]))
    api.set("/airflowconfigs/*", Behaviour.json({}))

    result = _sync(sandbox, api)

    assert result.returncode == 0, result.explain()
    assert len(result.errors) == 1
    assert result.errors[0].startswith("workflow ID '\\u0430\\u0441me' is not allowed")
    assert result.stderr.isascii()
    assert sandboxing.dag_files(sandbox.dags) == ["acme-mydag.py"]


def test_the_sync_converges_after_hostile_rounds(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """Round after round of hostile answers: the last good set converges once the API is fixed."""
    fault("hostile rounds, then a good answer")
    api.serve_workflows({"alpha": {}, "beta": {}})
    assert _sync(sandbox, api).returncode == 0
    for _, body in LIST_GARBAGE:
        api.set("/airflowconfigs", Behaviour.raw(body))
        assert _sync(sandbox, api).returncode == 75
    api.clear()
    api.serve_workflows({"alpha": {"tags": ["fixed"]}, "beta": {}})
    result = _sync(sandbox, api)
    assert result.returncode == 0 and result.errors == [], result.explain()
    assert sandboxing.stored_config(sandbox.dags, "alpha") == {"tags": ["fixed"]}
