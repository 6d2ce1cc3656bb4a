"""The bundled sample corpus: five captured `t.me/s` channel pages (page text dumps) that
`research-bot demo`, the tests and the benchmarks ingest.

Boundary: data only. The pages ship as package data (pyproject's `[tool.setuptools.package-data]`),
so an installed wheel (what the Docker image runs) has them next to this file, as a source checkout does.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

# setuptools installs wheels as plain folders, so the resource is a real directory that ingest can walk.
SAMPLE_CORPUS = Path(str(files(__name__) / "corpus"))
