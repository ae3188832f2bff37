"""Mutation testing of dagfleet's core with mutmut, one module at a time (`make mutation`).

mutmut 3 names a mutant after its file's path and only strips a leading ``src/``, while the package
lives in ``entrypoint/dagfleet``. So each module is run in a stage of its own,
``.run/mutation/<module>/``, laid out the way mutmut expects: ``src/dagfleet`` (a copy of the
package), the tests and the files they read, and a ``pyproject.toml`` whose ``[tool.mutmut]`` names
the one module to mutate. mutmut writes the mutants; this script runs them. ``PYTHONPATH`` points
at mutmut's mutated copy and ``MUTANT_UNDER_TEST`` names the mutant, so a ``dagfleet`` that a test
starts as a subprocess runs the mutant too (``support.sandbox`` passes both on).

Which tests run for a mutant: one coverage run of every module's test subset records which test
runs which line of the package (in-process and in the ``dagfleet`` subprocesses a test starts:
``scripts/mutation_contexts.py``). A mutant runs only the tests that run its function, fastest
first, stopping at the first failure; a mutant whose function no test runs is ``no-tests`` (a
survivor, not run). Mutants run round-robin over the module's functions, so a run stopped at its
time budget has tried every function. A run resumes where the last one stopped, as long as the
module's source is unchanged.

``--tests K`` runs only the K fastest of a mutant's tests: a kill is still a kill, a survivor
says how many of its tests it ran (``recheck`` runs them all).

Usage: ``python scripts/mutation.py run [--minutes N] [--tests K] MODULE...``, then ``summary`` (the figures),
``survivors MODULE`` (each surviving mutant as a diff) and, after adding tests, ``recheck MODULE
[--mutant M] [--test T]`` (the mutants not killed run again, against the module's whole subset or
the named tests as they are now: ``killed-on-recheck``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from itertools import chain, zip_longest
from pathlib import Path

import coverage

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "entrypoint" / "dagfleet"
# Seconds at most for one mutant's tests. A run past it is a `timeout`: not counted as killed, since
# on a loaded shared machine a slow run is more often load than a mutant that hangs.
MUTANT_TIMEOUT = 300
STAGES = REPO / ".run" / "mutation"
# What the tests read besides the package and themselves (support.paths.REPO is the stage).
ALSO_COPY = ["bench", "chart", "dags", "docs", "examples", "scripts", "Makefile", "mk"]
# Each module (named by its wing) and the tests that exercise it (then the fuzz suite at
# MUTATION_FUZZ_EXAMPLES, default 10, derandomized examples). The union is what the coverage run
# measures; `recheck` runs a survivor against its module's whole subset.
MODULES = {
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
PYTEST = ["-p", "no:cacheprovider", "-m", "not helm and not docker"]
KILLED = ("killed", "killed-by-new-test", "killed-on-recheck")


def _tests(module: str) -> list[str]:
    return [*MODULES[module], FUZZ]


def _file(module: str) -> str:
    """``sync.apply`` → ``sync/apply.py`` (a module is named by its wing: docs/architecture.md)."""
    return module.replace(".", "/") + ".py"


def _digest(*paths: Path) -> str:
    """sha256 over the files' bytes (folders: every ``.py`` file under them)."""
    files = chain.from_iterable(sorted(p.rglob("*.py")) if p.is_dir() else [p] for p in paths)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _pyproject(module: str) -> str:
    base = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return (
        base
        + f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = ["src/dagfleet/{_file(module)}"]
also_copy = {json.dumps(ALSO_COPY)}
pytest_add_cli_args_test_selection = {json.dumps(_tests(module))}
pytest_add_cli_args = {json.dumps(PYTEST)}
use_git_change_detection = false
"""
    )


def stage(module: str) -> Path:
    """A fresh stage for ``module``: the package under src/, the tests, a pyproject naming it."""
    where = STAGES / module
    shutil.rmtree(where, ignore_errors=True)
    (where / "src").mkdir(parents=True)
    shutil.copytree(PACKAGE, where / "src" / "dagfleet", ignore=_pycache)
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


def generate(where: Path, module: str, env: dict[str, str]) -> list[str]:
    """mutmut writes the mutants (``mutants/src``, one trampoline per function); their names are in
    the module's ``.meta``. mutmut's own runner is not used: with tests that run a sync in-process
    its stats step (which test covers which function) records nothing in mutmut 3.8.1 ("could not
    find any test case for any mutant"); coverage (``measure``) says it instead."""
    mutmut = Path(sys.executable).with_name("mutmut")
    with subprocess.Popen(  # noqa: S603 - our own fixed argv
        [str(mutmut), "run"], cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        for line in proc.stdout or ():
            if "files mutated" in line:  # generated: what mutmut does next (its stats) is not wanted
                break
        proc.terminate()
    meta = where / "mutants" / "src" / "dagfleet" / f"{_file(module)}.meta"
    if not meta.exists():
        raise SystemExit(f"mutmut generated no mutants in {where}")
    return sorted(json.loads(meta.read_text())["exit_code_by_key"], key=_natural)


def _natural(name: str) -> tuple[str, int]:
    stem, _, number = name.rpartition("_")
    return stem, int(number) if number.isdigit() else 0


def function_of(mutant: str) -> str:
    """``dagfleet.store.xǁFleetStoreǁmanifest__mutmut_8`` → ``FleetStore.manifest``."""
    mangled = mutant.rpartition(".")[2].rpartition("__mutmut_")[0]
    return ".".join(part for part in mangled.removeprefix("x").split("ǁ") if part) if "ǁ" in mangled else mangled[2:]


def function_lines(source: Path) -> dict[str, range]:
    """Each top-level function and method of a module (``name`` / ``Class.name``): its lines."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found: dict[str, range] = {}
    for node in tree.body:
        inner = node.body if isinstance(node, ast.ClassDef) else [node]
        prefix = f"{node.name}." if isinstance(node, ast.ClassDef) else ""
        for item in inner:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                found[prefix + item.name] = range(item.lineno, (item.end_lineno or item.lineno) + 1)
    return found


# -- which tests run which line -----------------------------------------------------------------
RCFILE = """[run]
parallel = true
data_file = {data}
include = {package}/*
context = ${{MUTATION_CONTEXT}}
"""


def measure(env: dict[str, str]) -> dict[str, object]:
    """One coverage run of every module's subset, cached while the package is unchanged (a test
    added since is not chosen for a mutant: ``recheck`` runs the whole subset):
    ``{"lines": {file: {line: [test, ...]}}, "durations": {test: seconds}}``."""
    cached = STAGES / "coverage-map.json"
    digest = _digest(PACKAGE)
    if cached.exists() and json.loads(cached.read_text())["digest"] == digest:
        return json.loads(cached.read_text())
    folder = STAGES / "coverage"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rcfile = folder / "coveragerc"
    rcfile.write_text(RCFILE.format(data=folder / ".coverage", package=PACKAGE), encoding="utf-8")
    tests = list(dict.fromkeys(chain.from_iterable(_tests(module) for module in MODULES)))
    extra = {"COVERAGE_PROCESS_START": str(rcfile), "MUTATION_DURATIONS": str(folder / "durations.json")}
    path = os.pathsep.join([str(REPO / "scripts"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    argv = ["-m", "coverage", "run", f"--rcfile={rcfile}", "-m", "pytest", "-q", "-p", "mutation_contexts"]
    done = subprocess.run(  # noqa: S603 - our own fixed argv
        [sys.executable, *argv, *PYTEST, *tests], cwd=REPO, env={**env, **extra, "PYTHONPATH": path}, check=False
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"the coverage run of the test subsets could not run (pytest exit {done.returncode})")
    return _map(folder, rcfile, digest)


def _map(folder: Path, rcfile: Path, digest: str) -> dict[str, object]:
    """The coverage run's data, combined: only the tests that passed (``durations.json``) count."""
    subprocess.run([sys.executable, "-m", "coverage", "combine", f"--rcfile={rcfile}"], cwd=folder, check=True)  # noqa: S603
    durations = _read(folder / "durations.json")
    lines = {
        name: {line: [test for test in tests if test in durations] for line, tests in by_line.items()}
        for name, by_line in _lines(folder / ".coverage").items()
    }
    found = {"digest": digest, "lines": lines, "durations": durations}
    (STAGES / "coverage-map.json").write_text(json.dumps(found), encoding="utf-8")
    return found


def _read(path: Path) -> dict[str, float]:
    return json.loads(path.read_text(encoding="utf-8"))


def _lines(data_file: Path) -> dict[str, dict[str, list[str]]]:
    """Per file of the package (its path under it), per line: the tests that ran it."""
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    lines: dict[str, dict[str, list[str]]] = {}
    for measured in data.measured_files():
        by_line = data.contexts_by_lineno(measured)
        tests = {str(n): sorted({_test_of(c) for c in ctx} - {""}) for n, ctx in by_line.items()}
        lines[Path(measured).relative_to(PACKAGE).as_posix()] = tests
    return lines


def _test_of(context: str) -> str:
    """A context is ``test`` (dynamic, the pytest process) or ``test|`` / ``|test`` (static, a subprocess)."""
    return next((part for part in context.split("|") if part), "")


def selection(module: str, found: dict[str, object]) -> dict[str, list[str]]:
    """Each function of ``module``: the tests that run any of its lines, fastest first."""
    by_line: dict[str, list[str]] = found["lines"].get(_file(module), {})  # type: ignore[attr-defined]
    durations: dict[str, float] = found["durations"]  # type: ignore[assignment]
    chosen: dict[str, list[str]] = {}
    for name, lines in function_lines(PACKAGE / _file(module)).items():
        tests = set(chain.from_iterable(by_line.get(str(n), []) for n in lines))
        chosen[name] = sorted(tests, key=lambda test: (durations.get(test, 1e9), test))
    return chosen


# -- running mutants ----------------------------------------------------------------------------
def verdict(where: Path, env: dict[str, str], mutant: str, tests: list[str], timeout: float) -> tuple[str, str]:
    """``killed`` (a test failed; the second item names it), ``timeout``, ``survived`` or ``error``
    (pytest could not run the selection: exit 3-5)."""
    argv = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", *PYTEST]
    try:
        done = subprocess.run(  # noqa: S603 - our own fixed argv
            [*argv, *tests], cwd=where / "mutants", env={**env, "MUTANT_UNDER_TEST": mutant},
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "timeout", ""
    if done.returncode in (1, 2):
        failed = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", done.stdout, re.MULTILINE)
        return "killed", failed.group(1) if failed else ""
    return ("survived", "") if done.returncode == 0 else ("error", f"pytest exit {done.returncode}")


def _env(where: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(where / "mutants" / "src"),
        "DAGFLEET_FUZZ_EXAMPLES": os.environ.get("MUTATION_FUZZ_EXAMPLES", "10"),
        "DAGFLEET_FUZZ_DERANDOMIZE": "true",
    }


def round_robin(mutants: list[str]) -> list[str]:
    """The first mutant of every function, then every second one, ...: a run stopped early has
    tried every function."""
    by_function: dict[str, list[str]] = defaultdict(list)
    for mutant in mutants:
        by_function[function_of(mutant)].append(mutant)
    return [m for m in chain.from_iterable(zip_longest(*by_function.values())) if m is not None]


class Results:
    """``.run/mutation/<module>.results.txt``: a header (the source's digest, how many mutants),
    then ``    <mutant>: <status> [<the test that killed it>]``, written after every mutant."""

    def __init__(self, module: str, digest: str, total: int) -> None:
        self.path = STAGES / f"{module}.results.txt"
        self.header = f"# {module} source {digest} mutants {total}"
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        self.done = dict(_entry(line) for line in lines[1:]) if lines[:1] == [self.header] else {}

    def record(self, mutant: str, status: str, detail: str = "") -> None:
        self.done[mutant] = f"{status} {detail}".strip()
        body = "".join(f"    {name}: {value}\n" for name, value in self.done.items())
        self.path.write_text(f"{self.header}\n{body}", encoding="utf-8")


def _entry(line: str) -> tuple[str, str]:
    name, _, value = line.strip().partition(": ")
    return name, value


def run(module: str, minutes: float, most: int | None = None) -> int:
    where = stage(module)
    env = _env(where)
    mutants = generate(where, module, env)
    found = measure({**os.environ})
    tests, durations = selection(module, found), found["durations"]
    results = Results(module, _digest(PACKAGE / _file(module)), len(mutants))
    sound: dict[str, bool] = {}  # a killing test: does it pass with no mutant active (mutmut's trampolines)?
    deadline = time.monotonic() + 60 * minutes
    for mutant in round_robin(mutants):
        if mutant in results.done:
            continue
        if time.monotonic() > deadline:
            break
        covering = tests.get(function_of(mutant), [])
        chosen = covering[:most]
        if not chosen:
            results.record(mutant, "no-tests")
            continue
        timeout = min(MUTANT_TIMEOUT, 60 + 10 * sum(durations.get(test, 10) for test in chosen))
        status, detail = verdict(where, env, mutant, chosen, timeout)
        if status == "killed" and detail:
            if detail not in sound:
                sound[detail] = verdict(where, env, "none", [detail], MUTANT_TIMEOUT)[0] == "survived"
            status, detail = ("killed", detail) if sound[detail] else ("error", f"{detail} fails with no mutant too")
        results.record(mutant, status, detail or f"({len(chosen)} of the {len(covering)} tests that run it)")
    print(f"{module}: {_line(results.path)}", flush=True)
    return 0


def _statuses(path: Path) -> tuple[int, Counter[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    total = int(lines[0].rpartition(" ")[2]) if lines and lines[0].startswith("#") else 0
    return total, Counter(_entry(line)[1].partition(" ")[0] for line in lines if not line.startswith("#"))


def _line(path: Path) -> str:
    total, counts = _statuses(path)
    ran = sum(counts.values())
    killed = sum(counts.get(status, 0) for status in KILLED)
    rate = f"{100 * killed / ran:.1f} %" if ran else "n/a"
    details = ", ".join(f"{status} {count}" for status, count in sorted(counts.items()))
    return f"{total} mutants, {ran} tried, {total - ran} not run; {killed} killed ({rate} of those tried): {details}"


def summary() -> int:
    for results in sorted(STAGES.glob("*.results.txt")):
        print(f"{results.name.removesuffix('.results.txt')}: {_line(results)}")
    return 0


def recheck(module: str, mutants: list[str] | None = None, tests: list[str] | None = None) -> int:
    """Run again, with the tests as they are now (after new tests), the named mutants (default:
    every one the last run did not kill) against the named tests (default: the module's whole
    subset): ``killed-on-recheck`` (the killing test named), or ``survived`` / ``timeout``."""
    where = STAGES / module
    shutil.rmtree(where / "mutants" / "tests")
    shutil.copytree(REPO / "tests", where / "mutants" / "tests", ignore=_pycache)
    lines = (STAGES / f"{module}.results.txt").read_text(encoding="utf-8").splitlines()
    results = Results(module, lines[0].split()[3], int(lines[0].rpartition(" ")[2]))
    for name, value in list(results.done.items()):
        if (name not in mutants) if mutants else (value.partition(" ")[0] in KILLED):
            continue
        status, killer = verdict(where, _env(where), name, tests or _tests(module), MUTANT_TIMEOUT)
        results.record(name, "killed-on-recheck" if status == "killed" else status, killer)
    print(f"{module}: {_line(results.path)}", flush=True)
    return 0


def survivors(module: str) -> None:
    """Each surviving mutant of ``module`` as a diff (mutmut show)."""
    where = STAGES / module
    mutmut = Path(sys.executable).with_name("mutmut")
    for line in (STAGES / f"{module}.results.txt").read_text(encoding="utf-8").splitlines()[1:]:
        name, value = _entry(line)
        if value.partition(" ")[0] in ("survived", "no-tests", "timeout"):
            print(f"# {name}: {value}", flush=True)
            subprocess.run([str(mutmut), "show", name], cwd=where, check=False)  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    runner = sub.add_parser("run")
    runner.add_argument("--minutes", type=float, default=float("inf"), help="time budget per module")
    runner.add_argument("--tests", type=int, default=None, help="run at most this many (the fastest) tests per mutant")
    runner.add_argument("modules", nargs="+", choices=sorted(MODULES))
    sub.add_parser("summary")
    sub.add_parser("survivors").add_argument("module", choices=sorted(MODULES))
    again = sub.add_parser("recheck")
    again.add_argument("module", choices=sorted(MODULES))
    again.add_argument("--mutant", action="append", help="this mutant only (repeatable; default: every one not killed)")
    again.add_argument("--test", action="append", help="against this test only (repeatable; default: the subset)")
    args = parser.parse_args(argv)
    if args.command == "summary":
        return summary()
    if args.command == "recheck":
        return recheck(args.module, args.mutant, args.test)
    if args.command == "survivors":
        survivors(args.module)
        return 0
    return max(run(module, args.minutes, args.tests) for module in args.modules)


if __name__ == "__main__":
    sys.exit(main())
