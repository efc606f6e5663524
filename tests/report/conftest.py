"""Fixtures of the report tests: scenario patients as store frames + Assessment objects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report_scenarios

from pipeline.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The shipped defaults, without environment overrides."""
    return load_settings(env={})


@pytest.fixture()
def progression() -> report_scenarios.Scenario:
    return report_scenarios.progression()


@pytest.fixture()
def cleared() -> report_scenarios.Scenario:
    return report_scenarios.cleared()


@pytest.fixture()
def kb_sources() -> list[dict[str, str]]:
    return [dict(s) for s in report_scenarios.KB_SOURCES]
