"""Issue 23: config data and template schemas that try to make dagfleet read files, call URLs or
work without bound, and a ``Retry-After`` that is no number.

Every case runs the real ``dagfleet`` command in a sandbox against the fault server on loopback.
Around it: a *recorder* (a second fault server: any request it sees is a fetch that must not
happen), a *tarpit* (accepts connections, never answers) and a *sentinel* file (its content must
appear nowhere: output, status.json, records, DAG files). Each test fails on the code before #23
(its docstring says how); a hang there is caught by the subprocess timeout, never by a timed
assertion here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dagfleet.fleet.store import FleetStore
from support.faultserver import LIST_PATH, Behaviour, FaultServer
from support.net import SilentServer
from support.paths import REPO
from support.proc import run
from support.sandbox import Result, Sandbox
from support.wait import wait_until

KEY = "schema-key-3e9d1c7a"
SENTINEL = "sentinel-4f0a9c-must-not-leak"
EVIL = "^(a+)+$"  # catastrophic for a backtracking engine
VALUE = "a" * 50_000 + "!"  # 50 KB that the pattern does not match
LINE_BOUND = 10_000  # characters of any log line (docs/config.md: "Errors")
STATUS_BOUND = 64_000  # bytes of status.json for these few workflows
DEMO = REPO / "dags" / "demo.py"


@dataclass
class Traps:
    recorder: FaultServer
    tarpit: SilentServer
    sentinel: Path

    def refs(self) -> dict[str, str]:
        """name -> a ``$ref`` that, followed, reads the sentinel or calls a loopback listener."""
        return {
            "http": f"{self.recorder.url}/schema.json",
            "file": self.sentinel.as_uri(),
            "tarpit": f"{self.tarpit.url}/schema.json",
            "relative": "schema.json",
        }

    def assert_untouched(self) -> None:
        assert self.recorder.requests == [], [r.path for r in self.recorder.requests]
        self.tarpit.sock.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing is waiting to be accepted: nobody connected
            self.tarpit.sock.accept()


@pytest.fixture
def traps(tmp_path: Path) -> Iterator[Traps]:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    sentinel = inputs / "secret.json"
    sentinel.write_text(json.dumps({"const": SENTINEL}))
    tarpit = SilentServer()
    with FaultServer(default=Behaviour.json({"const": "from-the-recorder"})) as recorder:
        yield Traps(recorder, tarpit, sentinel)
    tarpit.close()


def _sync(box: Sandbox, api: FaultServer, *command: str, timeout: float = 60, **env: Any) -> Result:
    result = box.run(*(command or ("sync",)), timeout=timeout, DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY, **env)
    assert "Traceback" not in result.output, result.explain()
    assert KEY not in result.output
    return result


def _assert_nowhere(box: Sandbox, result: Result, text: str) -> None:
    assert text not in result.output
    for path in box.dags.rglob("*"):
        if path.is_file():
            assert text.encode() not in path.read_bytes(), path


def _line_for(result: Result, workflow_id: str, *parts: str) -> str:
    lines = [line for line in result.output.splitlines() if f"workflow {workflow_id!r}" in line]
    found = [line for line in lines if all(part in line for part in parts)]
    assert found, f"no line for {workflow_id} with {parts}:\n{result.explain()}"
    return found[0]


def _param_ref(ref: str) -> dict[str, Any]:
    return {"params": {"p": {"default": ["x"], "type": "array", "items": {"$ref": ref}}}}


def test_refs_in_param_schemas_read_and_fetch_nothing(
    sandbox: Sandbox, api: FaultServer, traps: Traps, fault: Callable[..., None]
) -> None:
    """Before #23: the http ref was fetched (the recorder saw a GET), the file ref read the
    sentinel and quoted it in the line and in status.json, the tarpit hung the whole sync."""
    refs = traps.refs()
    workflows: dict[str, Any] = {f"ref_{name}": _param_ref(ref) for name, ref in refs.items()}
    workflows["ref_dynamic"] = {"params": {"p": {"default": [1], "items": {"$dynamicRef": refs["http"]}}}}
    workflows["ref_id"] = {"params": {"p": {"default": [1], "items": {"$id": refs["http"], "type": "string"}}}}
    workflows["ref_local"] = {"params": {"p": {"default": [1], "items": {"$ref": "#"}}}}
    workflows["good"] = {}
    for name in workflows:
        fault(f"param schema: {name}")
    api.serve_workflows(workflows)
    result = _sync(sandbox, api)
    assert result.returncode == 0, result.explain()
    traps.assert_untouched()
    _assert_nowhere(sandbox, result, SENTINEL)
    assert (sandbox.dags / "good-mydag.py").exists()
    for name, ref in refs.items():
        _line_for(result, f"ref_{name}", "params.p.items.$ref", ref[:100], "is not inside this schema")
    _line_for(result, "ref_dynamic", "params.p.items.$dynamicRef")
    _line_for(result, "ref_id", "params.p.items.$id", "not allowed in a param schema")
    _line_for(result, "ref_local", "params.p.items.$ref", "is not allowed in a param schema")


def _template(folder: Path, name: str, schema: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO, folder / f"{name}.py")
    (folder / f"{name}.schema.json").write_text(json.dumps(schema))


def test_refs_in_template_schemas_read_and_fetch_nothing(
    tmp_path: Path, sandbox: Sandbox, api: FaultServer, traps: Traps, fault: Callable[..., None]
) -> None:
    """Before #23 the template schema's http ref was fetched and the file ref read."""
    templates = tmp_path / "inputs" / "templates"
    workflows: dict[str, Any] = {"good": {}}
    for name, ref in traps.refs().items():
        _template(templates, f"t_{name}", {"type": "object", "properties": {"a": {"$ref": ref}}})
        workflows[f"uses_{name}"] = {"template": f"t_{name}", "spec": {"a": "x"}}
        fault(f"template schema: {name}")
    shutil.copyfile(DEMO, templates / "demo.py")
    api.serve_workflows(workflows)
    result = _sync(sandbox, api, DAGFLEET_TEMPLATES=templates)
    assert result.returncode == 0, result.explain()
    traps.assert_untouched()
    _assert_nowhere(sandbox, result, SENTINEL)
    assert (sandbox.dags / "good-mydag.py").exists()
    for name in traps.refs():
        _line_for(result, f"uses_{name}", f"t_{name}", "properties.a.$ref", "is not inside this schema")


