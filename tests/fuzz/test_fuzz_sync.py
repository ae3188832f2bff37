"""Property-based fuzzing of `dagfleet sync` (Hypothesis), judged by an independent model.

Each example is a seeding sync (three good workflows, whose DAGs must then exist) and a few
rounds. Every round Hypothesis makes up what the config API answers — the list format, IDs
(good, duplicated, differing in case only, colliding with a user's own DAG file, malicious, not
strings), configs (valid, wrong types, unknown fields, strict booleans, huge numbers, 5,000-deep
nesting, non-finite numbers, param schemas with patterns and `$ref`s, template specs checked
through a local `$ref`), per-workflow failures, and HTTP faults on the list request itself — and
the fault server on loopback serves it as raw JSON text. Then the real ``dagfleet sync`` runs
in-process (``dagfleet.service.cli.main``, the CLI's code path), and after every round:

- safety: no traceback, nothing written outside the dags folder, a file dagfleet did not create
  never changed nor claimed; when the list request fails, every DAG, record and the manifest are
  byte for byte as they were (exit 75);
- progress (``support.oracle``, a model written from docs/config.md and docs/openapi.yaml that
  imports none of dagfleet's validators or parsers): the exit code is the model's; every workflow
  the model says is valid is present with exactly the config sent and its template; every one it
  says is invalid is absent or kept at its last known good; every workflow no longer listed is
  pruned; the counts of the summary line and of ``dagfleet status --json`` are the model's.

``DAGFLEET_FUZZ_EXAMPLES`` examples (default 200, derandomized: the same examples every run, as
``make test`` runs them); ``make fuzz`` runs 1,000 random ones (``DAGFLEET_FUZZ_DERANDOMIZE=false``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagfleet.fleet.settings import SHIPPED_TEMPLATES
from dagfleet.fleet.store import FleetStore
from dagfleet.service import cli
from support import oracle
from support.faultserver import Behaviour, FaultServer, config_path, etag_of
from support.net import free_port
from support.oracle import Raw, canonical, encode
from support.sandbox import template_body

EXAMPLES = int(os.environ.get("DAGFLEET_FUZZ_EXAMPLES", "200"))
DERANDOMIZE = os.environ.get("DAGFLEET_FUZZ_DERANDOMIZE", "true").lower() != "false"
KEY = "fuzz-key-5e6f7a8b9c"
USER_FILES = {"user-mydag.py": b"# the user's own DAG, named like workflow 'user'\n", "handmade.py": b"# mine\n"}
SEED = {"alpha": {"tags": ["start"]}, "beta": {}, "gamma": {"schedule": "@daily"}}
SUFFIX = "-mydag.py"  # README: a workflow's DAG is `<id>-mydag.py`
SHIPPED_DEMO = SHIPPED_TEMPLATES / "demo.py"

# -- what the config API answers ----------------------------------------------------------------
GOOD_IDS = ["alpha", "beta", "gamma", "Alpha", "user", "d.e-f_1", "x" * 200]
HOSTILE_IDS = ["../escape", "/abs", "a/b", "..", "", "a..b", "nul\x00", "ok\nforged", "\u0430lpha", "x" * 201, "-rf"]
DEEP = Raw("[" * 5000 + "]" * 5000, beyond_limits=True)
HUGE = Raw("9" * 5000, beyond_limits=True)
BIG = Raw("1" + "0" * 120, beyond_limits=True)
NAN = Raw("NaN", non_finite=True)
INF = Raw("Infinity", non_finite=True)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.sampled_from([DEEP, HUGE, BIG, NAN, INF]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
durations = st.one_of(
    st.integers(min_value=-10, max_value=10**40),
    st.fixed_dictionaries({"days": st.integers(min_value=0, max_value=2 * 10**9)}),
    st.sampled_from(["PT5M", "P999999999999D", "soon", {"weeks": 1}, {"minutes": 5}, {}, NAN, INF, BIG]),
    json_values,
)
DEAD_URL = f"http://127.0.0.1:{free_port()}/x"  # nothing listens: a schema that fetched it would fail


def schema_refs_and_patterns() -> st.SearchStrategy[dict[str, Any]]:
    """Params whose schemas hold a pattern or a `$ref`, and template specs checked through a
    local `$ref` with a pattern: only clear-cut cases (issue #23's rules, ``oracle.ref_verdict``)."""
    pattern = st.fixed_dictionaries(
        {
            "default": st.sampled_from(["abc", "zz", "ABC", "a1"]),
            "type": st.just("string"),
            "pattern": st.just("^[a-z]+$"),
        }
    )
    minimum = st.fixed_dictionaries(
        {"default": st.sampled_from([0, 1, 100]), "type": st.just("integer"), "minimum": st.just(1)}
    )
    refused = st.fixed_dictionaries(
        {"default": st.just(["a"]), "type": st.just("array"),
         "items": st.sampled_from([{"$ref": DEAD_URL}, {"$ref": "file:///etc/hostname"}])}
    )  # fmt: skip
    params = st.dictionaries(
        st.sampled_from(["code", "limit", "names"]), pattern | minimum | refused, min_size=1, max_size=2
    )
    spec = st.sampled_from([json.loads(text) for text in oracle.FUZZT_SPEC])
    return st.one_of(
        st.fixed_dictionaries({"params": params}),
        st.fixed_dictionaries({"template": st.just("fuzzt"), "spec": spec}),
        st.fixed_dictionaries({"template": st.sampled_from(["fuzzt", "demo", "no_such_template"]), "spec": spec}),
    )


valid_configs = st.fixed_dictionaries(
    {},
    optional={
        "schedule": st.sampled_from([None, "@daily", "0 3 * * *", {"hours": 6}, "PT30M"]),
        "catchup": st.booleans(),
        "tags": st.lists(st.text(min_size=1, max_size=10), max_size=3),
        "default_args": st.fixed_dictionaries({"retries": st.integers(0, 5)}),
        "items": st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
        "description": st.text(max_size=30),
    },
)
FIELDS = ["schedule", "catchup", "tags", "items", "params", "pod", "max_items", "colour"]
hostile_configs = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=3),
    st.fixed_dictionaries({"catchup": st.sampled_from(["yes", "true", 1, 0, "no", None])}),
    st.fixed_dictionaries({"default_args": st.fixed_dictionaries({"retry_delay": durations})}),
    st.fixed_dictionaries({"schedule": st.one_of(durations, st.sampled_from(["soon", "* * *", "@sometimes"]))}),
    st.fixed_dictionaries({"items": st.sampled_from([["a", "a"], ["bad name"], ["x" * 64], ["ok", "fine"]])}),
    st.fixed_dictionaries({"params": st.fixed_dictionaries({"p": json_values})}),
    st.fixed_dictionaries({"pod": st.fixed_dictionaries({"image": st.just("busybox"), "per_item": json_values})}),
    schema_refs_and_patterns(),
    json_values,  # not even an object
)
configs = st.one_of(valid_configs, valid_configs, hostile_configs)
ids = st.one_of(st.sampled_from(GOOD_IDS), st.sampled_from(GOOD_IDS), st.sampled_from(HOSTILE_IDS), st.text(max_size=8))
list_junk = st.one_of(st.integers(), st.none(), st.just(HUGE), st.just(DEEP))
per_workflow_fault = st.sampled_from([None, None, None, "500", "malformed", "html", "null", "close"])
# HTTP faults on the list request itself (DAGFLEET_RETRIES=1: one failed attempt fails the sync).
LIST_FAULTS = {
    "500": Behaviour.json({"error": "boom"}, status=500),
    "503": Behaviour.json({"error": "busy"}, status=503),
    "401": Behaviour.json({"error": "wrong key"}, status=401),
    "close": Behaviour.close(),
    "reset": Behaviour.reset(),
    "html": Behaviour.html(),
    "truncated": Behaviour.raw('["alpha", "beta", "gamma", "delta"]', truncate_at=12),
    "not-json": Behaviour.raw("[\"alpha\", 'beta']"),
}
LIST_GARBAGE = [DEEP, HUGE, Raw('{"workflows": ' + DEEP.text + "}"), Raw("null"), Raw('{"a": 1}'), Raw("5")]


