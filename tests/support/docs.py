"""The files of a docs page's examples: fenced blocks whose info string names a path."""

from __future__ import annotations

import re
from pathlib import Path

from support.paths import REPO


def doc_files(page: str, folder: Path, under: str = "") -> dict[str, Path]:
    """Write every block of ``docs/<page>`` fenced as ```` ```lang path ```` whose path starts
    with ``under`` into ``folder`` (as that path); path -> written file."""
    text = (REPO / "docs" / page).read_text()
    files = {}
    for path, body in re.findall(r"^```\w+ ([\w./-]+)\n(.*?)^```", text, flags=re.S | re.M):
        if not path.startswith(under):
            continue
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
        files[path] = target
    return files
