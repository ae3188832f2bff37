"""Image tests: build the image once per session and serve the reference config API to containers.

Every test marked ``docker`` needs a Docker engine. Without one they are skipped with one line,
except under CI (``CI=true``), where they must run and therefore fail instead. The image is built
with ``make image`` (cached layers make a rebuild take seconds), tagged ``$DAGFLEET_TEST_IMAGE``
(default ``dagfleet:dev``, the tag ``make image`` uses).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.image import BUILD_TIMEOUT, IMAGE_TAG, HostConfigApi, bridge_ip, docker, docker_problem, make_image
from support.paths import ON_CI
from support.setaside import SetAside

WORKFLOWS = ("smoke_one", "smoke-two", "smoke.three")


_set_aside = SetAside("SKIPPED")  # reported as one line at the end


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Docker (and not on CI) set the image tests aside, to report them in one line."""
    here = Path(__file__).parent
    ours = [item for item in items if item.get_closest_marker("docker") and here in Path(item.path).parents]
    if not ours:
        return
    problem = docker_problem()
    if problem is None or ON_CI:  # on CI the `docker_engine` fixture fails them instead
        for item in ours:
            item.add_marker(pytest.mark.timeout(BUILD_TIMEOUT))  # the first one may build the base image
        return
    _set_aside.take(config, items, ours, f"image tests: no Docker engine ({problem}); as root: bash .ci/docker.sh")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _set_aside.summary(terminalreporter)


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (fail under CI) when there is no Docker engine: one reason from one place, one `-ra` line."""
    problem = docker_problem()
    if problem is None:
        return
    message = f"image tests need a Docker engine: {problem} (as root: bash .ci/docker.sh)"
    if ON_CI:
        pytest.fail(f"{message}; CI=true, so they must run", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def image(docker_engine: None) -> str:
    """Build (or refresh from cache) the image with `make image`; returns its tag."""
    started = time.monotonic()
    result = make_image(IMAGE_TAG, BUILD_TIMEOUT)
    summary = [line for line in result.stderr.splitlines() if line.startswith("image: built")]
    print(f"{summary[-1] if summary else 'image built'} (make image: {time.monotonic() - started:.0f} s)")
    return IMAGE_TAG


@pytest.fixture(scope="session")
def image_config(image: str) -> dict[str, object]:
    """`.Config` of `docker image inspect`."""
    return json.loads(docker("image", "inspect", image).stdout)[0]["Config"]


@pytest.fixture(scope="session")
def config_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostConfigApi]:
    from dagfleet.service.server import make_server

    path = tmp_path_factory.mktemp("config-api") / "workflows.yaml"
    path.write_text(yaml.safe_dump({"workflows": {workflow: {} for workflow in WORKFLOWS}}))
    api_key = "dfk-" + secrets.token_hex(12)
    server = make_server(path, bridge_ip(), 0, api_key, "objects")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HostConfigApi(f"http://host.docker.internal:{server.server_port}", api_key, WORKFLOWS)
    server.shutdown()
    server.server_close()
