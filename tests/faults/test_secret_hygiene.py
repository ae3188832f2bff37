"""Secret hygiene: the API key and every secret value stay out of logs, exception texts, reprs and chart NOTES.

Secrets used: the API key (given as a value and as a mounted file), the password of a Redis cache
URL, the password in a config API URL's userinfo, and a workflow Secret's value in the chart.
Every command runs with ``DAGFLEET_LOG_LEVEL=DEBUG`` and through its error paths.
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dagfleet.api.client import ConfigClient
from dagfleet.api.retry import retry_policy
from dagfleet.fleet.errors import DagfleetError
from dagfleet.fleet.settings import Settings
from support.faultserver import Behaviour, FaultServer
from support.net import dead_url
from support.paths import REPO
from support.sandbox import DAGFLEET, Sandbox

KEY = "sk-live-4f1d9b7e2c8a6350"
FILE_KEY = "sk-file-93be01d47acf2266"
REDIS_PASSWORD = "redis-pw-6c2f0e19"  # noqa: S105 - a test secret, searched for in outputs
URL_PASSWORD = "url-pw-0d7a41b3"  # noqa: S105
WORKFLOW_SECRET = "wf-secret-b8e3c5a217"  # noqa: S105
SECRETS = (KEY, FILE_KEY, REDIS_PASSWORD, URL_PASSWORD, WORKFLOW_SECRET)


def assert_no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert leaked == [], f"secret(s) {leaked} in {where}:\n{text[-3000:]}"


def _debug_env(sandbox: Sandbox, url: str, **extra: Any) -> dict[str, str]:
    return sandbox.env(
        DAGFLEET_API_URL=url,
        DAGFLEET_API_KEY=KEY,
        DAGFLEET_LOG_LEVEL="DEBUG",
        DAGFLEET_RETRIES=2,
        DAGFLEET_READ_TIMEOUT=0.5,
        **extra,
    )


# -- the CLI, every command, success and error paths ----------------------------------------------
CLI_FAULTS: list[tuple[str, Behaviour | None]] = [
    ("good answer", None),
    ("HTTP 401", Behaviour.json({"error": "bad key"}, 401)),
    ("HTTP 403", Behaviour.json({"error": "forbidden"}, 403)),
    ("HTTP 500", Behaviour.json({"error": "boom"}, 500)),
    ("HTTP 429", Behaviour.json({"error": "slow down"}, 429, headers=(("Retry-After", "0"),))),
    ("read timeout", Behaviour.hang(10)),
    ("malformed JSON", Behaviour.raw("[{")),
    ("HTML", Behaviour.html()),
    ("connection reset", Behaviour.reset()),
    ("redirect", Behaviour(status=307, headers=(("Location", "http://127.0.0.2:9/steal"),))),
]


@pytest.mark.parametrize(("name", "behaviour"), CLI_FAULTS, ids=[c[0] for c in CLI_FAULTS])
def test_sync_output_never_holds_the_key(
    name: str, behaviour: Behaviour | None, sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]
) -> None:
    fault(f"secret hygiene: `dagfleet sync` at DEBUG, {name}")
    api.serve_workflows({"alpha": {}, "beta": {}}, list_format="ids")
    if behaviour is not None:
        api.set("/airflowconfigs", behaviour)
        api.set("/airflowconfigs/*", behaviour)
    result = sandbox.run("sync", env=_debug_env(sandbox, api.url))
    assert result.returncode in (0, 69), result.explain()
    assert_no_secret(result.output, f"`dagfleet sync` output ({name})")
    assert set(api.headers_seen("x-api-key")) <= {KEY}


def test_key_file_and_redis_password_never_logged(
    sandbox: Sandbox, api: FaultServer, tmp_path: Path, fault: Callable[..., None]
) -> None:
    fault("secret hygiene: key from a mounted file, Redis password in DAGFLEET_CACHE_URL")
    key_file = tmp_path / "secret" / "api-key"
    key_file.parent.mkdir()
    key_file.write_text(FILE_KEY + "\n")
    api.serve_workflows({"alpha": {}})
    env = _debug_env(
        sandbox,
        api.url,
        DAGFLEET_API_KEY_FILE=key_file,
        DAGFLEET_CACHE_URL=f"redis://:{REDIS_PASSWORD}@127.0.0.1:9/0",
    )
    ok = sandbox.run("sync", env=env)
    assert ok.returncode == 0, ok.explain()
    assert list(api.headers_seen("x-api-key")) == [FILE_KEY]
    api.set("/airflowconfigs", Behaviour.json({"error": "bad key"}, 401))
    refused = sandbox.run("sync", env=env)
    assert refused.returncode == 75
    checked = sandbox.run("check", "--", "scheduler", env=env)
    assert checked.returncode == 0, checked.explain()
    for result in (ok, refused, checked):
        assert_no_secret(result.output, f"`dagfleet {' '.join(result.args)}` output")


def test_url_credentials_never_logged(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    """A config API URL with user:password (basic auth behind a proxy) must not print the password:
    not in log lines, not in exception texts, not in reprs."""
    fault("secret hygiene: password in DAGFLEET_API_URL")
    url = api.url.replace("http://", f"http://svc:{URL_PASSWORD}@")
    api.set("/airflowconfigs", Behaviour.json({"error": "down"}, 503))
    env = _debug_env(sandbox, url)
    failed = sandbox.run("sync", env=env)
    assert failed.returncode == 69, failed.explain()
    down = sandbox.run("sync", env=_debug_env(sandbox, dead_url().replace("http://", f"http://svc:{URL_PASSWORD}@")))
    checked = sandbox.run("check", "--", "scheduler", env=env)
    texts = {
        "`dagfleet sync` output (HTTP 503)": failed.output,
        "`dagfleet sync` output (connection refused)": down.output,
        "`dagfleet check` output": checked.output,
    }
    client = ConfigClient(url, KEY, connect_timeout=0.5, read_timeout=0.5, retrying=retry_policy(1, initial=0))
    api.stop()
    with pytest.raises(DagfleetError) as info:
        client.list_workflows()
    texts["exception text (connection refused)"] = str(info.value)
    texts["repr(ConfigClient)"] = repr(client)
    texts["repr(Settings)"] = repr(Settings.from_env({"DAGFLEET_API_URL": url}))
    leaks = {where: text for where, text in texts.items() if URL_PASSWORD in text}
    assert leaks == {}, f"the URL's password is shown in: {sorted(leaks)}\n" + "\n".join(leaks.values())[:3000]


def test_watch_output_never_holds_the_key(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    fault("secret hygiene: `dagfleet watch` at DEBUG through errors")
    api.serve_workflows({"alpha": {}})
    proc = subprocess.Popen(
        [DAGFLEET, "watch"],
        env=_debug_env(sandbox, api.url, DAGFLEET_SYNC_INTERVAL=0.1),
        cwd=sandbox.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for behaviour in (Behaviour.json({}, 401), Behaviour.json({}, 500), Behaviour.hang(3), Behaviour.raw("[")):
            seen = api.count("/airflowconfigs")
            api.set("/airflowconfigs", behaviour)
            assert api.wait_for(lambda s, seen=seen: s.count("/airflowconfigs") >= seen + 2, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "HTTP 401" in err
    assert_no_secret(out + err, "`dagfleet watch` output")


@pytest.fixture
def serve_config(sandbox: Sandbox) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [DAGFLEET, "serve-config", "--port", "0"],
        env=sandbox.env(DAGFLEET_API_KEY=KEY, DAGFLEET_LOG_LEVEL="DEBUG"),
        cwd=sandbox.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    head: list[str] = []
    match = None
    while match is None and len(head) < 20:
        head.append(proc.stderr.readline())
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/airflowconfigs", head[-1])
    assert match, head
    yield match.group(1), proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)


def test_serve_config_output_never_holds_the_key(
    serve_config: tuple[str, subprocess.Popen[str]], fault: Callable[..., None]
) -> None:
    fault("secret hygiene: `dagfleet serve-config` at DEBUG, right, wrong and missing keys")
    url, proc = serve_config
    assert requests.get(url + "/airflowconfigs", headers={"x-api-key": KEY}, timeout=10).status_code == 200
    assert requests.get(url + "/airflowconfigs", headers={"x-api-key": "wrong-" + KEY}, timeout=10).status_code == 401
    assert requests.get(url + "/airflowconfigs", timeout=10).status_code == 401
    assert requests.get(url + f"/airflowconfigs/{KEY}", headers={"x-api-key": KEY}, timeout=10).status_code == 404
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    # The key was only ever in a header; the one request that put it in the path is the client's own doing.
    text = "\n".join(line for line in (out + err).splitlines() if f"/airflowconfigs/{KEY}" not in line)
    assert_no_secret(text, "`dagfleet serve-config` output")
    assert "401" in err or "GET /airflowconfigs" in err  # the DEBUG request log was there to check


def test_run_output_never_holds_the_key(sandbox: Sandbox, api: FaultServer, fault: Callable[..., None]) -> None:
    fault("secret hygiene: `dagfleet run` at DEBUG, API refusing the key")
    api.set("/airflowconfigs", Behaviour.json({"error": "no"}, 401))
    result = sandbox.run("run", "--", sys.executable, "-c", "print('started')", env=_debug_env(sandbox, api.url))
    assert result.returncode == 0, result.explain()
    assert "started" in result.stdout
    assert_no_secret(result.output, "`dagfleet run` output")


# -- in-process: exception texts, tracebacks, every logger at DEBUG, reprs --------------------------
IN_PROCESS_FAULTS: list[tuple[str, Behaviour | None]] = [
    ("down", None),
    ("401", Behaviour.json({}, 401)),
    ("503", Behaviour.json({}, 503)),
    ("timeout", Behaviour.hang(5)),
    ("truncated", Behaviour.json(list(range(100))).with_(truncate_at=50)),
    ("malformed", Behaviour.raw("{")),
    ("HTML", Behaviour.html()),
    ("redirect", Behaviour(status=302, headers=(("Location", "/elsewhere"),))),
]


@pytest.mark.parametrize(("name", "behaviour"), IN_PROCESS_FAULTS, ids=[c[0] for c in IN_PROCESS_FAULTS])
def test_exception_texts_and_debug_logs_never_hold_secrets(
    name: str,
    behaviour: Behaviour | None,
    api: FaultServer,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[..., None],
) -> None:
    fault(f"secret hygiene: exception text and DEBUG logs, {name}")
    if behaviour is None:
        api.stop()
    else:
        api.set("/airflowconfigs", behaviour)
        api.set("/airflowconfigs/*", behaviour)
    client = ConfigClient(api.url, KEY, connect_timeout=0.5, read_timeout=0.5, retrying=retry_policy(2, initial=0))
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        for call in (client.list_workflows, lambda: client.get_config("alpha")):
            with pytest.raises(DagfleetError) as info:
                call()
            errors.append(info.value)
    client.close()
    for err in errors:
        text = "".join(traceback.format_exception(err))
        assert_no_secret(str(err) + repr(err) + text + repr(err.args), f"exception ({name})")
    assert_no_secret(caplog.text, f"DEBUG logs ({name})")
    assert_no_secret(repr(client) + str(client), "ConfigClient repr")


def test_reprs_of_settings_and_client_hold_no_secret(tmp_path: Path, fault: Callable[..., None]) -> None:
    fault("secret hygiene: repr of Settings and ConfigClient")
    key_file = tmp_path / "key"
    key_file.write_text(FILE_KEY)
    settings = Settings.from_env(
        {
            "DAGFLEET_API_URL": "https://config.example.com",
            "DAGFLEET_API_KEY": KEY,
            "DAGFLEET_API_KEY_FILE": str(key_file),
            "DAGFLEET_CACHE_URL": f"redis://:{REDIS_PASSWORD}@redis:6379/0",
            "DAGFLEET_DAGS_FOLDER": str(tmp_path / "dags"),
        }
    )
    assert settings.api_key == FILE_KEY
    client = ConfigClient.from_settings(settings)
    assert_no_secret(repr(settings) + str(settings), "repr(Settings)")
    assert_no_secret(repr(client) + str(client), "repr(ConfigClient)")
    from dagfleet.authoring.cache import open_cache

    assert_no_secret(repr(open_cache(settings)), "repr of the config cache")


def test_invalid_settings_are_reported_without_their_values(sandbox: Sandbox, fault: Callable[..., None]) -> None:
    fault("secret hygiene: invalid DAGFLEET_* values are not echoed")
    env = sandbox.env(
        DAGFLEET_API_URL=f"ftp://svc:{URL_PASSWORD}@host",
        DAGFLEET_API_KEY=KEY,
        DAGFLEET_CACHE_URL=f"memcached://:{REDIS_PASSWORD}@host",
        DAGFLEET_RETRIES=KEY,
    )
    for args in (("sync",), ("check", "--", "scheduler")):
        result = sandbox.run(*args, env=env)
        assert result.returncode == 2, result.explain()
        assert_no_secret(result.output, f"`dagfleet {' '.join(args)}` output")


# -- chart NOTES ----------------------------------------------------------------------------------
def _helm_binary() -> str:
    """helm v4 on PATH, else the one `make tools` puts into .tools/bin (as tests/chart does)."""
    for helm in filter(None, [shutil.which("helm"), shutil.which("helm", path=str(REPO / ".tools" / "bin"))]):
        version = subprocess.run([helm, "version", "--short"], capture_output=True, text=True, timeout=30, check=False)
        if version.stdout.startswith("v4."):
            return helm
    pytest.fail("the chart NOTES check needs helm v4: run `make tools` (or `make test`)")


def _helm(*args: str, home: Path) -> str:
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": str(home / "cache")}
    proc = subprocess.run([_helm_binary(), *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


SECRET_VALUES = [
    f"configApi.url=https://svc:{URL_PASSWORD}@config.example.com/base",
    f"configApi.apiKey={KEY}",
    "workflowSecrets[0].name=db-creds",
    f"workflowSecrets[0].data.PASSWORD={WORKFLOW_SECRET}",
]


@pytest.mark.helm
def test_chart_notes_hold_no_secret(tmp_path: Path, fault: Callable[..., None]) -> None:
    """NOTES are rendered cluster-free by `helm install --dry-run=client` (`helm template` skips them)."""
    fault("secret hygiene: rendered chart NOTES")
    external = [arg for value in SECRET_VALUES for arg in ("--set", value)]
    reference = [arg for value in SECRET_VALUES[1:] for arg in ("--set", value)]
    reference += ["--set", "referenceConfigApi.enabled=true"]
    for sets in (external, reference):
        out = _helm(
            "install", "rel", str(REPO / "chart"), "--dry-run=client", "--namespace", "ns", *sets, home=tmp_path
        )
        assert "NOTES:" in out
        notes = out.split("NOTES:", 1)[1]
        assert "API key: Secret" in notes
        assert_no_secret(notes, "chart NOTES")


@pytest.mark.helm
def test_chart_puts_the_key_and_workflow_secrets_only_in_secrets(tmp_path: Path, fault: Callable[..., None]) -> None:
    fault("secret hygiene: rendered chart objects (key only inside Secrets)")
    sets = [arg for value in SECRET_VALUES for arg in ("--set", value)]
    rendered = _helm("template", "rel", str(REPO / "chart"), "--namespace", "ns", *sets, home=tmp_path)
    holders = []
    for document in yaml.safe_load_all(rendered):
        if not document:
            continue
        text = yaml.safe_dump(document)
        if any(s in text for s in (KEY, WORKFLOW_SECRET)) and document.get("kind") != "Secret":
            holders.append(f"{document['kind']}/{document['metadata']['name']}")
    assert holders == [], f"the API key or a workflow secret value is in non-Secret objects: {holders}"
