"""Shared fixtures of the rule-engine tests."""

from __future__ import annotations

import pytest

from pipeline.config import Settings, load_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    """Shipped defaults only (no lab override, no environment)."""
    return load_settings(env={})


@pytest.fixture(scope="session")
def rules_settings(settings: Settings) -> Settings:
    """Alias used by hypothesis tests (session-scoped, so reuse across examples is safe)."""
    return settings
