"""Config values of the wrong shape and duplicate YAML keys are one-line errors (issue #10.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.yamlio import load_yaml


def test_chip_genes_as_a_string_is_an_error_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "lab.yaml"
    cfg.write_text("rules:\n  chip_genes: DNMT3A\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    line = info.value.one_line()
    assert str(cfg) in line and "rules.chip_genes" in line and "list" in line
    assert "\n" not in line


def test_chip_genes_as_a_list_is_accepted_and_upper_cased(tmp_path: Path) -> None:
    cfg = tmp_path / "lab.yaml"
    cfg.write_text("rules:\n  chip_genes: [dnmt3a, TET2]\n", encoding="utf-8")
    assert load_settings(cfg, env={}).rules.chip_genes == ("DNMT3A", "TET2")


def test_duplicate_key_in_config_is_rejected_with_its_line(tmp_path: Path) -> None:
    cfg = tmp_path / "lab.yaml"
    cfg.write_text("notify:\n  ops_address: a@x.org\n  ops_address: b@x.org\n",
                   encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, env={})
    line = info.value.one_line()
    assert str(cfg) in line and "duplicate key 'ops_address'" in line and "line 3" in line


def test_load_yaml_rejects_nested_duplicates_and_keeps_normal_documents() -> None:
    assert load_yaml("a: 1\nb: [1, 2]\nc: {d: x}\n") == {"a": 1, "b": [1, 2], "c": {"d": "x"}}
    assert load_yaml("") is None
    with pytest.raises(yaml.YAMLError, match="duplicate key 'd'"):
        load_yaml("c:\n  - {d: 1, d: 2}\n")


def test_load_yaml_is_safe() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']\n")
