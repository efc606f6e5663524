"""Rule and cadence settings: shipped YAML equals the schema; invalid values are ConfigErrors."""

from __future__ import annotations

import pytest

from pipeline.config import CadenceSettings, RulesSettings, load_settings
from pipeline.errors import ConfigError


def test_shipped_yaml_matches_schema_defaults(settings):
    assert settings.rules == RulesSettings()
    assert settings.cadence == CadenceSettings()


@pytest.mark.parametrize("body, field", [
    ("rules:\n  confirm_min_days: 100\n", "rules"),
    ("rules:\n  partial_decrease: 0.95\n", "rules"),
    ("rules:\n  confirm_window: 3\n", "rules.confirm_window"),
    ("rules:\n  deep_decrease: 1.5\n", "rules.deep_decrease"),
    ("cadence:\n  first_draw_weeks: [6, 3]\n", "cadence"),
])
def test_invalid_rule_config_is_config_error(tmp_path, body, field):
    path = tmp_path / "lab.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.field is not None and err.value.field.startswith(field)
    assert str(path) in err.value.one_line()


def test_lab_override_changes_rule_behaviour_and_config_version(tmp_path, settings):
    path = tmp_path / "lab.yaml"
    path.write_text("version: lab-1\nrules:\n  confirm_min_days: 21\n")
    lab = load_settings(path, env={})
    assert lab.rules.confirm_min_days == 21 and lab.version_label() != settings.version_label()
