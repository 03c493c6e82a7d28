"""The import graph of `collab/` and `storage/`, and its cycles.

    python -m tests.import_graph            # each module and what it imports from the project
    python -m tests.import_graph --cycles   # only the cycles (none: exit 0)

Every import counts: at the top of a module, inside a function (an import placed there to dodge
a cycle is still a cycle), and under `if TYPE_CHECKING:` (reported apart: a type-only edge). A
package's `__init__` counts as the package. tests/unit/test_import_graph.py keeps it acyclic.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("collab", "storage")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _imports(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, typing_only
        else:
            yield from _imports(node, typing_only or _type_checking_block(node))


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The project module `name` refers to (a name inside a module: that module)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def edges(known: dict[str, Path]) -> dict[str, dict[str, bool]]:
    """module -> {imported module: whether only for type checking}."""
    graph: dict[str, dict[str, bool]] = {}
    for module, path in known.items():
        is_package = path.name == "__init__.py"
        out: dict[str, bool] = {}
        for node, typing_only in _imports(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                assert isinstance(node, ast.ImportFrom)
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    anchor = parts if is_package else parts[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] or [base]
            for target in targets:
                resolved = _resolve(target, known)
                if resolved is None or resolved == module:
                    continue
                out[resolved] = out.get(resolved, True) and typing_only
        graph[module] = out
    return graph


def cycles(graph: dict[str, dict[str, bool]], *, runtime_only: bool = False) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, typing_only in graph.get(v, {}).items():
            if runtime_only and typing_only:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", action="store_true", help="print only the cycles")
    args = parser.parse_args(argv)
    graph = edges(modules())
    if not args.cycles:
        for module in sorted(graph):
            deps = ", ".join(
                name + (" (types)" if typing_only else "")
                for name, typing_only in sorted(graph[module].items())
            )
            print(f"{module} -> {deps or '-'}")
    found = cycles(graph)
    runtime = cycles(graph, runtime_only=True)
    print(f"\n{len(found)} cycle(s), counting type-only imports" + (":" if found else ""))
    for component in found:
        print(f"  {' <-> '.join(component)}")
    print(f"{len(runtime)} cycle(s) at run time" + (":" if runtime else ""))
    for component in runtime:
        print(f"  {' <-> '.join(component)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
