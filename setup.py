"""The build hook: the browser editor goes into the wheel.

Everything else about the package is in pyproject.toml. `build_py` here also puts the built
editor (frontend/dist: index.html, api-docs.html, assets/) into the wheel as `collab/_editor`,
which collab/static.py serves when there is no checkout build. Node is needed to build a wheel
(from the checkout or from the sdist, which carries the frontend sources), never to install or
run one.

The editor is built with `node frontend/build.mjs` (after `npm ci` when frontend/node_modules is
missing) unless frontend/dist/index.html is newer than every source, as `make frontend` decides:
a checkout where `make` has built it is packaged as it is. An editable install (`pip install -e`,
what `make install` does) builds nothing: the server finds the checkout's frontend/dist itself.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

FRONTEND = Path(__file__).resolve().parent / "frontend"
DIST = FRONTEND / "dist"
PACKAGED = Path("collab", "_editor")  # inside the wheel; collab/static.py names it too


def _sources() -> Iterator[Path]:
    yield from (FRONTEND / name for name in ("build.mjs", "package.json", "package-lock.json"))
    yield from (p for p in (FRONTEND / "src").rglob("*") if p.is_file())


def _up_to_date() -> bool:
    index = DIST / "index.html"  # build.mjs writes it last
    if not index.is_file():
        return False
    built = index.stat().st_mtime_ns
    return all(p.stat().st_mtime_ns <= built for p in _sources())


def _run(command: list[str]) -> None:
    print(f"collab build: {' '.join(command)} (in {FRONTEND})", flush=True)
    subprocess.run(command, cwd=FRONTEND, check=True)


def build_editor() -> None:
    """frontend/dist, built now unless it is newer than its sources."""
    if _up_to_date():
        print(f"collab build: {DIST} is up to date", flush=True)
        return
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise SystemExit(
            "collab build: Node.js (>= 18) and npm are needed to build the browser editor into"
            " the wheel (only to build it: the wheel then runs without Node)"
        )
    if not (FRONTEND / "node_modules").is_dir():
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    _run([node, "build.mjs"])


class BuildPyWithEditor(build_py):
    """build_py, then the built editor copied into the build tree as collab/_editor."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        build_editor()
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(DIST, target)


setup(cmdclass={"build_py": BuildPyWithEditor})
