"""Mutation testing of dagfleet's core with mutmut, one module at a time (`make mutation`).

mutmut 3 names a mutant after its file's path and only strips a leading ``src/``, while the package
lives in ``entrypoint/dagfleet``. So each module is run in a stage of its own,
``.run/mutation/<module>/``, laid out the way mutmut expects: ``src/dagfleet`` (a copy of the
package), the tests and the files they read, and a ``pyproject.toml`` whose ``[tool.mutmut]`` names
the one module to mutate and the test subset. ``PYTHONPATH`` points at mutmut's mutated copy so a
``dagfleet`` that a test starts as a subprocess runs the mutant too.

Usage: ``python scripts/mutation.py run MODULE...`` then ``python scripts/mutation.py summary``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = REPO / ".run" / "mutation"
# What the tests read besides the package and themselves (support.paths.REPO is the stage).
ALSO_COPY = ["bench", "chart", "docs", "examples", "scripts", "Makefile", "mk"]
# The fast subset that exercises each module (2 shared cores: the whole of tests/entrypoint and
# tests/faults takes 18 minutes under mutmut before the first mutant runs). Every module also gets
# the fuzz suite at MUTATION_FUZZ_EXAMPLES derandomized examples.
SYNC = ["tests/entrypoint/test_sync.py", "tests/entrypoint/test_templates.py", "tests/faults/test_api_faults.py",
        "tests/faults/test_hostile_input.py"]  # fmt: skip
TESTS = {
    "workflow_ids": ["tests/entrypoint/test_workflow_ids.py", "tests/entrypoint/test_sync.py"],
    "plan": SYNC,
    "store": [*SYNC, "tests/entrypoint/test_status.py"],
    "materializer": SYNC,
    "client": ["tests/entrypoint/test_client.py", "tests/entrypoint/test_jsonlimits.py", *SYNC],
    "config": ["tests/dag/test_dag_config.py", "tests/entrypoint/test_validate.py", "tests/entrypoint/test_sync.py"],
}
FUZZ = "tests/fuzz"


def _pyproject(module: str) -> str:
    base = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return (
        base
        + f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = ["src/dagfleet/{module}.py"]
also_copy = {json.dumps(ALSO_COPY)}
pytest_add_cli_args_test_selection = {json.dumps([*TESTS[module], FUZZ])}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not helm and not docker"]
use_git_change_detection = false
"""
    )


def stage(module: str) -> Path:
    """A fresh stage for ``module``: the package under src/, the tests, a pyproject naming it."""
    where = STAGES / module
    shutil.rmtree(where, ignore_errors=True)
    (where / "src").mkdir(parents=True)
    shutil.copytree(REPO / "entrypoint" / "dagfleet", where / "src" / "dagfleet", ignore=_pycache)
    shutil.copytree(REPO / "tests", where / "tests", ignore=_pycache)
    for name in ALSO_COPY:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, where / name, ignore=_pycache)
        else:
            shutil.copy2(source, where / name)
    (where / "pyproject.toml").write_text(_pyproject(module), encoding="utf-8")
    return where


def _pycache(_folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name in ("__pycache__", ".pytest_cache")]


def run(module: str, children: int) -> int:
    where = stage(module)
    env = {
        **os.environ,
        "PYTHONPATH": str(where / "mutants" / "src"),
        "DAGFLEET_FUZZ_EXAMPLES": os.environ.get("MUTATION_FUZZ_EXAMPLES", "10"),
        "DAGFLEET_FUZZ_DERANDOMIZE": "true",
    }
    mutmut = Path(sys.executable).with_name("mutmut")
    run_argv = [str(mutmut), "run", "--max-children", str(children)]
    code = subprocess.call(run_argv, cwd=where, env=env)  # noqa: S603 - our own fixed argv
    results = subprocess.run(  # noqa: S603 - our own fixed argv
        [str(mutmut), "results", "--all", "true"], cwd=where, env=env, capture_output=True, text=True, check=False
    )
    (STAGES / f"{module}.results.txt").write_text(results.stdout, encoding="utf-8")
    print(f"{module}: {_line(module, _statuses(results.stdout))}")
    return code


def _statuses(text: str) -> Counter[str]:
    """``mutmut results --all true`` lines are ``    <mutant>: <status>``."""
    return Counter(line.rpartition(": ")[2].strip() for line in text.splitlines() if ": " in line)


def _line(module: str, counts: Counter[str]) -> str:
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    rate = f"{100 * killed / total:.1f} %" if total else "n/a"
    details = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    return f"{total} mutants, {killed} killed ({rate}): {details}"


def summary() -> int:
    for results in sorted(STAGES.glob("*.results.txt")):
        module = results.name.removesuffix(".results.txt")
        print(f"{module}: {_line(module, _statuses(results.read_text(encoding='utf-8')))}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("modules", nargs="+")
    runner.add_argument("--max-children", type=int, default=1)
    sub.add_parser("summary")
    args = parser.parse_args(argv)
    if args.command == "summary":
        return summary()
    return max(run(module, args.max_children) for module in args.modules)


if __name__ == "__main__":
    sys.exit(main())
