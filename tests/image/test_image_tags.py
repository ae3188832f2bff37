"""Tags that agree (issue #24): one version everywhere, and every image the docs and the chart name
is a tag `make image` produces (`FROM dagfleet:latest` in the docs and the chart's `dagfleet:0.1.0`
used to name images nothing built)."""

from __future__ import annotations

import os
import re
import tomllib

import yaml

import dagfleet
from support.paths import REPO
from support.proc import run

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# `dagfleet:<tag>` as an image: after FROM, `docker run/build -t`, `--entrypoint dagfleet`, in a table.
IMAGE_REF = re.compile(r"(?<![\w./:-])dagfleet:([\w.-]+)(?![\w/])")  # not `urn:dagfleet:…`
NOT_IMAGES = {"config"}  # `dagfleet:config:<id>`: a Redis key (docs/config.md)


def _tags(image: str | None = None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "IMAGE"} | ({"IMAGE": image} if image else {})
    result = run(["bash", str(REPO / "docker" / "build-image.sh")], timeout=60, env={**env, "PRINT_TAGS": "1"})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def _chart() -> dict[str, object]:
    return yaml.safe_load((REPO / "chart" / "Chart.yaml").read_text())


def test_one_version_everywhere() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    dockerfile = re.search(r"^ARG VERSION=(\S+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert dockerfile is not None
    assert {pyproject, dagfleet.__version__, str(_chart()["appVersion"]), dockerfile.group(1)} == {pyproject}


def test_make_image_tags_dev_and_the_charts_app_version() -> None:
    assert _tags() == ["dagfleet:dev", f"dagfleet:{_chart()['appVersion']}"]
    assert _tags("dagfleet:h99") == ["dagfleet:h99"]  # an engineer's own tag leaves the shared ones alone


def test_every_image_the_docs_and_the_chart_name_is_built() -> None:
    built = {tag.split(":", 1)[1] for tag in _tags()}
    named: dict[str, set[str]] = {}
    for page in PAGES:
        for tag in IMAGE_REF.findall(page.read_text()):
            named.setdefault(tag, set()).add(page.name)
    named.pop("<appVersion>", None)
    for tag in NOT_IMAGES:
        named.pop(tag, None)
    assert named, "no image named in the docs"
    assert set(named) <= built, {tag: pages for tag, pages in named.items() if tag not in built}
    image = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())["image"]
    assert image["repository"] == "dagfleet"
    assert (image["tag"] or str(_chart()["appVersion"])) in built


def test_the_image_reference_pattern_finds_what_a_user_copies() -> None:
    text = "FROM dagfleet:latest\ndocker run -d dagfleet:dev\n`dagfleet:config:<id>`\nhttp://dagfleet:8080/x\nurn:dagfleet:x"
    assert IMAGE_REF.findall(text) == ["latest", "dev", "config"]
