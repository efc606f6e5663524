from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.notify.routing import address_problem, resolve_recipients

from .helpers import FALLBACK, TEAMS, make_settings


def test_known_team_gets_its_distribution_list(settings):
    route = resolve_recipients("thoracic-a", settings)
    assert route.recipients == tuple(TEAMS["thoracic-a"])
    assert route.care_team == "thoracic-a"
    assert not route.fallback
    assert route.warnings == ()


@pytest.mark.parametrize("team", [None, "", "   ", "thoracic-z"])
def test_missing_or_unknown_team_goes_to_fallback_with_ops_warning(settings, team):
    route = resolve_recipients(team, settings)
    assert route.recipients == (FALLBACK,)
    assert route.fallback
    assert len(route.warnings) == 1
    assert "fallback" in route.warnings[0]


def test_invalid_addresses_are_skipped_and_reported(tmp_path: Path):
    settings = make_settings(tmp_path)
    settings = settings.model_copy(update={"care_teams": {
        "t": ["good@hospital.example", "not an address", "Good@hospital.example"],
        "broken": ["nobody", "@x.example"],
    }})
    route = resolve_recipients("t", settings)
    assert route.recipients == ("good@hospital.example",)
    assert len(route.warnings) == 1 and "'not an address'" in route.warnings[0]
    broken = resolve_recipients("broken", settings)
    assert broken.recipients == (FALLBACK,)
    assert broken.fallback
    assert len(broken.warnings) == 3


def test_domain_allow_list(tmp_path: Path):
    settings = make_settings(tmp_path, allowed_domains=["hospital.example", "lab.example"])
    settings = settings.model_copy(update={"care_teams": {
        "t": ["a@hospital.example", "b@gmail.example"]}})
    route = resolve_recipients("t", settings)
    assert route.recipients == ("a@hospital.example",)
    assert "domain not allowed" in route.warnings[0]
    assert address_problem("x@Hospital.Example", ["hospital.example"]) is None


def test_unusable_fallback_is_a_config_error(tmp_path: Path):
    settings = make_settings(tmp_path, fallback_address="fallback-without-domain")
    with pytest.raises(ConfigError, match=r"field notify\.fallback_address"):
        resolve_recipients(None, settings)
