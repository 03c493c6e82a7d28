"""The version lives in collab/_version.py alone: the build, `collab --version`,
`collab.__version__` and the OpenAPI schema all read it from there."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import collab
from collab._version import __version__
from collab.api import meta

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_takes_the_version_from_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "collab._version.__version__"


def test_version_flag_public_attribute_and_schema_agree():
    out = subprocess.run(
        [sys.executable, "-m", "collab", "--version"],
        capture_output=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout.decode().strip() == f"collab {__version__}"
    assert collab.__version__ == __version__
    assert meta.package_version() == __version__
    assert __version__.count(".") >= 2  # a release number, not the "0" of an unknown version
