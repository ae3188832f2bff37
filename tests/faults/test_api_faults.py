"""`dagfleet sync` and `dagfleet watch` against a config API that is down, slow, wrong or malicious.

Every case runs the real command in a sandbox (fresh cwd, HOME, TMPDIR, AIRFLOW_HOME) against the
fault server on loopback, and asserts: the error line the user sees, the exit status, that every
DAG generated before is still there byte for byte, and that nothing was written outside the dags
folder (the ``sandbox`` fixture checks that last one when the test ends).
"""

from __future__ import annotations

import itertools
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dagfleet.fleet.store import FleetStore
from dagfleet.sync.apply import MAX_REJECTED_IDS_SHOWN
from support.faultserver import Behaviour, FaultServer, Request, config_path
from support.sandbox import (
    Result,
    Sandbox,
    assert_kept,
    assert_tidy,
    dag_files,
    manifest,
    record_key,
    snapshot,
    stored_config,
)

KEY = "fault-key-7f3a9c1e55d0"
WORKFLOWS: dict[str, Any] = {"alpha": {"tags": ["a"]}, "beta": {"schedule": "@daily", "description": "b"}}
KEPT = "kept the last known good set of 2 DAG(s)"
KEPT_SUMMARY = "kept the last known good set of 2 workflow(s) untouched"
NO_FALLBACK = "there is no last known good set and no DAGFLEET_STATIC_WORKFLOWS fallback"


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dags folder after one good sync of WORKFLOWS (copied by every test that needs a last known good set)."""
    box = Sandbox(tmp_path_factory.mktemp("seed"))
    with FaultServer() as server:
        server.serve_workflows(WORKFLOWS)
        result = box.run("sync", DAGFLEET_API_URL=server.url, DAGFLEET_API_KEY=KEY)
    assert result.returncode == 0, result.explain()
    assert dag_files(box.dags) == ["alpha-mydag.py", "beta-mydag.py"]
    return box.dags


@pytest.fixture
def seeded(sandbox: Sandbox, seeded_template: Path) -> Sandbox:
    shutil.copytree(seeded_template, sandbox.dags)
    return sandbox


def _sync(box: Sandbox, server: FaultServer, **env: Any) -> Result:
    settings: dict[str, Any] = {"DAGFLEET_API_URL": server.url, "DAGFLEET_API_KEY": KEY, **env}
    result = box.run("sync", **settings)
    assert KEY not in result.output, "the API key leaked into the output"
    return result


def _says(line: str, message: str | tuple[str, ...]) -> bool:
    return any(m in line for m in ((message,) if isinstance(message, str) else message))


def _one_error(result: Result) -> str:
    assert len(result.errors) == 1, result.explain()
    return result.errors[0]


# -- the workflow list fails: keep the last known good set (75) or report nothing usable (69) --------
@dataclass(frozen=True)
class ListFault:
    name: str
    behaviour: Behaviour | None  # None: nothing listens (connection refused)
    message: str | tuple[str, ...]  # what the user must see in the error line (one of them)
    env: dict[str, str] = field(default_factory=dict)
    max_seconds: float = 10.0


def _truncated_list() -> Behaviour:
    listing = Behaviour.json([{"id": f"wf-{i}", "config": {}} for i in range(50)])
    return listing.with_(truncate_at=len(listing.body) // 2)


def _body_of(behaviour: Behaviour, cut: int | None = None) -> bytes:
    return behaviour.body if cut is None else behaviour.body[:cut]


_BIG_LIST = Behaviour.json(list(WORKFLOWS) * 400)

LIST_FAULTS = [
    ListFault("API down (connection refused)", None, "is unreachable (connection failed)"),
    ListFault("connection closed before any answer", Behaviour.close(), "is unreachable (connection failed)"),
    ListFault("connection reset before any answer", Behaviour.reset(), "is unreachable (connection failed)"),
    ListFault("HTTP 500", Behaviour.json({"error": "boom"}, 500), "answered HTTP 500 for the workflow list"),
    ListFault("HTTP 502", Behaviour.html("<h1>502 Bad Gateway</h1>", 502), "answered HTTP 502 for the workflow list"),
    ListFault("HTTP 503", Behaviour.json({"error": "down"}, 503), "answered HTTP 503 for the workflow list"),
    ListFault(
        "HTTP 429 with Retry-After",
        Behaviour.json({"error": "slow down"}, 429, headers=(("Retry-After", "1"),)),
        "answered HTTP 429 for the workflow list",
        {"DAGFLEET_RETRIES": "2"},
    ),
    ListFault(
        "answer slower than the read timeout",
        Behaviour.hang(30),
        "did not answer the workflow list within 1s (DAGFLEET_READ_TIMEOUT)",
        {"DAGFLEET_READ_TIMEOUT": "1"},
    ),
    ListFault(
        # Every chunk arrives within the read timeout; the whole answer takes ~20 s.
        "answer trickled slower than connect + read timeout",
        _BIG_LIST.with_(trickle=0.2, chunk_size=64),
        "took longer than 2s to send the workflow list",
        {"DAGFLEET_READ_TIMEOUT": "1", "DAGFLEET_CONNECT_TIMEOUT": "1"},
    ),
    ListFault(
        # A slow-loris server: status line and headers arrive a few bytes at a time (~15 s).
        "headers trickled slower than connect + read timeout",
        Behaviour.json(list(WORKFLOWS)).with_(trickle=0.2, chunk_size=2, trickle_head=True),
        ("took longer than 2s to send the workflow list", "did not answer the workflow list within"),
        {"DAGFLEET_READ_TIMEOUT": "1", "DAGFLEET_CONNECT_TIMEOUT": "1"},
    ),
    ListFault(
        "answer cut off mid-body",
        _truncated_list(),
        "connection broke while sending the workflow list (truncated answer)",
    ),
    ListFault(
        "truncated JSON",
        Behaviour.raw(_body_of(_BIG_LIST, 100)),
        "sent malformed JSON for the workflow list (JSONDecodeError at byte",
    ),
    ListFault("malformed JSON", Behaviour.raw('["alpha", "beta",]'), "sent malformed JSON for the workflow list"),
    ListFault("invalid UTF-8", Behaviour.raw(b'["alpha", "\xff\xfe"]'), "sent malformed JSON for the workflow list"),
    ListFault("empty body", Behaviour.raw(b""), "sent malformed JSON for the workflow list"),
    ListFault("HTML instead of JSON", Behaviour.html(), "answered the workflow list with text/html, not JSON"),
    ListFault(
        "HTML error page labelled JSON",
        Behaviour.raw("<html><body>Service Unavailable</body></html>"),
        "sent malformed JSON for the workflow list",
    ),
    ListFault("no Content-Type", Behaviour.raw('["alpha"]', content_type=None), "with no content type, not JSON"),
    ListFault(
        "JSON object instead of a list",
        Behaviour.json({"error": "maintenance"}),
        "config API answered dict for /airflowconfigs, expected a JSON list",
    ),
    ListFault("JSON null", Behaviour.json(None), "config API answered NoneType for /airflowconfigs"),
    ListFault(
        "HTTP 401",
        Behaviour.json({"error": "bad key"}, 401),
        "refused the workflow list (HTTP 401): the API key was rejected; set DAGFLEET_API_KEY",
    ),
    ListFault(
        "HTTP 403",
        Behaviour.json({"error": "forbidden"}, 403),
        "refused the workflow list (HTTP 403): the API key was rejected",
    ),
    ListFault(
        "HTTP 404 (wrong URL)",
        Behaviour.json({"error": "not found"}, 404),
        "answered HTTP 404 (not found) for the workflow list: check DAGFLEET_API_URL",
    ),
]


@pytest.mark.parametrize("case", LIST_FAULTS, ids=[c.name for c in LIST_FAULTS])
def test_list_fault_keeps_the_last_known_good_set(
    case: ListFault, seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault(f"list: {case.name} (last known good set present)")
    if case.behaviour is None:
        api.stop()
    else:
        api.set("/airflowconfigs", case.behaviour)
    before = snapshot(seeded.dags)

    result = _sync(seeded, api, **case.env)

    assert result.returncode == 75, result.explain()
    error = _one_error(result)
    assert _says(error, case.message), result.explain()
    assert error.endswith(KEPT), result.explain()
    assert result.warnings[-1] == KEPT_SUMMARY
    assert result.seconds < case.max_seconds, f"took {result.seconds:.1f}s"
    assert_kept(before, snapshot(seeded.dags))
    assert_tidy(seeded.dags)
    assert api.count("/airflowconfigs/*") == 0  # no config was asked for after the list failed


FIRST_START = {"API down (connection refused)", "HTTP 503", "malformed JSON", "HTTP 401"}


@pytest.mark.parametrize("case", [c for c in LIST_FAULTS if c.name in FIRST_START], ids=lambda c: c.name)
def test_list_fault_without_a_last_known_good_set_is_nothing_usable(
    case: ListFault, sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault(f"list: {case.name} (first start, nothing to fall back to)")
    if case.behaviour is None:
        api.stop()
    else:
        api.set("/airflowconfigs", case.behaviour)

    result = _sync(sandbox, api, **case.env)

    assert result.returncode == 69, result.explain()
    error = _one_error(result)
    assert _says(error, case.message), result.explain()
    assert error.endswith(NO_FALLBACK)
    assert result.warnings[-1] == "nothing usable: no DAGs were generated"
    assert dag_files(sandbox.dags) == []
    assert_tidy(sandbox.dags)


def test_unsolicited_304_is_not_taken_for_a_list(
    sandbox: Sandbox, seeded_template: Path, api: FaultServer, fault: Callable[..., None]
) -> None:
    """A broken cache in front of the API answers 304 to a client that sent no If-None-Match."""
    fault("list: HTTP 304 without If-None-Match (first start)")
    api.set("/airflowconfigs", Behaviour(status=304, content_type=None))
    fresh = _sync(sandbox, api)
    assert fresh.returncode == 69, fresh.explain()
    assert _one_error(fresh).startswith("config API answered HTTP 304 for the workflow list; ")
    assert list(api.headers_seen("if-none-match")) == [None]
    assert dag_files(sandbox.dags) == []
    # With a complete last known good set the client does ask If-None-Match: then 304 is right.
    shutil.rmtree(sandbox.dags)
    shutil.copytree(seeded_template, sandbox.dags)
    before = snapshot(sandbox.dags)
    seeded = _sync(sandbox, api)
    assert seeded.returncode == 0, seeded.explain()
    assert list(api.headers_seen("if-none-match"))[-1] is not None
    assert_kept(before, snapshot(sandbox.dags))


# -- retries -------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retries_then_success(status: int, seeded: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    fault(f"retries: HTTP {status} twice, then a good answer")
    headers = (("Retry-After", "1"),) if status == 429 else ()
    changed = {**WORKFLOWS, "gamma": {}}
    api.serve_workflows(changed)
    api.queue("/airflowconfigs", *[Behaviour.json({"error": "busy"}, status, headers=headers)] * 2)

    result = _sync(seeded, api, DAGFLEET_RETRIES=3)

    assert result.returncode == 0, result.explain()
    assert result.errors == []
    retried = [w for w in result.warnings if f"answered HTTP {status} for the workflow list; retrying in" in w]
    assert len(retried) == 2, result.explain()
    assert api.count("/airflowconfigs") == 3
    assert dag_files(seeded.dags) == ["alpha-mydag.py", "beta-mydag.py", "gamma-mydag.py"]
    if status == 429:  # Retry-After: 1 was honoured between every two attempts
        times = [r.at for r in api.requests if r.route == "/airflowconfigs"]
        assert min(b - a for a, b in itertools.pairwise(times)) >= 0.9


def test_retries_exhausted_keep_the_last_known_good_set(
    seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault("retries: HTTP 503 on every attempt")
    api.set("/airflowconfigs", Behaviour.json({"error": "down"}, 503))
    before = snapshot(seeded.dags)
    result = _sync(seeded, api, DAGFLEET_RETRIES=3)
    assert result.returncode == 75, result.explain()
    assert api.count("/airflowconfigs") == 3
    assert _one_error(result) == f"config API answered HTTP 503 for the workflow list; {KEPT}"
    assert len([w for w in result.warnings if "retrying in" in w]) == 2
    assert_kept(before, snapshot(seeded.dags))


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_not_retried(
    status: int, seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault(f"retries: HTTP {status} is final")
    api.set("/airflowconfigs", Behaviour.json({"error": "no"}, status))
    result = _sync(seeded, api, DAGFLEET_RETRIES=4)
    assert result.returncode == 75
    assert api.count() == 1
    assert list(api.headers_seen("x-api-key")) == [KEY]
    assert not [w for w in result.warnings if "retrying" in w]


def test_flapping_api_converges(seeded: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """Every other request fails (closed, 503, reset): retries carry the sync through."""
    fault("flapping: every other request fails")
    workflows = {**WORKFLOWS, "gamma": {"tags": ["g"]}, "delta": {}}
    api.serve_workflows(workflows, list_format="ids")
    failures = [Behaviour.close(), Behaviour.json({"error": "flap"}, 503), Behaviour.reset()]
    correct = {
        "/airflowconfigs": Behaviour.json(list(workflows), etag=True),
        **{config_path(w): Behaviour.json(c, etag=True) for w, c in workflows.items()},
    }
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def flap(request: Request) -> Behaviour:
        """Per path: fail, answer, fail, answer… (deterministic whatever the request order)."""
        with lock:
            seen[request.route] = count = seen.get(request.route, 0) + 1
        return failures[count // 2 % len(failures)] if count % 2 else correct[request.route]

    api.clear()
    api.set("/airflowconfigs", flap).set("/airflowconfigs/*", flap)

    result = _sync(seeded, api, DAGFLEET_RETRIES=4)

    assert result.returncode == 0, result.explain()
    assert result.errors == []
    assert len([w for w in result.warnings if "retrying in" in w]) == 1 + len(workflows)  # every path failed once
    assert dag_files(seeded.dags) == sorted(f"{w}-mydag.py" for w in workflows)
    for workflow_id, config in workflows.items():
        assert stored_config(seeded.dags, workflow_id) == config
    assert_tidy(seeded.dags)


# -- the API dies in the middle of a sync ------------------------------------------------------------
def test_api_dies_after_the_list(seeded: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """The list arrives (IDs only), then nothing listens: every workflow keeps its last known good DAG."""
    fault("down in the middle of a sync (after the list)")
    changed = {"alpha": {"tags": ["changed"]}, "beta": {}, "gamma": {}}
    api.serve_workflows(changed, list_format="ids")
    api.queue("/airflowconfigs", Behaviour.json(list(changed), stop_after=True))
    before = snapshot(seeded.dags)

    result = _sync(seeded, api)

    assert result.returncode == 0, result.explain()  # docs/reference.md: bad workflows are reported, 0
    assert sorted(result.errors) == [
        f"workflow 'alpha': config API at {api.url} is unreachable (connection failed): check DAGFLEET_API_URL "
        "and that the service is up; kept its last known good DAG",
        f"workflow 'beta': config API at {api.url} is unreachable (connection failed): check DAGFLEET_API_URL "
        "and that the service is up; kept its last known good DAG",
        f"workflow 'gamma': config API at {api.url} is unreachable (connection failed): check DAGFLEET_API_URL "
        "and that the service is up; not created yet",
    ], result.explain()
    assert_kept(before, snapshot(seeded.dags))
    assert_tidy(seeded.dags)

    api.start()  # back up: the next sync catches up
    recovered = _sync(seeded, api)
    assert recovered.returncode == 0, recovered.explain()
    assert recovered.errors == []
    assert dag_files(seeded.dags) == ["alpha-mydag.py", "beta-mydag.py", "gamma-mydag.py"]
    assert stored_config(seeded.dags, "alpha") == {"tags": ["changed"]}


def test_api_dies_between_config_requests(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """30 workflows, IDs only: the API stops listening after its 10th config answer. Each workflow is
    either updated or keeps its last known good config and DAG, and says so in one line."""
    fault("down in the middle of a sync (between config requests)")
    old = {f"wf-{i:02d}": {"tags": ["old"]} for i in range(30)}
    api.serve_workflows(old)
    assert _sync(sandbox, api).returncode == 0
    new = {w: {"tags": ["new"]} for w in old}
    api.clear()
    api.set("/airflowconfigs", Behaviour.json(list(new)))
    served = {"n": 0}

    def config(request: Request) -> Behaviour:
        served["n"] += 1
        answer = Behaviour.json(new[request.route.rsplit("/", 1)[1]])
        return answer.with_(stop_after=True) if served["n"] == 10 else answer

    api.set("/airflowconfigs/*", config)
    before = snapshot(sandbox.dags)

    result = _sync(sandbox, api)

    assert result.returncode == 0, result.explain()
    stored = {w: stored_config(sandbox.dags, w) for w in old}
    kept = sorted(w for w, c in stored.items() if c == old[w])
    updated = sorted(w for w, c in stored.items() if c == new[w])
    assert len(kept) + len(updated) == 30
    assert 10 <= len(updated) < 30
    assert sorted(result.errors) == [
        f"workflow {w!r}: config API at {api.url} is unreachable (connection failed): check DAGFLEET_API_URL "
        "and that the service is up; kept its last known good DAG"
        for w in kept
    ], result.explain()
    after = snapshot(sandbox.dags)
    for workflow_id in kept:
        assert after[record_key(sandbox.dags, workflow_id)] == before[record_key(sandbox.dags, workflow_id)]
    assert dag_files(sandbox.dags) == sorted(f"{w}-mydag.py" for w in old)
    assert_tidy(sandbox.dags)


CONFIG_FAULTS: list[tuple[str, Behaviour, str]] = [
    ("HTTP 500", Behaviour.json({"error": "boom"}, 500), "config API answered HTTP 500 for workflow 'alpha'"),
    ("connection closed", Behaviour.close(), "is unreachable (connection failed)"),
    ("slower than the read timeout", Behaviour.hang(30), "did not answer workflow 'alpha' within 1s"),
    ("malformed JSON", Behaviour.raw('{"tags": [}'), "sent malformed JSON for workflow 'alpha'"),
    ("HTML instead of JSON", Behaviour.html(), "answered workflow 'alpha' with text/html, not JSON"),
    (
        "a list instead of an object",
        Behaviour.json(["x"]),
        "answered list for workflow 'alpha', expected a JSON object",
    ),
    ("HTTP 403", Behaviour.json({"error": "no"}, 403), "refused workflow 'alpha' (HTTP 403)"),
    ("HTTP 404", Behaviour.json({"error": "gone"}, 404), "answered HTTP 404 (not found) for workflow 'alpha'"),
]


@pytest.mark.parametrize(("name", "behaviour", "message"), CONFIG_FAULTS, ids=[c[0] for c in CONFIG_FAULTS])
def test_config_fault_keeps_that_workflows_last_known_good_dag(
    name: str, behaviour: Behaviour, message: str, seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault(f"config of one workflow: {name}")
    api.serve_workflows({"alpha": {"tags": ["new"]}, "beta": {"tags": ["new"]}}, list_format="ids")
    api.set(config_path("alpha"), behaviour)
    before = snapshot(seeded.dags)

    result = _sync(seeded, api, DAGFLEET_READ_TIMEOUT=1)

    assert result.returncode == 0, result.explain()
    error = _one_error(result)
    assert error.startswith("workflow 'alpha': ")
    assert message in error
    assert error.endswith("; kept its last known good DAG")
    after = snapshot(seeded.dags)
    assert after["alpha-mydag.py"] == before["alpha-mydag.py"]
    assert after[record_key(seeded.dags, "alpha")] == before[record_key(seeded.dags, "alpha")]
    assert stored_config(seeded.dags, "beta") == {"tags": ["new"]}
    assert_tidy(seeded.dags)


# -- wrong and malicious content -------------------------------------------------------------------
MALICIOUS_IDS: list[tuple[str, Any, str]] = [
    ("path traversal ../x", "../escaped", "is not allowed"),
    ("path traversal ../../x", "../../escaped2", "is not allowed"),
    ("slash a/b", "a/b", "is not allowed"),
    ("dot-dot", "..", "is not allowed"),
    ("dot", ".", "is not allowed"),
    ("absolute path", "/ABSOLUTE/escaped3", "is not allowed"),
    ("backslash", "..\\..\\escaped4", "is not allowed"),
    ("NUL byte", "nul\x00byte", "is not allowed"),
    ("newline (log injection)", "ok\n2026-01-01 00:00:00,000 dagfleet INFO forged line", "is not allowed"),
    ("shell: command substitution", "$(touch pwned)", "is not allowed"),
    ("shell: backticks", "`touch pwned2`", "is not allowed"),
    ("shell: separator", "x;touch pwned3", "is not allowed"),
    ("shell: pipe and redirect", "x|tee pwned4>y", "is not allowed"),
    ("space", "has space", "is not allowed"),
    ("leading dash", "-rf", "is not allowed"),
    ("hidden file", ".hidden", "is not allowed"),
    ("double dot inside", "a..b", "contains '..'"),
    ("unicode look-alike (Cyrillic)", "аlpha", "is not allowed"),  # noqa: RUF001 - the point
    ("unicode fullwidth", "ａｌｐｈａ", "is not allowed"),  # noqa: RUF001
    ("unicode division slash", "a\u2215b", "is not allowed"),
    ("zero-width space", "al\u200bpha", "is not allowed"),
    ("right-to-left override", "evil\u202eyp.", "is not allowed"),
    ("300 characters", "x" * 300, "is 300 characters long; at most 200 are allowed"),
    ("201 characters", "y" * 201, "is 201 characters long"),
    ("empty", "", "is empty"),
]


def test_malicious_ids_are_refused_one_line_each(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """Bad IDs next to good ones: each bad one is one error line; good ones sync; nothing escapes."""
    for name, _, _ in MALICIOUS_IDS:
        fault(f"malicious ID: {name}")
    fault("malicious ID: absolute path into the sandbox")
    fault("malicious ID: non-string entries")
    escape = str(sandbox.root / "escaped5")
    bad_ids = [value for _, value, _ in MALICIOUS_IDS] + [escape]
    api.set("/airflowconfigs/*", Behaviour.json({}))
    errors: list[str] = []
    # In batches: past MAX_REJECTED_IDS_SHOWN rejections a sync sums the rest up in one line.
    for start in range(0, len(bad_ids), MAX_REJECTED_IDS_SHOWN - 2):
        batch = bad_ids[start : start + MAX_REJECTED_IDS_SHOWN - 2]
        listing: list[Any] = ["good-1", *batch, 42, None, {"id": 7}, ["x"], {"config": {}}, "good-2"]
        api.set("/airflowconfigs", Behaviour.json(listing))

        result = _sync(sandbox, api)

        assert result.returncode == 0, result.explain()
        assert dag_files(sandbox.dags) == ["good-1-mydag.py", "good-2-mydag.py"]
        assert sorted(manifest(sandbox.dags).values()) == ["good-1", "good-2"]
        assert sorted(p.name for p in FleetStore(sandbox.dags).records.iterdir()) == ["good-1.json", "good-2.json"]
        assert_tidy(sandbox.dags)
        assert len(result.errors) == len(batch) + 5, result.explain()
        assert sum("neither an ID string nor an object with a string 'id'" in e for e in result.errors) == 5
        assert result.stderr.isascii(), "a rejected ID was shown unescaped"
        assert not any(line.startswith("2026-01-01") for line in result.stderr.splitlines()), "log line forged"
        errors += result.errors
    # Only the good IDs were ever asked for.
    assert {r.route for r in api.requests if r.route != "/airflowconfigs"} == {
        config_path("good-1"),
        config_path("good-2"),
    }
    # One error line per bad entry, each naming it escaped, ASCII only (no raw NUL, newline, RLO or
    # look-alike letters: a Cyrillic a shows as '\u0430').
    for _, value, why in MALICIOUS_IDS:
        shown = ascii(value) if len(value) <= 60 else ascii(value[:60]) + "..."
        matching = [e for e in errors if e.startswith(f"workflow ID {shown} ")]
        assert len(matching) == 1, (value, errors)
        assert why in matching[0]
        assert matching[0].endswith("; skipped (fix the ID in the config API)")
    # Nothing landed next to the dags folder or anywhere the IDs pointed at.
    for target in ("escaped", "escaped2", "escaped3", "escaped4", "escaped5"):
        assert not list(sandbox.root.rglob(f"{target}*"))
    assert not Path("/ABSOLUTE").exists()
    assert sorted(p.name for p in sandbox.root.iterdir()) == ["airflow-home", "cwd", "dags", "home", "tmp"]


def test_duplicate_ids_keep_what_was_there(seeded: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    fault("duplicate IDs: exact")
    fault("duplicate IDs: differing in case only")
    listing = [
        {"id": "alpha", "config": {"tags": ["one"]}},
        {"id": "alpha", "config": {"tags": ["two"]}},
        {"id": "Gamma", "config": {}},
        {"id": "gamma", "config": {}},
        {"id": "beta", "config": {"tags": ["new"]}},
    ]
    api.set("/airflowconfigs", Behaviour.json(listing))
    before = snapshot(seeded.dags)

    result = _sync(seeded, api)

    assert result.returncode == 0, result.explain()
    dupe = "its ID appears more than once in the list (IDs must be unique, case-insensitively); kept as it was"
    assert sorted(result.errors) == [
        f"workflow 'Gamma': {dupe}",
        f"workflow 'alpha': {dupe}",
        f"workflow 'gamma': {dupe}",
    ]
    after = snapshot(seeded.dags)
    for kept in ("alpha-mydag.py", record_key(seeded.dags, "alpha")):
        assert after[kept] == before[kept]
    assert dag_files(seeded.dags) == ["alpha-mydag.py", "beta-mydag.py"]
    assert stored_config(seeded.dags, "beta") == {"tags": ["new"]}
    assert_tidy(seeded.dags)


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("schedule is a number", {"schedule": 5}, "config field 'schedule'"),
    ("schedule is not cron", {"schedule": "every day"}, "config field 'schedule'"),
    ("max_active_runs is a string", {"max_active_runs": "many"}, "config field 'max_active_runs'"),
    ("tags is a string", {"tags": "a,b"}, "config field 'tags'"),
    ("unknown field", {"shedule": "@daily"}, "config field 'shedule': unknown field"),
    ("negative retries", {"default_args": {"retries": -1}}, "config field 'default_args.retries'"),
    ("start_date garbage", {"start_date": "yesterday"}, "config field 'start_date'"),
    (
        "bad pod secret name",
        {"pod": {"image": "busybox", "secrets": [{"deploy_type": "env", "deploy_target": "X", "secret": "Bad Name"}]}},
        "config field 'pod.secrets[0].secret'",
    ),
    ("deeply nested junk", {"params": {"p": {"default": [[[[[[[[[[1]]]]]]]]]]}}, "items": 3}, "config field 'items'"),
]


@pytest.mark.parametrize(("name", "config", "field_text"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_keeps_the_last_known_good_config(
    name: str, config: Any, field_text: str, seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault(f"config with wrong types or fields: {name}")
    api.set("/airflowconfigs", Behaviour.json([{"id": "alpha", "config": config}, {"id": "beta", "config": {}}]))
    before = snapshot(seeded.dags)

    result = _sync(seeded, api)

    assert result.returncode == 0, result.explain()
    error = _one_error(result)
    assert error.startswith("workflow 'alpha': ")
    assert field_text in error
    assert error.endswith("; kept its last known good config")
    after = snapshot(seeded.dags)
    assert after["alpha-mydag.py"] == before["alpha-mydag.py"]
    assert after[record_key(seeded.dags, "alpha")] == before[record_key(seeded.dags, "alpha")]
    assert_tidy(seeded.dags)


def test_bad_config_of_a_new_workflow_surfaces_as_its_import_error(
    seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault("config with wrong types: a new workflow")
    api.serve_workflows({**WORKFLOWS, "newbie": {"max_active_runs": "lots", "colour": "red"}})
    result = _sync(seeded, api)
    assert result.returncode == 0, result.explain()
    error = _one_error(result)
    assert error.startswith("workflow 'newbie': ")
    assert "config field 'max_active_runs'" in error
    assert "config field 'colour': unknown field" in error
    assert error.endswith("; its DAG will show this as an import error")
    assert "newbie-mydag.py" in dag_files(seeded.dags)


def test_hundred_thousand_entry_list(seeded: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """100,000 entries (a runaway API): 100 new workflows among bad IDs, duplicates and junk."""
    fault("a 100,000-entry list")
    listing: list[Any] = [{"id": "alpha", "config": {}}, {"id": "beta", "config": {}}]
    listing += [{"id": f"new-{i}", "config": {}} for i in range(100)]
    listing += [{"id": f"dup-{i % 1000}", "config": {}} for i in range(89_898)]
    listing += [f"../bad-{i}" for i in range(5_000)]
    listing += [{"oops": i} for i in range(100_000 - len(listing))]
    assert len(listing) == 100_000
    api.set("/airflowconfigs", Behaviour.json(listing))

    result = _sync(seeded, api, timeout=120)

    assert result.returncode == 0, result.explain()[:2000]
    assert result.seconds < 20, f"took {result.seconds:.1f}s"  # bounded (it was quadratic: ~40 s)
    # A flood of rejections is summed up after the first few lines of each kind.
    shown = MAX_REJECTED_IDS_SHOWN
    assert len(result.errors) == 3 * (shown + 1), result.explain()[:3000]
    assert f"… and {1000 - shown:,} more IDs that appear more than once (not shown); kept as they were" in result.errors
    assert f"… and {5000 - shown:,} more rejected IDs (not shown)" in result.errors
    assert f"… and {5000 - shown:,} more problems with entries of the workflow list" in result.errors
    files = dag_files(seeded.dags)
    assert len(files) == 102
    assert not any(f.startswith("dup-") for f in files)
    assert result.lines("INFO")[-1].startswith(
        "synced 102 workflow(s) from api: 100 written, 2 config updated, 0 unchanged, 0 pruned"  # alpha, beta: now {}
    )
    assert_tidy(seeded.dags)


def test_redirect_does_not_carry_the_key_elsewhere(
    seeded: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """A redirect to another host must not receive the x-api-key (requests only strips Authorization)."""
    fault("malicious: redirect to another host")
    with FaultServer(host="127.0.0.2") as elsewhere:
        elsewhere.serve_workflows(WORKFLOWS)
        api.set("/airflowconfigs", Behaviour(status=302, headers=(("Location", elsewhere.url + "/airflowconfigs"),)))
        before = snapshot(seeded.dags)
        result = _sync(seeded, api)
        assert list(elsewhere.headers_seen("x-api-key")) == [None] * elsewhere.count()
    assert result.returncode in (0, 75), result.explain()
    if result.returncode == 75:  # redirects refused
        assert "answered HTTP 302 for the workflow list" in _one_error(result)
    assert_kept(before, snapshot(seeded.dags))


# -- watch -------------------------------------------------------------------------------------------
def test_watch_survives_an_api_that_is_down_at_start_and_flaps(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault("watch: API down at start")
    fault("watch: API fails between syncs (503, malformed, slow)")
    api.serve_workflows(WORKFLOWS)
    api.stop()
    proc = sandbox.popen(
        "watch",
        DAGFLEET_API_URL=api.url,
        DAGFLEET_API_KEY=KEY,
        DAGFLEET_SYNC_INTERVAL="0.2",
        DAGFLEET_READ_TIMEOUT="0.5",
    )
    try:
        # The first sync has run (status.json is written after every attempt) and failed: the API is down.
        _wait_for(lambda: (sandbox.dags / ".dagfleet" / "status.json").exists() or proc.poll() is not None)
        assert proc.poll() is None, "watch died while the API was down"
        assert dag_files(sandbox.dags) == []
        api.start()
        # The whole sync, not only its DAG files: it publishes a version after them (a snapshot
        # taken in between saw the version's files appear "during" the next, failing, sync).
        _wait_for(lambda: FleetStore(sandbox.dags).status().get("outcome") == "synced")
        assert dag_files(sandbox.dags) == ["alpha-mydag.py", "beta-mydag.py"]
        before = snapshot(sandbox.dags)
        for behaviour in (Behaviour.json({}, 503), Behaviour.raw("[oops"), Behaviour.hang(5), Behaviour.html()):
            api.set("/airflowconfigs", behaviour)
            seen = api.count("/airflowconfigs")
            _wait_for(lambda seen=seen: api.count("/airflowconfigs") >= seen + 2)
            assert proc.poll() is None
            assert_kept(before, snapshot(sandbox.dags))
        api.serve_workflows({"beta": {}, "gamma": {}})
        _wait_for(lambda: dag_files(sandbox.dags) == ["beta-mydag.py", "gamma-mydag.py"])
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    assert KEY not in stderr
    assert "is unreachable (connection failed)" in stderr
    for message in ("answered HTTP 503", "malformed JSON", "did not answer the workflow list within 0.5s", "text/html"):
        assert message in stderr
    assert "received SIGTERM, stopping" in stderr
    assert_tidy(sandbox.dags)


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
