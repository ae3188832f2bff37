"""Property-based fuzzing of `dagfleet sync` (Hypothesis): hostile workflow lists and configs.

Each example is a few rounds. Every round Hypothesis makes up what the config API answers — the
list format, IDs (good, duplicated, differing in case only, colliding with a user's own DAG file,
malicious, not strings), configs (valid, wrong types, unknown fields, huge numbers, 5,000-deep
nesting, non-finite numbers), per-workflow failures, or list-level garbage — and the fault server
on loopback serves it as raw JSON text. Then the real ``dagfleet sync`` command runs (in-process:
``dagfleet.cli.main``; the same code path as the CLI, without a second of start-up per round), and
after every round these must hold:

- no traceback (nothing escapes ``main``, nothing printed), the exit code is 0, 69 or 75;
- every workflow that had a good DAG and config keeps a DAG and a valid config: the one it had, or
  the new one the API sent (when it is still listed, or the round kept the last known good set);
- nothing is written outside the dags folder; a file dagfleet did not create (the user's own DAG
  files, among them one named like a workflow's) is never changed or deleted, nor listed in the
  manifest; the dags folder holds nothing else but generated DAGs and ``.dagfleet/``.

``make test`` runs a bounded number of examples (``DAGFLEET_FUZZ_EXAMPLES``, default 20);
``make fuzz`` runs many more.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagfleet import cli
from dagfleet.config import validate_config
from dagfleet.jsonlimits import find_id, split_array
from dagfleet.store import FleetStore
from support.faultserver import Behaviour, FaultServer, config_path, etag_of
from support.sandbox import template_body

EXAMPLES = int(os.environ.get("DAGFLEET_FUZZ_EXAMPLES", "20"))
EXIT_CODES = {0, 69, 75}
KEY = "fuzz-key-5e6f7a8b9c"
USER_FILES = {"user-mydag.py": b"# the user's own DAG, named like workflow 'user'\n", "handmade.py": b"# mine\n"}


@dataclass(frozen=True)
class Raw:
    """JSON text put into an answer as it is (what Python's encoder cannot or would not write)."""

    text: str


def encode(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(encode(v) for v in value) + "]"
    return json.dumps(value)  # NaN and Infinity included, as a sloppy API sends them


# -- what the config API answers ----------------------------------------------------------------
GOOD_IDS = ["alpha", "beta", "gamma", "Alpha", "user", "d.e-f_1", "x" * 200]
HOSTILE_IDS = ["../escape", "/abs", "a/b", "..", "", "a..b", "nul\x00", "ok\nforged", "\u0430lpha", "x" * 201, "-rf"]
DEEP = Raw("[" * 5000 + "]" * 5000)
HUGE = Raw("9" * 5000)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.sampled_from([DEEP, HUGE, Raw("Infinity"), Raw("NaN"), Raw("1" + "0" * 120)]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
durations = st.one_of(
    st.integers(min_value=-10, max_value=10**40),
    st.fixed_dictionaries({"days": st.integers(min_value=0, max_value=2 * 10**9)}),
    st.sampled_from(["PT5M", "P999999999999D", "soon", {"weeks": 1}, {}]),
    json_values,
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
    st.fixed_dictionaries({"schedule": durations}),
    st.fixed_dictionaries({"params": st.fixed_dictionaries({"p": json_values})}),
    st.fixed_dictionaries({"pod": st.fixed_dictionaries({"image": st.just("busybox"), "per_item": json_values})}),
    json_values,  # not even an object
)
configs = st.one_of(valid_configs, valid_configs, hostile_configs)
ids = st.one_of(st.sampled_from(GOOD_IDS), st.sampled_from(GOOD_IDS), st.sampled_from(HOSTILE_IDS), st.text(max_size=8))
list_junk = st.one_of(
    st.integers(), st.none(), st.just(HUGE), st.just(DEEP), st.fixed_dictionaries({"config": configs})
)
per_workflow_fault = st.sampled_from([None, None, None, "500", "malformed", "html", "null", "close"])


@st.composite
def rounds(draw: st.DrawFn) -> dict[str, Any]:
    """One answer of the config API: the list body and, for the ID-list format, each config's."""
    garbage = draw(st.sampled_from([None] * 8 + [DEEP, HUGE, Raw('{"workflows": ' + DEEP.text + "}"), Raw("null")]))
    if garbage is not None:
        return {"list": garbage.text, "configs": {}}
    entries = draw(st.lists(st.tuples(ids, configs, per_workflow_fault), max_size=8))
    junk = draw(st.lists(list_junk, max_size=2))
    if draw(st.booleans()):  # objects: every config inline
        listing: list[Any] = [{"id": wid, "config": config} for wid, config, _ in entries] + junk
        return {"list": encode(listing), "configs": {}}
    listing = [wid for wid, _, _ in entries] + junk
    served = {wid: (encode(config), fault) for wid, config, fault in entries}
    return {"list": encode(listing), "configs": served}


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


def run_sync(root: Path, url: str) -> tuple[int, str]:
    """``dagfleet sync`` in this process: its exit code and everything it logged."""
    env = {
        "DAGFLEET_API_URL": url,
        "DAGFLEET_API_KEY": KEY,
        "DAGFLEET_DAGS_FOLDER": str(root / "dags"),
        "DAGFLEET_RETRIES": "1",
        "DAGFLEET_CONNECT_TIMEOUT": "1",
        "DAGFLEET_READ_TIMEOUT": "2",
        "HOME": str(root / "home"),
    }
    err = io.StringIO()
    with _environment(env, root / "cwd"), contextlib.redirect_stderr(err), contextlib.redirect_stdout(err):
        code = cli.main(["sync"])  # an exception here is a traceback for the user: the test fails
    return code, err.getvalue()


def good_workflows(dags: Path) -> dict[str, tuple[str, str]]:
    """Workflows with a DAG and a valid stored config: ``{id: (template digest, config digest)}``.

    The template digest is that of the DAG file without its trailer line (which follows the config)."""
    store = FleetStore(dags)
    good = {}
    for name, workflow_id in (store.manifest() if dags.exists() else {}).items():
        dag, record = dags / name, store.record(workflow_id)
        if not (dag.is_file() and record is not None):
            continue
        with contextlib.suppress(Exception):
            validate_config(workflow_id, record.config)
            body = hashlib.sha256(template_body(dag.read_bytes())).hexdigest()
            good[workflow_id] = (body, hashlib.sha256(_canonical(record.config).encode()).hexdigest())
    return good


_UNUSABLE = object()


def _tolerant(text: str) -> Any:
    """Parse what Python can (huge integers become inf), else ``_UNUSABLE``."""
    try:
        return json.loads(text, parse_int=lambda digits: int(digits) if len(digits) < 4000 else float("inf"))
    except (ValueError, RecursionError):
        return _UNUSABLE


def listed_configs(answer: dict[str, Any]) -> dict[str, list[str]] | None:
    """``{id: [each config the API sent for it, as canonical JSON]}`` (None: no list at all)."""
    elements = split_array(answer["list"])
    if elements is None:
        return None
    sent: dict[str, list[str]] = {}
    for element in elements:
        item = _tolerant(element)
        if item is _UNUSABLE:
            if (found := find_id(element)) is not None:
                sent.setdefault(found, [])  # listed, with nothing that could be stored
            continue
        if isinstance(item, str):
            workflow_id, (text, fault) = item, answer["configs"].get(item, ("null", "none served"))
            config = _tolerant(text) if fault is None else _UNUSABLE
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            workflow_id, config = item["id"], item.get("config")
        else:
            continue
        sent.setdefault(workflow_id, [])
        if isinstance(config, dict):
            sent[workflow_id].append(_canonical(config))
    return sent


def _canonical(config: Any) -> str:
    return json.dumps(config, sort_keys=True)


def check_round(root: Path, before: dict[str, tuple[str, str]], answer: dict[str, Any], code: int, log: str) -> None:
    dags = root / "dags"
    assert "Traceback" not in log, log
    assert code in EXIT_CODES, log
    # Nothing outside the dags folder; the user's files untouched and never claimed.
    assert sorted(p.name for p in root.iterdir()) == ["cwd", "dags", "home"]
    assert list((root / "cwd").iterdir()) == [] and list((root / "home").iterdir()) == []
    for name, data in USER_FILES.items():
        assert (dags / name).read_bytes() == data, f"the user's {name} was changed"
    owned = FleetStore(dags).manifest()
    assert not set(owned) & set(USER_FILES), "a user's file was claimed in the manifest"
    top = {p.name for p in dags.iterdir()} - {".dagfleet", *USER_FILES}
    assert top <= set(owned), f"files in the dags folder that the manifest does not list: {top - set(owned)}"
    # Every workflow that was good keeps a DAG and a valid config: its own, or the new one sent.
    after = good_workflows(dags)
    sent = listed_configs(answer)
    for workflow_id, (dag_digest, config_digest) in before.items():
        still_listed = sent is not None and workflow_id in sent
        if code == 0 and sent is not None and not still_listed:
            continue  # removed from the list: pruning it is right
        assert workflow_id in after, f"workflow {workflow_id!r} lost its DAG or its good config\n{log}"
        new_dag, new_config = after[workflow_id]
        assert new_dag == dag_digest, f"the DAG of {workflow_id!r} changed (its template part)"
        if new_config != config_digest:
            record = FleetStore(dags).record(workflow_id)
            assert record is not None
            stored = _canonical(record.config)
            assert sent is not None and stored in sent.get(workflow_id, []), f"{workflow_id!r}: a config nobody sent"


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as api:
        yield api


@settings(
    max_examples=EXAMPLES,
    deadline=None,  # no timed assertions: a slow shared machine is not a failure
    database=None,  # write nothing into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(answers=st.lists(rounds(), min_size=1, max_size=4))
def test_sync_invariants_hold_whatever_the_api_answers(
    server: FaultServer, tmp_path_factory: pytest.TempPathFactory, answers: list[dict[str, Any]]
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    for folder in ("cwd", "home", "dags"):
        (root / folder).mkdir()
    for name, data in USER_FILES.items():
        (root / "dags" / name).write_bytes(data)
    # A known good start: some workflows with good configs.
    server.clear()
    server.serve_workflows({"alpha": {"tags": ["start"]}, "beta": {}, "gamma": {"schedule": "@daily"}})
    code, log = run_sync(root, server.url)
    assert code == 0, log
    for answer in answers:
        before = good_workflows(root / "dags")
        server.clear()
        server.set("/airflowconfigs", Behaviour.raw(answer["list"], etag=etag_of(answer["list"].encode())))
        for workflow_id, (text, fault) in answer["configs"].items():
            server.set(config_path(workflow_id), _behaviour(text, fault))
        code, log = run_sync(root, server.url)
        check_round(root, before, answer, code, log)
