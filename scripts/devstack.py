"""`make run`: the reference config API + Airflow 3 standalone + `dagfleet watch`, on localhost.

Every process runs in its own session (process group); Ctrl-C (or SIGTERM) stops each group
with SIGINT, then SIGTERM, then SIGKILL. Logs go to <run-dir>/logs/. Re-running reuses the
Airflow home (database, password) in <run-dir>.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from dagfleet.service import dagprocessor

BIN = Path(sys.executable).parent
EXAMPLE_POOLS = Path(__file__).resolve().parents[1] / "examples" / "pools.json"  # wherever it is started
# Airflow's components stop on SIGINT within seconds, but LocalExecutor workers ignore SIGINT
# and SIGTERM once their parent is gone: whatever is left after the grace periods gets SIGKILL.
STOP_SEQUENCE = ((signal.SIGINT, 8.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))


def log(message: str) -> None:
    print(f"devstack: {message}", flush=True)


class Stack:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with open(self.logs / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own fixed argv
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        log(f"started {name} (pid {self.procs[name].pid}, log {self.logs / (name + '.log')})")

    def dead(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def stop(self) -> None:
        for sig, wait in STOP_SEQUENCE:
            alive = [p for p in self.procs.values() if p.poll() is None or _group_alive(p.pid)]
            if not alive:
                break
            for proc in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(p.poll() is None or _group_alive(p.pid) for p in alive):
                time.sleep(0.2)
        log("stopped")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_http(url: str, timeout: float, stack: Stack) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (name := stack.dead()) is not None:
            raise RuntimeError(f"{name} exited early: see {stack.logs / (name + '.log')}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become healthy within {timeout:g}s")


def _secret_file(path: Path, make: str) -> str:
    if not path.exists():
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


def airflow_environment(
    dagfleet_env: dict[str, str], airflow_home: Path, port: int, environ: Mapping[str, str]
) -> dict[str, str]:
    """Airflow's environment in `make run`: ``dagfleet_env`` plus the ``AIRFLOW_*`` settings."""
    airflow_url = f"http://localhost:{port}"
    return {
        **dagfleet_env,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": dagfleet_env["DAGFLEET_DAGS_FOLDER"],
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": airflow_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{airflow_url}/execution/",
        # dagfleet's dag-processor settings, as in the chart and the image (docs/dagprocessor.md); an
        # AIRFLOW__DAG_PROCESSOR__* variable in the caller's environment wins for its key.
        **dagprocessor.airflow_env(environ),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        **connections(environ),
    }


def _announce_templates_and_status(templates: Path | None, dags: Path) -> None:
    if templates:
        log(f"templates: {templates} and the shipped ones; an edit reaches the DAGs the same way")
    log(f"fleet status: DAGFLEET_DAGS_FOLDER={dags} .venv/bin/dagfleet status  (or: make status)")


def connections(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's ``AIRFLOW_CONN_*`` connections (e.g. a workflow's notification webhook)."""
    return {name: value for name, value in environ.items() if name.startswith("AIRFLOW_CONN_")}


def import_pools(pools: Path, env: dict[str, str]) -> None:
    """Create or update the declared pools in Airflow (idempotent: ``airflow pools import``)."""
    result = subprocess.run(  # noqa: S603 - our own fixed argv
        [str(BIN / "airflow"), "pools", "import", str(pools)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow pools import {pools} failed: {(result.stderr or result.stdout).strip()[-500:]}")
    log(f"pools of {pools} created or updated")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=Path, default=Path("examples/workflows.yaml"))
    parser.add_argument("--templates", type=Path, default=None, help="your templates folder (DAGFLEET_TEMPLATES)")
    parser.add_argument("--pools", type=Path, default=EXAMPLE_POOLS, help="Airflow pools (`airflow pools import` JSON)")
    parser.add_argument("--run-dir", type=Path, default=Path(".run"))
    parser.add_argument("--port", type=int, default=8080, help="Airflow UI/API port")
    parser.add_argument("--config-port", type=int, default=8765, help="reference config API port")
    parser.add_argument("--sync-interval", type=float, default=10.0)
    parser.add_argument("--removed-grace", type=float, default=3600.0, help="DAGFLEET_REMOVED_GRACE (seconds)")
    parser.add_argument("--health-timeout", type=float, default=240.0)
    args = parser.parse_args(argv)

    run_dir = args.run_dir.resolve()
    airflow_home = run_dir / "airflow"
    dags = airflow_home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    api_key_file = run_dir / "config-api-key"
    _secret_file(api_key_file, secrets.token_urlsafe(24))  # the local config API's key
    password_file = airflow_home / "simple_auth_manager_passwords.json.generated"
    if not password_file.exists():
        password_file.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
    password = json.loads(password_file.read_text())["admin"]

    base = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW"))}
    base["PATH"] = f"{BIN}{os.pathsep}{base.get('PATH', '')}"
    config_url = f"http://127.0.0.1:{args.config_port}"
    airflow_url = f"http://localhost:{args.port}"
    dagfleet_env = {
        **base,
        "DAGFLEET_API_URL": config_url,
        "DAGFLEET_API_KEY_FILE": str(api_key_file),
        "DAGFLEET_DAGS_FOLDER": str(dags),
        "DAGFLEET_SYNC_INTERVAL": str(args.sync_interval),
        "DAGFLEET_REMOVED_GRACE": str(args.removed_grace),
        "DAGFLEET_EXEC": "airflow",
        # Your templates add to the shipped ones; every sync re-reads them, so an edit reaches the DAGs.
        **({"DAGFLEET_TEMPLATES": str(args.templates.resolve())} if args.templates else {}),
        "DAGFLEET_POOLS": args.pools.read_text(),  # what sync checks a workflow's `pool` against
    }
    airflow_env = airflow_environment(dagfleet_env, airflow_home, args.port, os.environ)

    stack = Stack(run_dir)
    stopping = False

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            log(f"{signal.Signals(signum).name}: stopping everything")
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        stack.start(
            "config-api",
            [str(BIN / "dagfleet"), "serve-config", "--file", str(args.workflows.resolve()),
             "--port", str(args.config_port)],
            {**base, "DAGFLEET_API_KEY_FILE": str(api_key_file)},
        )  # fmt: skip
        _wait_http(f"{config_url}/healthz", 30, stack)
        stack.start("airflow", [str(BIN / "dagfleet"), "run", "--", "standalone"], airflow_env)
        stack.start("watch", [str(BIN / "dagfleet"), "watch"], dagfleet_env)
        log(f"waiting for Airflow at {airflow_url} (first start migrates the database, ~30-60 s)")
        _wait_http(f"{airflow_url}/api/v2/monitor/health", args.health_timeout, stack)
        import_pools(args.pools.resolve(), airflow_env)
        log(f"READY {airflow_url}  login: admin / {password}  (Ctrl-C stops everything)")
        log(
            f"config API {config_url} serving {args.workflows}; edit it and DAGs follow within ~{args.sync_interval:g}s"
        )
        _announce_templates_and_status(args.templates, dags)
        while (name := stack.dead()) is None:
            time.sleep(1)
        log(f"{name} exited: see {stack.logs / (name + '.log')}")
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as err:
        log(f"error: {err}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
