"""The import graph of the first-party packages, beyond the layers contract.

Covers: no import cycle between modules (files), anywhere in the four packages; no
first-party module imports another first-party package through a string
(``importlib.import_module("task_controller...")``), which neither mypy nor the layers
contract would see; the layers contract itself holds (``lint-imports`` also runs it in
``make test``).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOTS = ("oasis_keda", "scaler", "worker", "task_controller")
REPO = Path(__file__).resolve().parents[2]


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:  # noqa: C901
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        work = [(node, iter(sorted(graph.find_modules_directly_imported_by(node))))]
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[current] = min(low[current], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[current])
                if low[current] == index[current]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == current:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]:
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_between_modules() -> None:
    graph = grimp.build_graph(*ROOTS)
    assert _cycles(graph) == []


def _package(module: str) -> str:
    """The layer package a dotted module belongs to (``oasis_keda.api``, ``worker``...)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "oasis_keda" else parts[0]


def _imported_names(tree: ast.Module) -> list[str]:
    """Module names passed to ``import_module``: literals, or module-level constants."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called not in ("import_module", "__import__"):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.append(arg.value)
        elif isinstance(arg, ast.Name) and arg.id in constants:
            names.append(constants[arg.id])
    return names


def test_no_string_imports_between_first_party_packages() -> None:
    offenders = []
    for root in ROOTS:
        for path in sorted((REPO / root).rglob("*.py")):
            own = _package(".".join(path.relative_to(REPO).with_suffix("").parts))
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for name in _imported_names(tree):
                if name.split(".")[0] in ROOTS and _package(name) != own:
                    offenders.append(f"{path.relative_to(REPO)} imports {name!r} by name")
    assert offenders == []


def test_layers_contract_holds() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]
