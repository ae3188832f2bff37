"""Build the project image the way a user does (`make image`), for the image and chart tests."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make_image(tag: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run `make image IMAGE=<tag>`; fail the test with the last lines of its output if it fails."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    result = subprocess.run(
        ["make", "-C", str(REPO), "--no-print-directory", "image", f"IMAGE={tag}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
        pytest.fail(f"make image failed ({result.returncode}):\n{tail}", pytrace=False)
    return result
