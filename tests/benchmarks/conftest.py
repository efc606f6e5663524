"""Benchmarks of issue #11 (not timed tests): skipped unless ``--benchmark-enable``.

``make bench`` runs the full-size set; ``make bench-ci`` the scaled-down regression check
(``test_regression.py``) against ``baseline.json``. Figures are recorded in
``docs/performance.md``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("benchmark_enable", default=False) or os.environ.get("CTDNA_BENCH"):
        return
    skip = pytest.mark.skip(reason="benchmark: run with `make bench` (--benchmark-enable)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


def load_cohort_script() -> ModuleType:
    """``scripts/make_cohort.py`` (a script, not a package) as a module."""
    script = REPO / "scripts" / "make_cohort.py"
    spec = importlib.util.spec_from_file_location("make_cohort", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def make_cohort() -> ModuleType:
    return load_cohort_script()
