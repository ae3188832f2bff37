"""Crash safety: `dagfleet sync` and `dagfleet watch` killed with SIGKILL at random moments, hundreds of times.

After every kill the dags folder must hold only complete files: every ``*-mydag.py`` is byte for
byte one of the two base DAG variants in use, is named in the manifest, and belongs to a workflow
the API ever served; every stored config is complete JSON equal to a config the API served;
nothing else sits at the top level. The workflows change on every run (base DAG variant, configs,
a rotating tenth of the IDs added/removed), so every run rewrites ~400 files and prunes some.

Three kinds of kill, all SIGKILL of a real process running the real CLI entry point
(``dagfleet.service.cli.main``):

* forked syncs: a pre-imported "zygote" process forks one child per sync, so the random kill
  lands inside the sync itself rather than in Python's start-up (hundreds of kills in seconds);
* `dagfleet sync` subprocesses started from scratch, killed within the measured sync window;
* `dagfleet watch` with a 10 ms interval, killed at random while it re-syncs continuously.

A final normal sync must converge, every file must compile, and Airflow's DagBag must import a
sample of them without errors.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from dagfleet.fleet.settings import SHIPPED_TEMPLATES
from dagfleet.fleet.store import TRAILER_PREFIX, FleetStore
from support.faultserver import Behaviour, FaultServer, Request
from support.sandbox import SUFFIX, Sandbox, assert_tidy, dag_files, stored_config, template_body
from support.sandbox import manifest as read_manifest

SEED = 20261124
FORKED_KILLS = int(os.environ.get("DAGFLEET_FAULT_FORKED_KILLS", "300"))
CLI_KILLS = int(os.environ.get("DAGFLEET_FAULT_CLI_KILLS", "40"))
WATCH_KILLS = int(os.environ.get("DAGFLEET_FAULT_WATCH_KILLS", "30"))
ALL_IDS = [f"wf-{i:03d}" for i in range(220)]
BASE = (SHIPPED_TEMPLATES / "demo.py").read_bytes()
VARIANTS = (BASE, BASE + b"\n# dagfleet crash test: variant B of the base DAG\n")
VARIANT_HASHES = frozenset(hashlib.sha256(v).hexdigest() for v in VARIANTS)

ZYGOTE = r"""
import json, os, sys
from dagfleet.service.cli import main
import dagfleet.api.client, dagfleet.fleet.config, dagfleet.sync.apply, croniter  # the sync's imports, done once
print("ready", flush=True)
for line in sys.stdin:
    command = json.loads(line)
    if command["op"] == "sync":
        pid = os.fork()
        if pid == 0:
            os.environ.clear()
            os.environ.update(command["env"])
            os.chdir(command["cwd"])
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            code = 1
            try:
                code = main(["sync"])
            finally:
                os._exit(code)
        print(pid, flush=True)
    elif command["op"] == "wait":
        _, status = os.waitpid(command["pid"], 0)
        print(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status), flush=True)