@dataclass
class Answer:
    """One round of the config API: the list (or a fault in its place) and, by ID, each config."""

    list_text: str | None = None  # None: the list request fails (``fault``)
    fault: str | None = None
    objects: bool = True
    entries: list[tuple[Any, Any, str | None]] = field(default_factory=list)  # (id, config, per-workflow fault)
    junk: list[Any] = field(default_factory=list)


@st.composite
def rounds(draw: st.DrawFn) -> Answer:
    kind = draw(st.sampled_from(["list"] * 8 + ["fault", "garbage"]))
    if kind == "fault":
        return Answer(fault=draw(st.sampled_from(sorted(LIST_FAULTS))))
    if kind == "garbage":
        return Answer(list_text=draw(st.sampled_from(LIST_GARBAGE)).text, fault="garbage")
    entries = draw(st.lists(st.tuples(ids, configs, per_workflow_fault), max_size=8))
    junk = draw(st.lists(list_junk, max_size=2))
    objects = draw(st.booleans())
    answer = Answer(objects=objects, entries=entries, junk=junk)
    if objects:
        listing: list[Any] = [{"id": wid, "config": config} for wid, config, _ in entries] + junk
    else:
        listing = [wid for wid, _, _ in entries] + junk
    wrapped = draw(st.sampled_from([False, False, False, True]))
    answer.list_text = encode({"workflows": listing} if wrapped else listing)
    return answer


