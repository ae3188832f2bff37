"""The Fleet page in Airflow's UI, in a real browser: headless Chromium (Debian's chromium +
chromium-driver, driven by selenium) logs in to a real `airflow api-server`, opens the page from
Airflow's navigation and reads the rows a real `dagfleet sync` recorded. A screenshot is kept in
.run/artifacts/fleet-page.png (FLEET_SCREENSHOT overrides the path).

Without Chromium the test skips with one line; under CI (CI=true) it fails instead: .ci/run
installs Chromium.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from support.net import free_port
from support.paths import REPO
from support.proc import stop_group
from support.wait import wait_until

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.airflow]
ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,900",
)  # fmt: skip
PASSWORD = "fleet-pw-4e8b2c"  # noqa: S105 - a throwaway login of a test-only Airflow
KEY = "fleet-key-91d3"
SCREENSHOT = Path(os.environ.get("FLEET_SCREENSHOT", REPO / ".run" / "artifacts" / "fleet-page.png"))


@pytest.fixture
def chromium_driver(tmp_path: Path) -> Iterator[Any]:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        message = f"no Chromium ({', '.join(missing)}): apt-get install chromium chromium-driver"
        if ON_CI:
            pytest.fail(f"{message}; CI=true, so the Fleet page test must run", pytrace=False)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def api_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `airflow api-server` (SimpleAuthManager, one admin with a known password) whose dags
    folder is the one `dagfleet sync` writes. Yields its URL and the environment to sync with.
    Indirect parameter: extra environment of the api-server only (e.g. DAGFLEET_STATUS_URL)."""
    server_only: dict[str, str] = getattr(request, "param", {})
    home = tmp_path / "airflow"
    home.mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGFLEET_", "AIRFLOW__"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://localhost:{port}",
        DAGFLEET_RETRIES="1",
        DAGFLEET_CONNECT_TIMEOUT="1",
    )
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    log = (tmp_path / "api-server.log").open("w+")
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "api-server", "--port", str(port)],
        env={**env, **server_only}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://localhost:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, f"api-server exited: {Path(log.name).read_text()[-3000:]}"
            try:
                return requests.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until("the api-server", healthy, 180, every=0.5)
        yield url, env
    finally:
        stop_group(proc)  # its own process group: SIGINT, then SIGTERM, then SIGKILL
        log.close()


