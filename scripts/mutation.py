"""Mutation testing of dagfleet's core with mutmut, one module at a time (`make mutation`).

mutmut 3 names a mutant after its file's path and only strips a leading ``src/``, while the package
lives in ``entrypoint/dagfleet``. So each module is run in a stage of its own,
``.run/mutation/<module>/``, laid out the way mutmut expects: ``src/dagfleet`` (a copy of the
package), the tests and the files they read, and a ``pyproject.toml`` whose ``[tool.mutmut]`` names
the one module to mutate and the test subset. ``PYTHONPATH`` points at mutmut's mutated copy so a
``dagfleet`` that a test starts as a subprocess runs the mutant too (mutmut only counts the tests
that call a function in its own process as covering it).

Usage: ``python scripts/mutation.py run MODULE...``, then ``summary`` (the figures),
``survivors MODULE`` (each surviving mutant as a diff) and, after adding tests, ``recheck MODULE``
(the survivors run again against the tests as they are now: ``killed-by-new-test``).
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
MUTANT_TIMEOUT = 300  # seconds for one mutant's subset (the longest subset takes ~60 s unmutated)
STAGES = REPO / ".run" / "mutation"
# What the tests read besides the package and themselves (support.paths.REPO is the stage).
ALSO_COPY = ["bench", "chart", "docs", "examples", "scripts", "Makefile", "mk"]
# The fast subset that exercises each module (2 shared cores: the whole of tests/entrypoint and
# tests/faults takes 18 minutes before the first mutant runs), then the fuzz suite at
# MUTATION_FUZZ_EXAMPLES (default 10) derandomized examples. A mutant's run stops at its first failure.
TESTS = {
    "fleet.workflow_ids": ["tests/entrypoint/test_workflow_ids.py", "tests/entrypoint/test_sync.py"],
    "sync.plan": ["tests/entrypoint/test_plan.py", "tests/entrypoint/test_sync.py",
                  "tests/entrypoint/test_templates.py"],
    "fleet.store": ["tests/entrypoint/test_store.py", "tests/entrypoint/test_sync.py",
                    "tests/entrypoint/test_status.py"],
    "sync.apply": ["tests/entrypoint/test_sync.py", "tests/entrypoint/test_templates.py",
                   "tests/faults/test_hostile_input.py"],
    "api.client": ["tests/entrypoint/test_client.py", "tests/entrypoint/test_jsonlimits.py",
               "tests/faults/test_api_faults.py"],
    "fleet.config": ["tests/dag/test_dag_config.py", "tests/entrypoint/test_validate.py"],
}  # fmt: skip
FUZZ = "tests/fuzz"


def _pyproject(module: str) -> str:
    base = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return (
        base
        + f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = ["src/dagfleet/{module.replace(".", "/")}.py"]
also_copy = {json.dumps(ALSO_COPY)}
pytest_add_cli_args_test_selection = {json.dumps(TESTS[module])}
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


def generate(where: Path, env: dict[str, str]) -> list[str]:
    """mutmut writes the mutants (``mutants/src``, one trampoline per function); their names are in
    the module's ``.meta``. mutmut's own runner is not used: with tests that run a sync in-process
    its stats step (which test covers which function) records nothing in mutmut 3.8.1 ("could not
    find any test case for any mutant"), so every mutant is run against the module's whole subset."""
    mutmut = Path(sys.executable).with_name("mutmut")
    with subprocess.Popen(  # noqa: S603 - our own fixed argv
        [str(mutmut), "run"], cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout or ():
            if "files mutated" in line:  # generated: what mutmut does next (its stats) is not wanted
                break
        proc.terminate()
    metas = list((where / "mutants" / "src" / "dagfleet").rglob("*.py.meta"))
    if not metas:
        raise SystemExit(f"mutmut generated no mutants in {where}")
    return sorted(json.loads(metas[0].read_text())["exit_code_by_key"], key=_natural)


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def verdict(where: Path, env: dict[str, str], mutant: str, tests: list[str]) -> str:
    """``killed`` (a test failed), ``timeout`` or ``survived``; the mutant is chosen by the
    ``MUTANT_UNDER_TEST`` variable, which subprocesses inherit, so a CLI a test starts runs it too."""
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not helm and not docker"]
    try:
        done = subprocess.run(  # noqa: S603 - our own fixed argv
            [*argv, *tests], cwd=where / "mutants", env={**env, "MUTANT_UNDER_TEST": mutant},
            capture_output=True, timeout=MUTANT_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "timeout"
    return "survived" if done.returncode == 0 else "killed"


def run(module: str) -> int:
    where = stage(module)
    env = {
        **os.environ,
        "PYTHONPATH": str(where / "mutants" / "src"),
        "DAGFLEET_FUZZ_EXAMPLES": os.environ.get("MUTATION_FUZZ_EXAMPLES", "10"),
        "DAGFLEET_FUZZ_DERANDOMIZE": "true",
    }
    results = STAGES / f"{module}.results.txt"
    mutants = generate(where, env)
    if verdict(where, env, "none", [*TESTS[module], FUZZ]) != "survived":
        raise SystemExit(f"{module}: the test subset fails without any mutant; fix that first")
    lines = []
    for mutant in mutants:
        lines.append(f"    {mutant}: {verdict(where, env, mutant, [*TESTS[module], FUZZ])}")
        results.write_text("\n".join(lines) + "\n", encoding="utf-8")  # as far as it got
    print(f"{module}: {_line(module, _statuses(results.read_text(encoding='utf-8')))}", flush=True)
    return 0


def _statuses(text: str) -> Counter[str]:
    """Result lines are ``    <mutant>: <status>``."""
    return Counter(line.rpartition(": ")[2].strip() for line in text.splitlines() if ": " in line)


def _line(module: str, counts: Counter[str]) -> str:
    total = sum(counts.values())
    killed = counts.get("killed", 0) + counts.get("timeout", 0) + counts.get("killed-by-new-test", 0)
    rate = f"{100 * killed / total:.1f} %" if total else "n/a"
    details = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    return f"{total} mutants run, {killed} killed ({rate}): {details}"


def summary() -> int:
    for results in sorted(STAGES.glob("*.results.txt")):
        module = results.name.removesuffix(".results.txt")
        print(f"{module}: {_line(module, _statuses(results.read_text(encoding='utf-8')))}")
    return 0


def recheck(module: str) -> int:
    """Run the survivors of the last run again with the tests as they are now (after new tests)."""
    where = STAGES / module
    tests = where / "mutants" / "tests"
    shutil.rmtree(tests)
    shutil.copytree(REPO / "tests", tests, ignore=_pycache)
    env = {
        **os.environ,
        "PYTHONPATH": str(where / "mutants" / "src"),
        "DAGFLEET_FUZZ_EXAMPLES": os.environ.get("MUTATION_FUZZ_EXAMPLES", "10"),
        "DAGFLEET_FUZZ_DERANDOMIZE": "true",
    }
    results = STAGES / f"{module}.results.txt"
    lines = results.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        name, _, status = line.strip().rpartition(": ")
        if status == "survived":
            again = verdict(where, env, name, [*TESTS[module], FUZZ])
            lines[index] = f"    {name}: {'killed-by-new-test' if again != 'survived' else 'survived'}"
            results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{module}: {_line(module, _statuses(results.read_text(encoding='utf-8')))}", flush=True)
    return 0


def survivors(module: str) -> None:
    """Each surviving mutant of ``module`` as a diff (mutmut show)."""
    where = STAGES / module
    mutmut = Path(sys.executable).with_name("mutmut")
    text = (STAGES / f"{module}.results.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if status == "survived":
            subprocess.run([str(mutmut), "show", name], cwd=where, check=False)  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("modules", nargs="+")
    sub.add_parser("summary")
    sub.add_parser("survivors").add_argument("module")
    sub.add_parser("recheck").add_argument("module")
    args = parser.parse_args(argv)
    if args.command == "summary":
        return summary()
    if args.command == "recheck":
        return recheck(args.module)
    if args.command == "survivors":
        survivors(args.module)
        return 0
    return max(run(module) for module in args.modules)


if __name__ == "__main__":
    sys.exit(main())
