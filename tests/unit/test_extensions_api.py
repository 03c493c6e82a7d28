"""Everything in collab/extensions/ is built on the public API only, as a third party's
extension would be: each name it imports from collab is one that `collab` exports (from
`collab` itself or from the module that defines it; the same object either way). A built-in
extension that reaches into the internals (the hub, a room, the saver) fails here."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import collab

EXTENSIONS = Path(collab.__file__).parent / "extensions"
PACKAGE = "collab.extensions"


def imports(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, names imported from it; [] for a plain `import module`), relative imports
    resolved as from a module of collab/extensions/."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            relative = "." * node.level + (node.module or "")
            module = importlib.util.resolve_name(relative, PACKAGE) if node.level else relative
            yield node.lineno, module, [alias.name for alias in node.names]


def violations(path: Path) -> list[str]:
    found = []
    for line, module, names in imports(path):
        if module != "collab" and not module.startswith("collab."):
            continue  # the standard library, third parties
        if module == PACKAGE or module.startswith(PACKAGE + "."):
            continue  # one extension module from another
        where = f"{path.name}:{line}"
        if not names:
            if module != "collab":
                found.append(f"{where}: import {module}")
            continue
        source = importlib.import_module(module)
        for name in names:
            public = name in collab.__all__
            if not public or getattr(source, name, None) is not getattr(collab, name):
                found.append(f"{where}: {name} from {module}")
    return found


def test_extensions_import_only_the_public_api() -> None:
    files = sorted(EXTENSIONS.rglob("*.py"))
    assert EXTENSIONS / "token_auth.py" in files
    problems = [problem for path in files for problem in violations(path)]
    assert problems == []


def test_the_check_sees_an_import_of_the_internals(tmp_path: Path) -> None:
    """The check itself: an extension importing the hub (or any non-public name) is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from collab.hub import Hub\n"
        "from collab.hooks import HookRunner, Extension\n"
        "from ..room import Room\n"
        "import collab.saver\n"
        "from collab import Extension as E, create_app\n"
        "import jwt\n"
    )
    found = [problem.split(": ", 1)[1] for problem in violations(bad)]
    assert found == [
        "Hub from collab.hub",
        "HookRunner from collab.hooks",
        "Room from collab.room",
        "import collab.saver",
    ]
