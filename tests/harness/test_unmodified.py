"""Nothing in tests/harness replaces Airflow's or the Kubernetes client's code (issue 26).

The harness's scheduler runs exactly what the chart renders, so its KubernetesExecutor is the
provider's own. Read with `ast` over every Python file of tests/harness (comments and docstrings do
not count), a file fails when it: defines a class deriving from one imported from `airflow` or the
kubernetes client; assigns to, `setattr`s or deletes an attribute reached from such an import;
patches anything (`monkeypatch`, `mock.patch`); or names the executor setting or PYTHONPATH (which
would swap in another executor or put harness code in front of Airflow's). Not marked `harness`:
it runs in `make test`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent
FOREIGN = {"airflow", "kubernetes", "kubernetes_asyncio"}
FORBIDDEN_WORDS = ("AIRFLOW__CORE__" + "EXECUTOR", "PYTHON" + "PATH")
PATCHERS = {"setattr", "delattr"}


def foreign_names(tree: ast.AST) -> set[str]:
    """Names bound by imports from airflow or the kubernetes client."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in FOREIGN}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FOREIGN:
            names |= {a.asname or a.name for a in node.names}
    return names


def root(node: ast.AST) -> str | None:
    """The name an expression such as `a.b[c].d()` starts from."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def docstrings(tree: ast.AST) -> set[int]:
    bodies = [n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)]
    first = [body.body[0] for body in bodies if body.body]
    return {id(node.value) for node in first if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}


def targets(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Assign | ast.Delete):
        return list(node.targets)
    return [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []


def replacements(source: str) -> list[str]:
    """Every place where the source replaces or patches foreign code, one line each."""
    tree = ast.parse(source)
    foreign, skipped, found = foreign_names(tree), docstrings(tree), []
    for node in ast.walk(tree):
        line = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ClassDef):
            found += [f"{line}: {node.name} derives from {ast.unparse(b)}" for b in node.bases if root(b) in foreign]
        changed = [t for t in targets(node) if isinstance(t, ast.Attribute | ast.Subscript) and root(t) in foreign]
        found += [f"{line}: changes {ast.unparse(t)}" for t in changed]
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            patched = name in PATCHERS and node.args and root(node.args[0]) in foreign
            if patched or "monkeypatch" in name or (name.split(".")[-1].startswith("patch") and "mock" in name):
                found.append(f"{line}: {name}(…)")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            found += [f"{line}: names {word}" for word in FORBIDDEN_WORDS if word in node.value]
    return found


@pytest.mark.parametrize("path", sorted(HARNESS.glob("*.py")), ids=lambda p: p.name)
def test_harness_file_replaces_nothing(path: Path) -> None:
    assert replacements(path.read_text()) == [], path.name


BAD = {
    "subclass": "from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubernetesExecutor\n"
    "class Mine(KubernetesExecutor):\n    pass\n",
    "module attribute": "import airflow.providers.cncf.kubernetes.kube_client as kc\nkc.get_kube_client = len\n",
    "class attribute": "from kubernetes.client import CoreV1Api\nCoreV1Api.create_namespaced_pod = print\n",
    "setattr": "from kubernetes import watch\nsetattr(watch.Watch, 'stream', print)\n",
    "monkeypatch": "def test(monkeypatch):\n    monkeypatch.setattr('x.y', 1)\n",
    "mock.patch": "from unittest import mock\nwith mock.patch('airflow.x'):\n    pass\n",
    "executor setting": "env = {'AIRFLOW__CORE__" + "EXECUTOR': 'harness.Mine'}\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_replacement_is_found(name: str) -> None:
    assert replacements(BAD[name]), name
