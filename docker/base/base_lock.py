"""Cut the part of requirements.lock that the official Airflow image already has.

The stand-in base image must hold exactly what ``apache/airflow:<version>`` holds for our
purposes: Airflow and the cncf.kubernetes provider, at the versions of ``requirements.lock``.
The lock is made by ``uv pip compile`` and annotates every pin with ``# via <parents>``, so the
dependency closure of the chosen roots can be read from it without touching an index.

Usage: python3 base_lock.py requirements.lock ROOT [ROOT...] > base.lock
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# A pin, with the extras uv keeps (`--no-strip-extras`): `sqlalchemy[asyncio]==2.1.9`.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==")
VIA_ONE = re.compile(r"^\s+# via (.+)$")
VIA_ITEM = re.compile(r"^\s+#\s{3}(.+)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(lock: str) -> dict[str, tuple[list[str], set[str]]]:
    """Map each package to (its lines in the lock, the packages it is required by)."""
    entries: dict[str, tuple[list[str], set[str]]] = {}
    current: str | None = None
    in_via = False
    for line in lock.splitlines():
        if m := PIN.match(line):
            current = _norm(m.group(1))
            entries[current] = ([line], set())
            in_via = False
        elif current is None:
            continue
        elif line.lstrip().startswith("--hash"):
            entries[current][0].append(line)
        elif m := VIA_ONE.match(line):
            entries[current][1].add(m.group(1).strip())
        elif line.strip() == "# via":
            in_via = True
        elif in_via and (m := VIA_ITEM.match(line)):
            entries[current][1].add(m.group(1).strip())
        else:
            in_via = False
    return entries


def closure(entries: dict[str, tuple[list[str], set[str]]], roots: list[str]) -> set[str]:
    """Every package reachable from ``roots`` following the ``via`` edges backwards."""
    wanted = {_norm(r) for r in roots}
    missing = wanted - entries.keys()
    if missing:
        raise SystemExit(f"base_lock: not in the lock: {', '.join(sorted(missing))}")
    changed = True
    while changed:
        changed = False
        for name, (_, parents) in entries.items():
            if name not in wanted and any(_norm(p) in wanted for p in parents):
                wanted.add(name)
                changed = True
    return wanted


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    entries = parse(Path(argv[0]).read_text())
    keep = closure(entries, argv[1:])
    # Hash lines end in " \" except the last one of each entry; keep them as uv wrote them.
    print(f"# Subset of {Path(argv[0]).name} needed by: {' '.join(argv[1:])}")
    for name in sorted(keep):
        print("\n".join(entries[name][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