"""


def ids_for(generation: int) -> list[str]:
    return [w for i, w in enumerate(ALL_IDS) if (i + generation) % 11 != 0]


def config_for(workflow_id: str, generation: int) -> dict[str, Any]:
    return {"description": f"{workflow_id} generation {generation}", "tags": [f"g{generation % 7}"]}


def generation_of(config: dict[str, Any]) -> int:
    return int(config["description"].rsplit(" ", 1)[1])


@dataclass
class Fleet:
    """What the API serves: one generation at a time (objects, or IDs only every fourth generation)."""

    server: FaultServer
    base_files: tuple[Path, Path]
    generation: int = 0
    advance_on_list: bool = False  # watch: every list request is a new generation
    base_link: Path | None = None  # watch: the base DAG file swapped between variants
    _cache: dict[int, Behaviour] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.server.set("/airflowconfigs", self._list)
        self.server.set("/airflowconfigs/*", self._config)

    def ids_only(self, generation: int) -> bool:
        return generation % 4 == 3

    def _list(self, _request: Request) -> Behaviour:
        if self.advance_on_list:
            self.generation += 1
            if self.base_link is not None:
                tmp = self.base_link.with_suffix(".swap")
                tmp.write_bytes(VARIANTS[self.generation % 2])
                tmp.replace(self.base_link)
        generation = self.generation
        if generation not in self._cache:
            ids = ids_for(generation)
            if self.ids_only(generation):
                listing: list[Any] = ids
            else:
                listing = [{"id": w, "config": config_for(w, generation)} for w in ids]
            self._cache = {generation: Behaviour.json(listing, etag=True)}
        return self._cache[generation]

    def _config(self, request: Request) -> Behaviour:
        workflow_id = unquote(request.route.rsplit("/", 1)[1])
        if workflow_id not in ids_for(self.generation):
            return Behaviour.json({"error": "no such workflow"}, 404)
        return Behaviour.json(config_for(workflow_id, self.generation), etag=True)

    def base_for(self, generation: int) -> Path:
        return self.base_files[generation % 2]


def check_complete(dags: Path, context: str) -> None:
    """The invariant that must hold at any instant, whatever was killed when."""
    if not dags.exists():
        return
    names = sorted(p.name for p in dags.iterdir())
    foreign = [n for n in names if n != ".dagfleet" and not (n.endswith(SUFFIX) and n[: -len(SUFFIX)] in ALL_IDS)]
    assert foreign == [], f"{context}: foreign files in the dags folder: {foreign}"
    dags_in_folder = [n for n in names if n.endswith(SUFFIX)]
    for name in dags_in_folder:
        data = (dags / name).read_bytes()
        digest = hashlib.sha256(template_body(data)).hexdigest()
        assert digest in VARIANT_HASHES, f"{context}: {name} is not a complete base DAG"
        trailer = data.rpartition(TRAILER_PREFIX)[2]
        assert trailer.endswith(b"\n") and trailer.count(b"\n") == 1, f"{context}: {name} has no complete trailer"
    state = dags / ".dagfleet"
    if dags_in_folder:
        listed = read_manifest(dags)  # always complete JSON (written atomically)
        unlisted = sorted(set(dags_in_folder) - set(listed))
        assert unlisted == [], f"{context}: generated files the manifest does not name: {unlisted}"
    records = FleetStore(dags).records
    for path in sorted(records.glob("*")) if records.exists() else []:
        assert path.suffix == ".json", f"{context}: foreign file {path}"
        config = stored_config(dags, path.stem)
        assert config is not None, f"{context}: {path.name} is not a complete record"
        assert config == config_for(path.stem, generation_of(config)), f"{context}: {path.name} is not a served config"
    for bookkeeping in ("state.json", "status.json"):
        if (state / bookkeeping).exists():
            json.loads((state / bookkeeping).read_text())
    assert_tidy(dags, allow_temp=True)


class Zygote:
    """A pre-imported Python that forks one `dagfleet sync` child per request (see the module docstring)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            env=sandbox.env(),
            cwd=sandbox.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._read() == "ready"

    def _read(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def _send(self, command: dict[str, Any]) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def sync(self, env: dict[str, str], cwd: Path) -> int:
        return int(self._send({"op": "sync", "env": env, "cwd": str(cwd)}))

    def wait(self, pid: int) -> int:
        """The child's exit code, or minus the signal that killed it."""
        return int(self._send({"op": "wait", "pid": pid}))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """The conftest sandbox, on tmpfs when there is one: SIGKILL safety does not depend on fsync, and
    without fsync costs a sync is short enough to kill it hundreds of times in a minute."""
    shm = Path("/dev/shm")
    root = (
        Path(tempfile.mkdtemp(prefix="dagfleet-crash-", dir=shm))
        if shm.is_dir() and os.access(shm, os.W_OK)
        else tmp_path
    )
    try:
        box = Sandbox(root)
        yield box
        box.assert_nothing_written_outside()
    finally:
        if root != tmp_path:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fleet(sandbox: Sandbox, api: FaultServer) -> Fleet:
    base_files = (sandbox.root / "base-a" / "mydag.py", sandbox.root / "base-b" / "mydag.py")
    for path, variant in zip(base_files, VARIANTS, strict=True):
        path.parent.mkdir()
        path.write_bytes(variant)
    return Fleet(api, base_files)


def _env(sandbox: Sandbox, fleet: Fleet, **extra: Any) -> dict[str, str]:
    settings: dict[str, Any] = {
        "DAGFLEET_API_URL": fleet.server.url,
        "DAGFLEET_API_KEY": "crash-key-0000",
        "DAGFLEET_BASE_DAG": fleet.base_for(fleet.generation),
        "DAGFLEET_RETRIES": 1,
    }
    return sandbox.env(**{**settings, **extra})


def _converge(sandbox: Sandbox, fleet: Fleet) -> None:
    """One more generation, synced normally: the folder is exactly what the API says."""
    fleet.generation += 1
    result = sandbox.run("sync", env=_env(sandbox, fleet))
    assert result.returncode == 0, result.explain()
    assert result.errors == []
    expected = ids_for(fleet.generation)
    assert dag_files(sandbox.dags) == sorted(f"{w}{SUFFIX}" for w in expected)
    base = VARIANTS[fleet.generation % 2]
    for workflow_id in expected:
        assert template_body((sandbox.dags / f"{workflow_id}{SUFFIX}").read_bytes()) == base
        assert stored_config(sandbox.dags, workflow_id) == config_for(workflow_id, fleet.generation)
    assert sorted(read_manifest(sandbox.dags).values()) == sorted(expected)
    assert sorted(p.stem for p in FleetStore(sandbox.dags).records.glob("*.json")) == sorted(expected)
    for path in sandbox.dags.glob("*.py"):
        compile(path.read_bytes(), str(path), "exec")  # complete Python, every one of them
    check_complete(sandbox.dags, "after converging")


Window = Callable[[], tuple[float, float]]


def _kill_loop(
    count: int,
    start: Callable[[], Any],
    kill: Callable[[Any], int],
    window: Window,
    check: Callable[[str], None],
) -> tuple[int, int]:
    """``count`` times: start, sleep a random time in ``window()``, SIGKILL, check. Returns (killed, finished)."""
    rng = random.Random(SEED + count)
    killed = finished = 0
    for index in range(count):
        handle = start()
        delay = rng.uniform(*window())
        time.sleep(delay)
        status = kill(handle)
        if status == -signal.SIGKILL:
            killed += 1
        else:
            finished += 1
        check(f"kill #{index} after {delay * 1000:.0f} ms (status {status})")
    return killed, finished


def test_forked_syncs_killed_hundreds_of_times(sandbox: Sandbox, fleet: Fleet, fault: Callable[..., None]) -> None:
    zygote = Zygote(sandbox)
    try:
        # Measure the sync window: a full rewrite (new base variant, new configs) from start to exit,
        # for both list formats (IDs only fetches every config: slower).
        durations: dict[bool, float] = {}
        for _ in range(4):
            fleet.generation += 1
            started = time.monotonic()
            assert zygote.wait(zygote.sync(_env(sandbox, fleet), sandbox.cwd)) == 0
            kind = fleet.ids_only(fleet.generation)
            durations[kind] = max(durations.get(kind, 0.0), time.monotonic() - started)
        check_complete(sandbox.dags, "calibration")

        def window() -> tuple[float, float]:
            return (0.0, durations[fleet.ids_only(fleet.generation)])

        def start() -> int:
            fleet.generation += 1
            return zygote.sync(_env(sandbox, fleet), sandbox.cwd)

        def kill(pid: int) -> int:
            os.kill(pid, signal.SIGKILL)
            return zygote.wait(pid)

        killed, _ = _kill_loop(FORKED_KILLS, start, kill, window, lambda c: check_complete(sandbox.dags, c))
    finally:
        zygote.close()
    fault("SIGKILL of a sync (forked)", kind="SIGKILL", count=killed)
    assert killed >= FORKED_KILLS * 0.5, f"only {killed} of {FORKED_KILLS} kills landed inside the sync"
    _converge(sandbox, fleet)


def test_cli_syncs_killed_in_the_sync_window(sandbox: Sandbox, fleet: Fleet, fault: Callable[..., None]) -> None:
    # Measure: when the list request arrives (start-up done), and when a full-rewrite sync exits.
    fleet.generation += 1
    started = time.monotonic()
    calibration = sandbox.popen("sync", env=_env(sandbox, fleet))
    assert calibration.wait(timeout=60) == 0
    total = time.monotonic() - started
    first_request = fleet.server.requests[0].at - started
    check_complete(sandbox.dags, "calibration")
    window = (0.8 * first_request, 1.1 * total)  # (start-up, objects format and IDs only are close enough here)

    def start() -> subprocess.Popen[bytes]:
        fleet.generation += 1
        return sandbox.popen("sync", env=_env(sandbox, fleet))

    def kill(proc: subprocess.Popen[bytes]) -> int:
        proc.kill()
        proc.communicate(timeout=30)
        return proc.returncode

    killed, _ = _kill_loop(CLI_KILLS, start, kill, lambda: window, lambda c: check_complete(sandbox.dags, c))
    fault("SIGKILL of `dagfleet sync`", kind="SIGKILL", count=killed)
    assert killed >= CLI_KILLS * 0.4, f"only {killed} of {CLI_KILLS} kills landed before the sync ended"
    _converge(sandbox, fleet)


def test_watch_killed_at_random(sandbox: Sandbox, fleet: Fleet, fault: Callable[..., None]) -> None:
    base_link = sandbox.root / "base-live" / "mydag.py"
    base_link.parent.mkdir()
    base_link.write_bytes(VARIANTS[0])
    fleet.advance_on_list = True
    fleet.base_link = base_link
    env = _env(sandbox, fleet, DAGFLEET_SYNC_INTERVAL="0.01", DAGFLEET_BASE_DAG=base_link)

    def start() -> subprocess.Popen[bytes]:
        proc = sandbox.popen("watch", env=env)
        seen = fleet.server.count("/airflowconfigs")
        deadline = time.monotonic() + 30
        while fleet.server.count("/airflowconfigs") == seen:  # start-up done, the first sync began
            assert time.monotonic() < deadline and proc.poll() is None, "watch did not start syncing"
            time.sleep(0.005)
        return proc

    def kill(proc: subprocess.Popen[bytes]) -> int:
        proc.kill()
        proc.communicate(timeout=30)
        return proc.returncode

    killed, _ = _kill_loop(WATCH_KILLS, start, kill, lambda: (0.0, 0.8), lambda c: check_complete(sandbox.dags, c))
    fault("SIGKILL of `dagfleet watch`", kind="SIGKILL", count=killed)
    assert killed == WATCH_KILLS
    assert fleet.server.count("/airflowconfigs") > 2 * WATCH_KILLS  # it re-synced between kills
    fleet.advance_on_list = False
    _converge(sandbox, fleet)


@pytest.mark.airflow
def test_files_left_by_killed_syncs_import_in_airflow(
    sandbox: Sandbox, fleet: Fleet, fault: Callable[..., None]
) -> None:
    """Kill a few syncs, then let Airflow's DagBag import a sample of what is left."""
    fault("DagBag import after SIGKILLed syncs")
    zygote = Zygote(sandbox)
    try:
        for delay in (0.0, 0.01, 0.03, 0.05, 0.08):
            fleet.generation += 1
            pid = zygote.sync(_env(sandbox, fleet), sandbox.cwd)
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
            zygote.wait(pid)
            check_complete(sandbox.dags, f"kill after {delay}s")
    finally:
        zygote.close()
    if not dag_files(sandbox.dags):
        _converge(sandbox, fleet)
    for path in sandbox.dags.glob("*.py"):
        ast.parse(path.read_bytes(), str(path))
    from support.dagbag import parse_in_subprocess

    sample = sorted(sandbox.dags.glob("*" + SUFFIX))[:: max(len(dag_files(sandbox.dags)) // 8, 1)]
    parsed = parse_in_subprocess(sandbox, sample, env={"DAGFLEET_API_URL": None})
    assert parsed.import_errors == {}, parsed.import_errors
    assert sorted(parsed.dag_ids) == sorted(p.name[: -len(SUFFIX)] for p in sample)
