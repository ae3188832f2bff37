"""The package's layout (docs/architecture.md): five wings, one import rule, no cycle, the doc true.

The import graph is read from the package's own source with ``ast`` (every ``import`` statement,
module-level or inside a function), so a new import anywhere is seen without running it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from support.paths import REPO

PACKAGE = REPO / "entrypoint" / "dagfleet"
WINGS = ("fleet", "api", "sync", "authoring", "service")
# What each wing may import (docs/architecture.md, "The wing rule"); the root package (its
# version) is open to all.
MAY_IMPORT = {
    "fleet": {"fleet"},
    "api": {"fleet", "api"},
    "sync": {"fleet", "api", "sync"},
    "authoring": {"fleet", "authoring"},
    "service": set(WINGS),
}
# The one documented exception: at parse time, with no stored record, the loader asks the live
# config API (docs/config.md, "Where a DAG gets its config"); imported inside that function only.
EXCEPTIONS = {("dagfleet.authoring.loader", "dagfleet.api.client"), ("dagfleet.authoring.loader", "dagfleet.api.retry")}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _targets(node: ast.AST, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name.split(".")[0] == "dagfleet"}
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "dagfleet":
        submodules = {f"{node.module}.{a.name}" for a in node.names} & known
        return submodules or {node.module}
    return set()


def _type_checking_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (never run)."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            hidden |= {id(n) for n in ast.walk(node)}
    return hidden


def import_graph(*, top_level_only: bool = False) -> dict[str, set[str]]:
    """module -> the dagfleet modules it imports when it runs (top_level_only: at import time);
    an import under ``if TYPE_CHECKING:`` never runs and is left out."""
    found = modules()
    known = set(found)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else list(ast.walk(tree))
        hidden = _type_checking_only(tree)
        graph[name] = {t for n in nodes if id(n) not in hidden for t in _targets(n, known)} - {name}
    return graph


def wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else None


def wing_breaches(graph: dict[str, set[str]]) -> list[str]:
    breaches = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            own, other = wing(source), wing(target)
            if own is None or other is None or (source, target) in EXCEPTIONS:
                continue
            if other not in MAY_IMPORT[own]:
                breaches.append(f"{source} -> {target}")
    return breaches


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_lives_in_a_wing() -> None:
    loose = [m for m in modules() if m != "dagfleet" and wing(m) is None]
    assert loose == [], "modules outside the five wings (docs/architecture.md says where each goes)"


def test_the_wing_rule_holds_for_every_import() -> None:
    assert wing_breaches(import_graph()) == []


def test_authoring_and_sync_never_import_each_other() -> None:
    graph = import_graph()
    crossing = [f"{s} -> {t}" for s, ts in graph.items() for t in ts if {wing(s), wing(t)} == {"authoring", "sync"}]
    assert crossing == []


def test_the_rule_sees_a_forbidden_import() -> None:
    """The checker itself: a made-up import from authoring into sync is a breach."""
    graph = {"dagfleet.authoring.cache": {"dagfleet.sync.plan"}, "dagfleet.sync.plan": {"dagfleet.fleet.store"}}
    assert wing_breaches(graph) == ["dagfleet.authoring.cache -> dagfleet.sync.plan"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    """Neither at import time nor through an import inside a function."""
    assert cycles(import_graph(top_level_only=True)) == []
    assert cycles(import_graph()) == []


def test_a_parse_imports_no_sync_api_or_service_module() -> None:
    """What ``from dagfleet import workflow`` loads in a fresh interpreter: fleet and authoring only."""
    code = (
        "import sys; from dagfleet import workflow, PodOperator, pod_kwargs; "
        "print(sorted(m for m in sys.modules if m.startswith('dagfleet.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    loaded = eval(done.stdout)  # noqa: S307 - our own subprocess printed a list of module names
    assert [m for m in loaded if wing(m) not in {"fleet", "authoring"}] == []


# -- docs/architecture.md matches the tree ------------------------------------------------------
DOC = REPO / "docs" / "architecture.md"
LISTED = re.compile(r"`((?:" + "|".join(WINGS) + r")/[a-z_]+\.py)`")


def test_the_architecture_doc_lists_every_module_in_its_wing() -> None:
    listed = set(LISTED.findall(DOC.read_text(encoding="utf-8")))
    tree = {str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert tree - {"__init__.py"} and listed == tree, {"missing from the doc": tree - listed, "gone": listed - tree}
