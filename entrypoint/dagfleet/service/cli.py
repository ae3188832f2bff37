"""``dagfleet`` command line: sync, run, watch, status, serve-config, validate, render, check (docs/reference.md)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

from dagfleet.api.client import display_url
from dagfleet.fleet import __version__, versions
from dagfleet.fleet.errors import DagfleetError, clip
from dagfleet.fleet.settings import Settings, invalid_env, packaged_file
from dagfleet.service import airflowkeys
from dagfleet.sync.apply import FleetSync
from dagfleet.sync.report import Outcome, SyncReport

if TYPE_CHECKING:
    from dagfleet.service.metrics import FleetMetrics, Health, MetricsServer
    from dagfleet.sync.fleetstatus import FleetStatus

log = logging.getLogger("dagfleet")

# Airflow 3 CLI subcommands `run` hands to Airflow (components first).
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "standalone")
AIRFLOW_SUBCOMMANDS = frozenset(
    {
        *AIRFLOW_COMPONENTS,
        "assets", "backfill", "celery", "cheat-sheet", "config", "connections", "dags", "db",
        "info", "jobs", "kerberos", "plugins", "pools", "providers", "rotate-fernet-key",
        "tasks", "variables", "version",
    }
)  # fmt: skip


class RedactingFilter(logging.Filter):
    """Defense in depth: replace known secret values in any log line with ``***``."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for secret in self.secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, ()
        return True


def _secrets_of(settings: Settings) -> list[str]:
    """Values the redacting filter hides: the API key, a password in a URL."""
    values = [settings.api_key or ""]
    for url in (settings.api_url, settings.cache_url):
        if url and (password := urlsplit(url).password):
            values.append(password)
    return values


