"""The package's version, in this one place: pyproject.toml reads it at build time
(`[tool.setuptools.dynamic]`), `collab.__version__`, `collab --version` and the OpenAPI schema
import it."""

__version__ = "0.1.0"