def test_validate_reads_and_fetches_nothing(tmp_path: Path, sandbox: Sandbox, traps: Traps) -> None:
    """``dagfleet validate --file``: the same refusals, exit 1, nothing fetched or read."""
    workflows = {f"ref_{name}": _param_ref(ref) for name, ref in traps.refs().items()}
    workflows["redos"] = {"params": {"p": {"type": "string", "pattern": EVIL, "default": VALUE}}}
    file = tmp_path / "inputs" / "workflows.json"  # JSON is YAML
    file.parent.mkdir(exist_ok=True)
    file.write_text(json.dumps({"workflows": workflows}))
    result = sandbox.run("validate", "--file", str(file), timeout=60)
    assert result.returncode == 1, result.explain()
    traps.assert_untouched()
    assert SENTINEL not in result.output
    for name in traps.refs():
        _line_for(result, f"ref_{name}", "params.p.items.$ref")
    assert max(len(line) for line in result.output.splitlines()) <= LINE_BOUND
    _line_for(result, "redos", "params.p.default", "does not match", "bytes)")


def test_a_catastrophic_pattern_is_answered_in_linear_time(
    tmp_path: Path, sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """``^(a+)+$`` against 50 KB, in a param (pattern and value from the API) and in a template
    schema (value from the API): before #23 the sync never finished (the subprocess timeout)."""
    templates = tmp_path / "inputs" / "templates"
    _template(templates, "strict", {"type": "object", "properties": {"name": {"type": "string", "pattern": EVIL}}})
    shutil.copyfile(DEMO, templates / "demo.py")
    workflows = {
        "redos_param": {"params": {"p": {"type": "string", "pattern": EVIL, "default": VALUE}}},
        "redos_spec": {"template": "strict", "spec": {"name": VALUE}},
        "good": {},
    }
    fault("ReDoS in a param", count=1)
    fault("ReDoS in a template schema", count=1)
    api.serve_workflows(workflows)
    result = _sync(sandbox, api, DAGFLEET_TEMPLATES=templates)
    assert result.returncode == 0, result.explain()
    assert (sandbox.dags / "good-mydag.py").exists()
    _line_for(result, "redos_param", "params.p.default", "does not match")
    _line_for(result, "redos_spec", "spec.name", "does not match")
    assert max(len(line) for line in result.output.splitlines()) <= LINE_BOUND


RATIO = r"""
import sys, time
from dagfleet.fleet.config import validate_config
def once(pattern):
    config = {"params": {"p": {"type": "string", "pattern": pattern, "default": "a" * 50_000 + "!"}}}
    started = time.perf_counter()
    try:
        validate_config("w", config)
    except Exception:
        pass
    return time.perf_counter() - started
def took(pattern):  # the fastest of 5: robust to a busy machine
    return min(once(pattern) for _ in range(5))
took("^a+$")  # warm up: imports, caches
print(took(sys.argv[1]) / max(took("^a+$"), 1e-6))
"""


def test_the_pattern_engine_is_linear_measured_as_a_ratio() -> None:
    """One run: ``^(a+)+$`` vs ``^a+$``, both on 50 KB; a backtracking engine never returns
    (before #23: the 60 s subprocess timeout), a linear one is within a small factor."""
    proc = run([sys.executable, "-c", RATIO, EVIL], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) < 20, proc.stdout


def test_a_10_mb_value_is_echoed_within_bounds(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """Before #23 the 10 MB schedule came back whole: a 10,000,219-character line, 20 MB status.json."""
    fault("10 MB schedule string")
    api.serve_workflows({"flood": {"schedule": "x" * 10_000_000}, "good": {}})
    result = _sync(sandbox, api)
    assert result.returncode == 0, result.explain()
    line = _line_for(result, "flood", "config field 'schedule'", "... (10,000,002 bytes)")
    assert max(len(line) for line in result.output.splitlines()) <= LINE_BOUND, len(line)
    status = FleetStore(sandbox.dags).status_path
    assert status.stat().st_size <= STATUS_BOUND, status.stat().st_size


@pytest.mark.parametrize("retry_after", ["NaN", "inf", "-1", "1e999", "soon", "-inf"])
def test_an_unusable_retry_after_falls_back_to_the_backoff(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None], retry_after: str
) -> None:
    """Before #23 ``NaN`` made ``time.sleep`` raise: one attempt instead of the configured ones
    and a line that never said 429."""
    fault(f"HTTP 429 with Retry-After: {retry_after}")
    busy = Behaviour.json({"error": "slow down"}, 429, headers=(("Retry-After", retry_after),))
    api.serve_workflows({"good": {}})
    api.queue(LIST_PATH, busy, busy)
    result = _sync(sandbox, api, DAGFLEET_RETRIES=3)
    assert result.returncode == 0, result.explain()
    assert sum(1 for r in api.requests if r.route == LIST_PATH) == 3
    assert len([w for w in result.warnings if "HTTP 429" in w and "retrying in" in w]) == 2, result.explain()
    api.set(LIST_PATH, busy)
    failed = _sync(sandbox, api, DAGFLEET_RETRIES=2)
    assert failed.returncode == 75, failed.explain()
    assert any("HTTP 429" in line for line in failed.errors), failed.explain()


def test_run_execs_within_its_bound_whatever_the_sync_does(
    sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    """A config API that accepts and never answers, with an hour's read timeout: ``run`` execs
    its command after DAGFLEET_RUN_SYNC_TIMEOUT (the mutant joining the sync without a bound hangs
    until the subprocess timeout)."""
    fault("config API tarpit at run's start-up")
    tarpit = SilentServer()
    try:
        result = sandbox.run(
            "run", "--", "echo", "started", timeout=60, DAGFLEET_API_URL=tarpit.url, DAGFLEET_API_KEY=KEY,
            DAGFLEET_READ_TIMEOUT=3600, DAGFLEET_RUN_SYNC_TIMEOUT=2,
        )  # fmt: skip
    finally:
        tarpit.close()
    assert result.returncode == 0, result.explain()
    assert result.stdout.strip() == "started"
    assert any("did not finish within 2s (DAGFLEET_RUN_SYNC_TIMEOUT)" in line for line in result.errors)


def test_watch_keeps_syncing_past_a_tarpit_ref(
    sandbox: Sandbox, api: FaultServer, traps: Traps, fault: Callable[..., None]
) -> None:
    """Before #23 the first pass hung on the tarpit ``$ref`` and no later change ever landed."""
    fault("tarpit $ref under watch")
    api.serve_workflows({"stuck": _param_ref(traps.refs()["tarpit"]), "good": {}})
    env = sandbox.env(DAGFLEET_API_URL=api.url, DAGFLEET_API_KEY=KEY, DAGFLEET_SYNC_INTERVAL="0.5")
    proc = sandbox.popen("watch", env=env)
    try:
        wait_until("the first pass", (sandbox.dags / "good-mydag.py").exists, timeout=60, every=0.2)
        api.serve_workflows({"stuck": _param_ref(traps.refs()["tarpit"]), "good": {}, "later": {}})
        wait_until("a later change", (sandbox.dags / "later-mydag.py").exists, timeout=60, every=0.2)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # stuck in a fetch (the code before #23): do not leave it behind
            proc.kill()
            proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()
    traps.assert_untouched()