def _setup_logging(level: str, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s dagfleet %(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("urllib3", "requests"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


MAX_NAMES_SHOWN = 10


def capped(names: Sequence[str], limit: int = MAX_NAMES_SHOWN) -> str:
    """``a, b, c … and 990 more``: a fleet-scale list on one short line."""
    shown = ", ".join(names[:limit])
    return f"{shown} … and {len(names) - limit} more" if len(names) > limit else shown


def _report(report: SyncReport) -> None:
    for problem in report.problems:
        log.error("%s", problem)
    for what, names in (("written", report.written), ("config updated", report.config_updated),
                        ("pruned", report.pruned)):  # fmt: skip
        if names:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: %s", what, ", ".join(names))
            else:
                log.info("%s: %s", what, capped(names))
    level = logging.INFO if report.outcome is Outcome.SYNCED else logging.WARNING
    log.log(level, "%s", report.summary())


def _unexpected(err: Exception) -> str:
    """One line for a failure nothing else caught (never a traceback: the dags folder is intact)."""
    text = clip(" ".join(ascii(str(err))[1:-1].split()))
    return (
        f"dagfleet sync failed unexpectedly ({type(err).__name__}: {text}); the dags folder keeps its "
        "last known good set; please report this with the config API's answer"
    )


def cmd_sync(settings: Settings) -> int:
    try:
        report = FleetSync(settings).sync()
    except DagfleetError:
        raise
    except Exception as err:  # noqa: BLE001 - one line and the last known good set, not a traceback
        log.error("%s", _unexpected(err))
        return int(Outcome.KEPT_LAST_KNOWN_GOOD)
    _report(report)
    return int(report.outcome)


def resolve_command(settings: Settings, args: Sequence[str]) -> list[str]:
    """The argv `run` execs: Airflow components go through the official `/entrypoint` when present."""
    if not args:
        raise DagfleetError("no command given: e.g. `dagfleet run -- scheduler` (or api-server, standalone, …)")
    target = settings.exec_target()
    if Path(target).name == "entrypoint":
        return [target, *args]  # the official entrypoint passes airflow subcommands, bash, python through
    if args[0] in AIRFLOW_SUBCOMMANDS:
        return [target, *args]
    return list(args)


def check_command(args: Sequence[str]) -> list[str]:
    problems = []
    if not args:
        problems.append("no command given")
    elif args[0] not in AIRFLOW_SUBCOMMANDS and not (shutil.which(args[0]) or Path(args[0]).is_absolute()):
        problems.append(
            f"{args[0]!r} is neither an Airflow subcommand ({', '.join(AIRFLOW_COMPONENTS)}, …) nor a program"
        )
    return problems


def handoff(argv: list[str]) -> NoReturn:
    """Replace this process with ``argv``: Airflow then gets signals straight from dumb-init."""
    log.info("exec %s", " ".join(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - the whole point: hand over to Airflow


def _sync_outcome(settings: Settings) -> Outcome:
    try:
        return Outcome(cmd_sync(settings))
    except DagfleetError as err:
        log.error("%s", err)
        return Outcome.NOTHING_USABLE
    except Exception:  # a sync bug must not keep Airflow (and the last good DAGs) down
        log.exception("dagfleet sync failed unexpectedly; starting with the DAGs already in place")
        return Outcome.KEPT_LAST_KNOWN_GOOD


def _startup_sync(settings: Settings) -> Outcome:
    """`run`'s sync, in a daemon thread: past ``DAGFLEET_RUN_SYNC_TIMEOUT`` `run` goes on without
    it (the exec ends the thread; every file the sync writes is a temp file until its rename)."""
    done: list[Outcome] = []
    worker = threading.Thread(target=lambda: done.append(_sync_outcome(settings)), name="startup-sync", daemon=True)
    worker.start()
    worker.join(settings.run_sync_timeout)
    if done:
        return done[0]
    log.error(
        "the start-up sync did not finish within %gs (DAGFLEET_RUN_SYNC_TIMEOUT); starting with the DAGs "
        "already in place (`dagfleet watch` keeps syncing)",
        settings.run_sync_timeout,
    )
    return Outcome.KEPT_LAST_KNOWN_GOOD


def cmd_run(settings: Settings, args: Sequence[str], require_sync: bool) -> int:
    argv = resolve_command(settings, args)
    outcome = _startup_sync(settings)
    if outcome is Outcome.NOTHING_USABLE:
        if require_sync:
            log.error("not starting %s: the sync produced nothing usable (--require-sync)", args[0])
            return int(outcome)
        log.warning("starting %s without generated DAGs; `dagfleet watch` will add them once the API answers", args[0])
    os.environ.update(airflowkeys.shared_env(os.environ))  # one JWT secret etc. for every process
    handoff(argv)


def cmd_task(settings: Settings, args: Sequence[str]) -> int:
    """A KubernetesExecutor task pod: this task's DAG from its pod override (dagfleet.service.taskpod), then exec."""
    from dagfleet.service import taskpod

    argv = resolve_command(settings, taskpod.command(args))
    try:
        taskpod.prepare(settings, args=argv)
    except DagfleetError as err:  # the task still starts: Airflow reports a missing DAG as the task's failure
        log.error("task pod: %s", err)
    handoff(argv)


def _stop_event() -> threading.Event:
    """An event SIGTERM and SIGINT set (the watch loop stops between passes)."""
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


def _watch_pass(fleet_sync: FleetSync, probes: _Probes | None) -> None:
    """One sync of the watch loop: logged, observed by the probes, never raised."""
    started, clock = time.time(), time.monotonic()
    report = None
    try:
        report = fleet_sync.sync()
    except DagfleetError as err:
        log.error("%s", err)
    except Exception as err:  # noqa: BLE001 - the sidecar keeps watching whatever one pass hits
        log.error("%s", _unexpected(err))
    else:
        if report.changed or report.problems or report.outcome is not Outcome.SYNCED:
            _report(report)
    if probes:
        probes.observe(report, started, time.monotonic() - clock)
        ids = fleet_sync.store.manifest().values()
        probes.metrics.observe_bundles(versions.shard_rows(fleet_sync.store.dags, fleet_sync.settings.shards, ids))


def cmd_watch(settings: Settings, once: bool = False) -> int:
    stop = _stop_event()
    fleet_sync = FleetSync(settings)
    probes = _start_metrics(settings, fleet_sync)
    log.info("watching the config API every %gs", settings.sync_interval)
    try:
        while not stop.is_set():
            if probes:
                probes.health.beat()
            _watch_pass(fleet_sync, probes)
            if once:
                break
            if probes:
                probes.health.beat()
            stop.wait(settings.sync_interval)
    finally:
        if probes:
            probes.server.close()
    return 0


@dataclass
class _Probes:
    """The watch loop's metrics, health and their HTTP server (DAGFLEET_METRICS_PORT)."""

    metrics: FleetMetrics
    health: Health
    server: MetricsServer

    def observe(self, report: SyncReport | None, started: float, took: float) -> None:
        if report is None:
            self.metrics.observe_error(started, took)
        else:
            self.metrics.observe_client(report.requests, report.bytes)
            self.metrics.observe_sync(report, started, took)
        self.health.mark_ready()


def _start_metrics(settings: Settings, fleet_sync: FleetSync) -> _Probes | None:
    if settings.metrics_port is None:
        return None
    from dagfleet.service.metrics import FleetMetrics, Health, MetricsServer, stuck_after

    limit = settings.stuck_after or stuck_after(
        settings.sync_interval, settings.connect_timeout, settings.read_timeout, settings.retries
    )
    from dagfleet.sync import fleetstatus

    metrics = FleetMetrics(last_success=fleetstatus.load(settings).last_success)
    if settings.api_url:
        metrics.instrument(fleet_sync.client)  # every answer of the config API, by status code
    health = Health(limit, metrics)
    try:
        server = MetricsServer(
            settings.metrics_port, metrics, health, status=lambda: fleetstatus.load(settings).to_json()
        ).start()
    except OSError as err:
        raise DagfleetError(
            f"cannot serve metrics on port {settings.metrics_port}: {err.strerror}; "
            "set DAGFLEET_METRICS_PORT to a free port or unset it"
        ) from None
    log.info("serving /metrics, /healthz, /readyz and /status.json on port %d (stuck after %gs)", server.port, limit)
    return _Probes(metrics, health, server)


def _when(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return "never"
    shown = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{shown} ({_age(now - timestamp)} ago)"


def _age(seconds: float) -> str:
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def format_status(status: FleetStatus, now: float, version_line: str | None = None) -> str:
    """The fleet as `dagfleet status` prints it: a summary (and the fleet version), then one row per workflow."""
    counts = status.counts()
    parts = [f"{n} {state.replace('_', ' ')}" for state, n in counts.items() if n or state in ("synced", "rejected")]
    verdict = "healthy" if status.healthy else "NOT healthy"
    dags = sum(1 for w in status.workflows if w.dag_file)
    lines = [
        f"fleet: {verdict}; {dags} generated DAG(s); workflows: {', '.join(parts)}",
        f"last sync: {_when(status.attempted_at, now)}: {status.summary}",
        f"last success: {_when(status.last_success, now)}",
        *([version_line] if version_line else []),
    ]
    lines += [f"problem: {p}" for p in status.problems]
    header = ("WORKFLOW", "STATE", "TEMPLATE", "SOURCE", "STORED", "VERSION", "PROBLEM")
    rows = [
        (
            w.workflow_id,
            w.state.replace("_", " "),
            w.template,
            w.source,
            datetime.fromtimestamp(w.stored_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if w.stored_at else "-",
            w.version or "-",
            w.problem or "-",
        )
        for w in status.workflows
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines.append("")
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row[:-1])) + "  " + row[-1])
    return "\n".join(lines)


def cmd_status(settings: Settings, as_json: bool) -> int:
    """The fleet as the last sync left it, from the dags folder only (no network, no Airflow)."""
    from dagfleet.sync import fleetstatus

    status = fleetstatus.load(settings)
    if as_json:
        print(json.dumps(status.to_json(), indent=2, sort_keys=True))
    else:
        ids = [w.workflow_id for w in status.workflows if w.dag_file]
        print(format_status(status, time.time(), versions.status_line(settings.dags_folder, settings.shards, ids)))
    return 0 if status.healthy else 1


def cmd_show(settings: Settings, workflow_id: str, version: str | None) -> int:
    """The config, template and digest a workflow had in a version of the fleet (default: current)."""
    shown = versions.show(settings.dags_folder, workflow_id, version, settings.shards)
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def cmd_serve(settings: Settings, file: Path, host: str, port: int, list_format: str) -> int:
    from dagfleet.service.server import make_server

    server = make_server(file, host, port, settings.api_key, list_format)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with server:
        server.serve_forever()
    return 0


def cmd_validate(settings: Settings, file: Path | None, templates: Path | None) -> int:
    """Exit 0 when every workflow is valid, 1 otherwise; one line per problem on stdout."""
    from dagfleet.service.validate import validate_api, validate_file

    if templates is not None:
        settings = replace(settings, templates_folder=templates)
    library = settings.template_library()
    if file is not None:
        result = validate_file(file, library, settings.declared())
    elif settings.api_url:
        from dagfleet.api.client import ConfigClient

        client = ConfigClient.from_settings(settings)
        try:
            result = validate_api(client, library, settings.declared())
        finally:
            client.close()
    else:
        raise DagfleetError("nothing to validate: give --file workflows.yaml or set DAGFLEET_API_URL")
    for problem in result.problems:
        sys.stdout.write(problem + "\n")  # the command's output: one line per problem
    log.log(logging.ERROR if result.problems else logging.INFO, "%s", result.summary())
    return 1 if result.problems else 0


def cmd_render(settings: Settings, options: argparse.Namespace) -> int:
    """Print a workflow's tasks and pods (dagfleet.service.render): offline, from the dags folder or --file."""
    from dagfleet.service.render import render, to_text

    try:
        conf = json.loads(options.conf) if options.conf else {}
    except ValueError as err:
        raise DagfleetError(f"--conf is not JSON: {err}") from None
    if not isinstance(conf, dict):
        raise DagfleetError('--conf must be a JSON object, like \'{"tables": ["orders"]}\'')
    staged = None
    if options.file is not None:
        from dagfleet.service.server import load_workflows

        library = replace(settings, templates_folder=options.templates or settings.templates_folder).template_library()
        staged = (load_workflows(options.file), library)
    result = render(options.workflow, settings.dags_folder, conf, options.item, staged)
    sys.stdout.write(to_text(result, options.format))
    return 0


def cmd_check(settings: Settings, args: Sequence[str]) -> int:
    problems = invalid_env(os.environ) + check_command(args)
    if settings.api_key_file and not Path(settings.api_key_file).is_absolute():
        problems.append("DAGFLEET_API_KEY_FILE must be an absolute path")
    if not settings.templates_folder.is_dir():
        problems.append(f"DAGFLEET_TEMPLATES: {settings.templates_folder} is not a folder of templates")
    for problem in problems:
        log.error("check: %s", problem)
    if problems:
        return 2
    argv = resolve_command(settings, args)
    source = (settings.api_url and display_url(settings.api_url)) or (
        "DAGFLEET_STATIC_WORKFLOWS" if settings.static_workflows else "nothing (set DAGFLEET_API_URL)"
    )
    log.info("check: OK: would sync %s from %s, then exec %s", settings.dags_folder, source, " ".join(argv))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagfleet", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dagfleet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("sync", help="generate one DAG per workflow from the config API, once")
    run = sub.add_parser("run", help="sync, then exec an Airflow component: dagfleet run -- scheduler")
    run.add_argument("--require-sync", action="store_true", help="do not start when the sync found nothing usable")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the command, after --")
    task = sub.add_parser("task", help="task pod: write this task's DAG from its pod override, then exec")
    task.add_argument("args", nargs=argparse.REMAINDER, help="the command, after --")
    watch = sub.add_parser("watch", help="re-sync every DAGFLEET_SYNC_INTERVAL seconds (sidecar)")
    watch.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    serve = sub.add_parser("serve-config", help="serve a YAML file of workflows as the config API")
    serve.add_argument("--file", type=Path, default=None, help="workflows YAML (default: the embedded example)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000, 0 = any free port)")
    serve.add_argument("--list-format", choices=("objects", "ids"), default="objects",
                       help="GET /airflowconfigs answers objects with configs (default) or IDs only")  # fmt: skip
    validate = sub.add_parser("validate", help="check workflows (a file or the live API) without Airflow")
    validate.add_argument("--file", type=Path, default=None, help="workflows YAML (default: the live config API)")
    validate.add_argument("--templates", type=Path, default=None, help="templates folder (default: DAGFLEET_TEMPLATES)")
    status = sub.add_parser("status", help="the fleet as the last sync left it: summary, then one row per workflow")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    render = sub.add_parser("render", help="print a workflow's tasks and the pod of each item, offline")
    render.add_argument("workflow", help="the workflow ID")
    render.add_argument("--item", type=int, default=None, help="only this map index of mapped pod tasks")
    render.add_argument("--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)")
    render.add_argument("--conf", default=None, help="the run's conf as JSON (default {})")
    render.add_argument("--file", type=Path, default=None, help="workflows YAML (default: the dags folder's record)")
    render.add_argument("--templates", type=Path, default=None, help="templates folder (with --file)")
    show = sub.add_parser("show", help="the config a workflow had in a version of the fleet (default: the current one)")
    show.add_argument("workflow", help="workflow ID")
    show.add_argument("--version", dest="fleet_version", default=None, help="a fleet version (dagfleet status)")
    check = sub.add_parser("check", help="validate the command and DAGFLEET_* environment; change nothing")
    check.add_argument("args", nargs=argparse.REMAINDER, help="the command, after --")
    return parser


def _strip_dashdash(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args


def main(argv: list[str] | None = None) -> int:
    # Group-writable files and folders (gid 0), as the official image's entrypoint does: on
    # platforms that run the container with an arbitrary UID in group 0, every pod can write them.
    os.umask(0o002)
    options = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        _setup_logging(settings.log_level, _secrets_of(settings))
    except DagfleetError as err:
        _setup_logging("INFO")
        log.error("%s", err)
        return 2
    try:
        if options.command == "sync":
            return cmd_sync(settings)
        if options.command == "run":
            return cmd_run(settings, _strip_dashdash(options.args), options.require_sync)
        if options.command == "task":
            return cmd_task(settings, _strip_dashdash(options.args))
        if options.command == "watch":
            return cmd_watch(settings, options.once)
        if options.command == "serve-config":
            file = options.file or packaged_file("data", "workflows.yaml")
            return cmd_serve(settings, file, options.host, options.port, options.list_format)
        if options.command == "status":
            return cmd_status(settings, options.json)
        if options.command == "show":
            return cmd_show(settings, options.workflow, options.fleet_version)
        if options.command == "check":
            return cmd_check(settings, _strip_dashdash(options.args))
        if options.command == "validate":
            return cmd_validate(settings, options.file, options.templates)
        if options.command == "render":
            return cmd_render(settings, options)
    except DagfleetError as err:
        log.error("%s", err)
        return int(Outcome.NOTHING_USABLE) if options.command in {"sync", "run"} else 1
    except KeyboardInterrupt:
        return 130
    raise AssertionError(options.command)  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