def _sync(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dagfleet"), "sync"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def _status_json(env: dict[str, str]) -> dict[str, Any]:
    """`dagfleet status --json` on the dags folder the api-server reads."""
    cli = subprocess.run(
        [str(BIN / "dagfleet"), "status", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return json.loads(cli.stdout)


def _login_and_open_the_page(driver: Any, url: str) -> dict[str, list[str]]:
    """Log in through Airflow's UI, open Browse -> Fleet; the rows of its table by workflow."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 90)
    driver.get(f"{url}/plugin/fleet")
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Fleet']")))
    driver.switch_to.frame(frame)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#fleet tbody tr[data-workflow]")))
    return {
        row.get_attribute("data-workflow"): [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    }


STATUS_PORT = free_port()


@pytest.mark.parametrize(
    "api_server", [{"DAGFLEET_STATUS_URL": f"http://127.0.0.1:{STATUS_PORT}/status.json"}], indirect=True
)
def test_fleet_page_from_a_watch_sidecars_status_url(
    api_server: tuple[str, dict[str, str]], chromium_driver: Any, config_api_factory: Any, tmp_path: Path
) -> None:
    """As in the chart: the api-server's own dags folder is never synced; the page reads a
    `dagfleet watch` (another dags folder, its metrics port) through DAGFLEET_STATUS_URL."""
    url, env = api_server
    api = config_api_factory({"remote": {"tags": ["t"]}, "bad": {"tags": "not-a-list"}}, api_key=KEY)
    watch_env = {
        **env,
        "DAGFLEET_DAGS_FOLDER": str(tmp_path / "sidecar-dags"),
        "DAGFLEET_API_URL": api.url,
        "DAGFLEET_API_KEY": KEY,
        "DAGFLEET_METRICS_PORT": str(STATUS_PORT),
        "DAGFLEET_SYNC_INTERVAL": "3600",
    }
    watch = subprocess.Popen([str(BIN / "dagfleet"), "watch"], env=watch_env, stderr=subprocess.DEVNULL)
    try:

        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{STATUS_PORT}/readyz", timeout=5).status_code == 200
            except requests.ConnectionError:
                return False

        wait_until("the watch's first sync", ready, 120, every=0.5)
        rows = _login_and_open_the_page(chromium_driver, url)
        assert set(rows) == {"remote", "bad"}
        assert rows["remote"][1:4] == ["synced", "demo", "config API"]
        assert rows["bad"][1] == "rejected" and "tags" in rows["bad"][6]
        served = requests.get(f"http://127.0.0.1:{STATUS_PORT}/status.json", timeout=5).json()
        assert rows["remote"][5] == served["fleet_version"] != "-"  # each workflow's version, through the URL
        assert not (Path(env["AIRFLOW__CORE__DAGS_FOLDER"]) / ".dagfleet").exists()  # not from the local folder
    finally:
        watch.terminate()
        watch.wait(timeout=30)

    # The sidecar gone: the page is one line naming the URL, no table, no traceback.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(chromium_driver, 90)
    chromium_driver.switch_to.default_content()
    chromium_driver.refresh()
    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Fleet']")))
    chromium_driver.switch_to.frame(frame)
    line = wait.until(ec.presence_of_element_located((By.ID, "unavailable"))).text
    assert f"DAGFLEET_STATUS_URL http://127.0.0.1:{STATUS_PORT}/status.json" in line
    assert chromium_driver.find_elements(By.ID, "fleet") == []


def test_fleet_page_in_airflows_ui(
    api_server: tuple[str, dict[str, str]], chromium_driver: Any, config_api_factory: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, env = api_server
    api = config_api_factory({"good": {"tags": ["t"]}, "broken": {}, "gone": {}}, api_key=KEY)
    sync_env = {**env, "DAGFLEET_API_URL": api.url, "DAGFLEET_API_KEY": KEY}
    assert _sync(sync_env).returncode == 0
    first_version = _status_json(env)["fleet_version"]
    api.write({"good": {"tags": ["t"]}, "broken": {"tags": "not-a-list"}, "fresh": {"schedule": 12}})
    assert _sync(sync_env).returncode == 0

    # Not logged in: Airflow's own auth refuses the page and its JSON.
    assert requests.get(f"{url}/dagfleet/", timeout=30).status_code == 401
    assert requests.get(f"{url}/dagfleet/status.json", timeout=30).status_code == 401

    # With a token: the page's JSON is what `dagfleet status --json` says.
    token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    served = requests.get(f"{url}/dagfleet/status.json", headers=bearer, timeout=30).json()
    assert served == _status_json(env)
    current = served["fleet_version"]
    assert current and first_version and current != first_version

    driver = chromium_driver
    wait = WebDriverWait(driver, 90)
    driver.get(f"{url}/plugin/fleet")  # the navigation entry's route: Airflow asks to log in first
    wait.until(ec.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe[title='Fleet']")))
    assert frame.get_attribute("src") == f"{url}/dagfleet/"
    driver.switch_to.frame(frame)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#fleet tbody tr[data-workflow]")))
    rows = {
        row.get_attribute("data-workflow"): [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in driver.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    }
    assert set(rows) == {"good", "broken", "fresh", "gone"}
    assert rows["good"][1:4] == ["synced", "demo", "config API"]  # template from its record
    assert rows["good"][6] == "-"
    assert rows["broken"][1:4] == ["rejected", "demo", "last known good"]
    assert "'tags'" in rows["broken"][6]
    assert rows["fresh"][1] == "rejected" and "import error" in rows["fresh"][6]
    assert rows["gone"][1] == "pruned"
    # Each workflow's version: the fleet version that first held its DAG file as it is now (a run
    # created now pins it). Unchanged since the first sync: the first version; new, or removed
    # (kept unscheduled for DAGFLEET_REMOVED_GRACE): the current one.
    assert {w: rows[w][5] for w in rows} == {
        "good": first_version, "broken": first_version, "fresh": current, "gone": current,
    }  # fmt: skip

    # Each workflow with a DAG links to its DAG page in Airflow's UI (the whole window, not the frame).
    link = driver.find_element(By.CSS_SELECTOR, "tr[data-workflow='good'] a")
    assert link.get_attribute("href") == f"{url}/dags/good"
    assert link.get_attribute("target") == "_top"
    assert driver.find_elements(By.CSS_SELECTOR, "tr[data-workflow='gone'] a") == []  # pruned: no DAG

    summary = driver.find_element(By.ID, "summary").text
    assert summary.startswith("Not healthy: 3 generated DAG(s)")  # good, broken (kept), fresh (import error)
    assert "Last sync:" in summary and "Last success:" in summary
    assert f"Fleet version: {current}" in summary

    driver.switch_to.default_content()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    print(f"Fleet page screenshot: {SCREENSHOT}", file=sys.stderr)