def _behaviour(text: str, fault: str | None) -> Behaviour:
    if fault == "500":
        return Behaviour.json({"error": "boom"}, status=500)
    if fault == "malformed":
        return Behaviour.raw(text[: len(text) // 2] + "{")
    if fault == "html":
        return Behaviour.html()
    if fault == "null":
        return Behaviour.raw("null")
    if fault == "close":
        return Behaviour.close()
    return Behaviour.raw(text, etag=etag_of(text.encode()))


# -- what the model expects of a round ------------------------------------------------------------
@dataclass
class Expected:
    code: int
    stored: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (config, template): must be present
    refused: set[str] = field(default_factory=set)  # listed, invalid: last known good or nothing
    undecided: dict[str, str] = field(default_factory=dict)  # id -> config sent: that or the last known good
    pruned: set[str] = field(default_factory=set)
    untouched: set[str] = field(default_factory=set)  # not listed, yet not pruned: exactly as before


def expect(answer: Answer, before: dict[str, tuple[str, str]], generated: set[str]) -> Expected:
    """The model's verdict on one round, given the workflows present before it (``generated``:
    those with a DAG file, a new invalid workflow's included, which has no config stored)."""
    failed = Expected(code=75 if generated else 69)  # the last known good set stays as it was, or none
    if answer.fault is not None:
        return failed
    if not answer.entries and any(isinstance(j, Raw) for j in answer.junk):
        return failed  # an entry beyond a limit and no workflow entry at all: the list cannot be read
    wrapped = (answer.list_text or "").lstrip().startswith("{")
    inline = [c for _, c, _ in answer.entries] if answer.objects else []
    if wrapped and not oracle.within_limits([*answer.junk, *inline], 0):
        # Approximation (docs/openapi.yaml says an entry beyond a limit rejects that entry alone): a
        # `{"workflows": [...]}` list is read whole, so one entry beyond a limit fails the list.
        return failed
    levels = 1 + wrapped  # the list's own levels
    listed = [wid for wid, _, _ in answer.entries]
    folded = [wid.lower() for wid in listed if oracle.id_valid(wid)]
    usable = [w for w in listed if oracle.id_valid(w) and folded.count(w.lower()) == 1 and w + SUFFIX not in USER_FILES]
    if not usable and len(set(folded)) == len(folded) and generated:
        # No workflow the list could make a DAG of: an empty list, which prunes nothing.
        return Expected(code=75)
    expected = Expected(code=0)
    for wid, config, fault in answer.entries:
        if wid not in usable:
            if isinstance(wid, str) and wid in before:
                expected.refused.add(wid)
            continue
        fault = None if answer.objects else fault  # inline configs are not fetched
        verdict = oracle.config_verdict(config, levels + 1 if answer.objects else 0) if fault is None else False
        if answer.objects and config is None:
            verdict = None  # `"config": null`: the docs do not say whether that is `{}`
        if verdict is True and any(other.lower() == wid.lower() and other != wid for other in generated):
            verdict = None  # renamed in case only: the docs do not say in which order
        template = config.get("template") if isinstance(config, dict) else None
        if verdict is True:
            expected.stored[wid] = (canonical(config), template or "demo")
        elif verdict is False:
            expected.refused.add(wid)
        else:
            expected.undecided[wid] = canonical(config) if isinstance(config, dict) else ""
    unlisted = {wid for wid in generated if wid not in listed}
    if any(isinstance(j, Raw) for j in answer.junk):  # an entry whose ID cannot be read: nothing is pruned
        expected.untouched = unlisted
    else:
        expected.pruned = unlisted
    return expected


# -- running a sync ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _environment(values: dict[str, str], cwd: Path) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    old_cwd = Path.cwd()
    os.environ.update(values)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_cli(root: Path, url: str, *args: str) -> tuple[int, str]:
    """A ``dagfleet`` command in this process: its exit code and everything it printed."""
    env = {
        "DAGFLEET_API_URL": url,
        "DAGFLEET_API_KEY": KEY,
        "DAGFLEET_DAGS_FOLDER": str(root / "dags"),
        "DAGFLEET_TEMPLATES": str(root / "templates"),
        "DAGFLEET_RETRIES": "1",
        "DAGFLEET_CONNECT_TIMEOUT": "1",
        "DAGFLEET_READ_TIMEOUT": "2",
        "HOME": str(root / "home"),
    }
    out = io.StringIO()
    with _environment(env, root / "cwd"), contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        code = cli.main(list(args))  # an exception here is a traceback for the user: the test fails
    return code, out.getvalue()


def present(root: Path) -> dict[str, tuple[str, str]]:
    """Workflows with a generated DAG (in the manifest) and a record: ``{id: (config, template)}``,
    after checking that the DAG is its template's bytes plus the trailer."""
    dags = root / "dags"
    store = FleetStore(dags)
    found = {}
    for name, workflow_id in store.manifest().items():
        record = store.record(workflow_id)
        if record is None or not (dags / name).is_file():
            continue
        template = (root / "templates" / f"{record.template}.py").read_bytes()
        assert template_body((dags / name).read_bytes()) == template, f"{name} is not a copy of {record.template}"
        found[workflow_id] = (canonical(record.config), record.template)
    return found


def snapshot(dags: Path) -> dict[str, bytes]:
    """Every DAG, record and the manifest (not the status, which records every sync)."""
    files = [p for p in dags.rglob("*") if p.is_file() and p.parent.name != "tmp"]
    keep = [p for p in files if p.name not in ("status.json", "state.json", "lock")]
    return {str(p.relative_to(dags)): p.read_bytes() for p in keep}


def check_safety(root: Path, code: int, log: str) -> None:
    dags = root / "dags"
    assert "Traceback" not in log, log
    assert sorted(p.name for p in root.iterdir()) == ["cwd", "dags", "home", "templates"]
    assert list((root / "cwd").iterdir()) == [] and list((root / "home").iterdir()) == []
    for name, data in USER_FILES.items():
        assert (dags / name).read_bytes() == data, f"the user's {name} was changed"
    owned = FleetStore(dags).manifest()
    assert not set(owned) & set(USER_FILES), "a user's file was claimed in the manifest"
    top = {p.name for p in dags.iterdir()} - {".dagfleet", *USER_FILES}
    assert top <= set(owned), f"files in the dags folder that the manifest does not list: {top - set(owned)}"


def check_progress(root: Path, expected: Expected, before: dict[str, tuple[str, str]], code: int, log: str) -> None:
    after = present(root)
    assert code == expected.code, f"exit {code}, the model says {expected.code}\n{log}"
    for wid, sent in expected.stored.items():
        assert after.get(wid) == sent, f"valid workflow {wid!r}: stored {after.get(wid)}, sent {sent}\n{log}"
    for wid in expected.refused:
        assert after.get(wid) in (None, before.get(wid)), f"invalid workflow {wid!r} was stored\n{log}"
    for wid, sent in expected.undecided.items():
        got = after.get(wid)
        assert got is None or got == before.get(wid) or got[0] == sent, f"{wid!r}: a config nobody sent\n{log}"
    for wid in expected.pruned:
        assert wid not in after and not (root / "dags" / f"{wid}-mydag.py").exists(), f"{wid!r} not pruned\n{log}"
    for wid in expected.untouched:
        assert after.get(wid) == before.get(wid), f"{wid!r} changed although nothing may be pruned\n{log}"


SUMMARY = re.compile(r"synced (\d+) workflow\(s\) from \S+: (\d+) written, (\d+) config updated, (\d+) unchanged, "
                     r"(\d+) pruned, (\d+) rejected")  # fmt: skip


def check_counts(root: Path, url: str, expected: Expected, before: dict[str, tuple[str, str]], log: str) -> None:
    """The summary line and ``dagfleet status --json`` count what the model counts."""
    _, text = run_cli(root, url, "status", "--json")
    status = json.loads(text[text.index("{") :])
    counts = status["counts"]
    if expected.code == 69:
        assert "nothing usable: no DAGs were generated" in log, log
        return
    if expected.code == 75:
        generated = len(FleetStore(root / "dags").manifest())
        assert f"kept the last known good set of {generated} workflow(s) untouched" in log, log
        assert status["outcome"] == "kept_last_known_good"
        return
    found = SUMMARY.search(log)
    assert found is not None, log
    written, updated, unchanged, pruned = (int(n) for n in found.groups()[1:5])
    assert pruned == counts["pruned"] == len(expected.pruned), (counts, expected.pruned, log)
    assert len(expected.stored) <= counts["synced"] <= len(expected.stored) + len(expected.undecided), (counts, log)
    assert written + updated + unchanged >= len(expected.stored), log


# -- the test --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as api:
        yield api


def new_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    for folder in ("cwd", "home", "dags", "templates"):
        (root / folder).mkdir()
    for name, data in USER_FILES.items():
        (root / "dags" / name).write_bytes(data)
    demo = SHIPPED_DEMO.read_bytes()
    (root / "templates" / "demo.py").write_bytes(demo)
    (root / "templates" / "fuzzt.py").write_bytes(demo)
    (root / "templates" / "fuzzt.schema.json").write_text(json.dumps(oracle.FUZZT_SCHEMA))
    return root


def serve(server: FaultServer, answer: Answer) -> None:
    server.clear()
    if answer.list_text is None:
        server.set("/airflowconfigs", LIST_FAULTS[answer.fault or "500"])
        return
    server.set("/airflowconfigs", Behaviour.raw(answer.list_text, etag=f'"{os.urandom(8).hex()}"'))
    if answer.objects:
        return
    for wid, config, fault in answer.entries:
        if isinstance(wid, str):
            server.set(config_path(wid), _behaviour(encode(config), fault))


@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,  # CI: the same examples every run
    deadline=None,  # no timed assertions: a slow shared machine is not a failure
    database=None,  # write nothing into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(answers=st.lists(rounds(), min_size=1, max_size=4))
def test_sync_makes_progress_and_stays_safe_whatever_the_api_answers(
    server: FaultServer, tmp_path_factory: pytest.TempPathFactory, answers: list[Answer]
) -> None:
    root = new_root(tmp_path_factory)
    server.clear()
    server.serve_workflows(SEED)
    code, log = run_cli(root, server.url, "sync")
    assert code == 0, log
    assert present(root) == {wid: (canonical(config), "demo") for wid, config in SEED.items()}, log
    for answer in answers:
        before = present(root)
        files = snapshot(root / "dags")
        serve(server, answer)
        expected = expect(answer, before, set(FleetStore(root / "dags").manifest().values()))
        code, log = run_cli(root, server.url, "sync")
        log = f"{log}\nround {answers.index(answer) + 1}: {answer!r:.3000}"
        check_safety(root, code, log)
        check_progress(root, expected, before, code, log)
        if expected.code != 0:
            assert snapshot(root / "dags") == files, f"a failed list changed the last known good set\n{log}"
        check_counts(root, server.url, expected, before, log)
