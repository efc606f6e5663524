"""Profiles as the lab's data (#12 item 5), unclassified vendor rows (#9 item 4) and
draw-level tables (#9 item 7), at the reader level."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from pipeline.errors import InputError, InvalidVariantFileError
from pipeline.io import read_variant_file
from pipeline.io.profiles import (
    ProfileError,
    known_profiles,
    load_all,
    load_profile,
    search_path,
    validate_profile_name,
)

from .conftest import FIXTURES

LAB_PROFILE = """\
name: labpanel
detect_columns: [Specimen, Symbol, AF_pct]
sample_id: {column: Specimen}
genome_build: GRCh38
columns: {Symbol: gene, Change: protein_change}
vaf_column: AF_pct
vaf_unit: percent
constants: {variant_type: snv}
"""


def test_every_shipped_profile_passes_the_schema() -> None:
    names = {p.name for p in load_all()}
    assert {"guardant360", "tso500_fusions", "pcgr_fusions", "mrd_meanaf"} <= names


def test_lab_profile_dir_is_searched_first_and_shipped_stay_available(tmp_path: Path) -> None:
    (tmp_path / "labpanel.yaml").write_text(LAB_PROFILE)
    table = tmp_path / "t.csv"
    table.write_text("Specimen,Symbol,Change,AF_pct\nL1,ALK,G1202R,0.8\n")
    folders = search_path([tmp_path])
    assert folders[0] == tmp_path and folders[-1].name == "profiles"
    assert {"labpanel", "guardant360"} <= set(known_profiles(folders))
    result = read_variant_file(table, sample_id="L1", settings=_Settings(str(tmp_path)))
    assert result.caller == "labpanel"
    assert result.calls["vaf"].tolist() == pytest.approx([0.008])
    # The environment override (no settings) reaches the same folder.
    assert search_path(env={"CTDNA_PROFILES_DIR": str(tmp_path)})[0] == tmp_path


class _Settings:
    def __init__(self, folder: str) -> None:
        self.profiles_dir = folder


def test_env_override_reaches_settings(tmp_path: Path) -> None:
    from pipeline.config import load_settings

    settings = load_settings(env={"CTDNA_PROFILES_DIR": str(tmp_path)})
    assert settings.profiles_dir == [str(tmp_path)]


def test_mistyped_key_is_one_line_naming_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "typo.yaml").write_text(LAB_PROFILE.replace("vaf_unit:", "vaf_units:"))
    with pytest.raises(ProfileError) as info:
        load_profile("typo", search_path([tmp_path]))
    message = info.value.one_line()
    assert "\n" not in message and "typo.yaml" in message and "vaf_units" in message
    assert "unknown key" in message


def test_profile_values_are_validated(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(LAB_PROFILE.replace("percent", "permille"))
    with pytest.raises(ProfileError, match=r"bad\.yaml: field vaf_unit"):
        load_profile("bad", search_path([tmp_path]))


@pytest.mark.parametrize("name", ["../x", "/etc/guardant360", "sub/guardant360",
                                  "guardant360.yaml", ".hidden"])
def test_profile_must_be_a_name_not_a_path(name: str) -> None:
    with pytest.raises(InputError, match="not a profile name"):
        validate_profile_name(name)
    with pytest.raises(InputError, match="not a profile name"):
        load_profile(name)


def test_unclassified_rows_keep_the_draw_and_are_warned() -> None:
    result = read_variant_file(FIXTURES / "guardant_untyped.csv", sample_id="X1_0")
    calls = result.calls.set_index("protein_change")
    assert calls.loc["Splice", "variant_type"] == "unclassified"
    assert calls.loc["Exon", "variant_type"] == "unclassified"
    assert calls.loc["L858R", "variant_type"] == "snv"  # the other calls are kept
    assert calls.loc["L858R", "vaf"] == pytest.approx(0.0003)
    assert "G12C" not in calls.index  # ctDNA = 0: a non-detect, not a call
    warning = next(w for w in result.warnings if "cannot type" in w)
    assert "TP53 Splice (line 2)" in warning and "EGFR Exon (line 4)" in warning
    assert result.assay == "guardant360"


def test_untyped_rows_can_still_be_refused(tmp_path: Path) -> None:
    text = (load_profile("guardant360").path or "")
    shipped = Path(text).read_text().replace("untyped_rows: unclassified",
                                             "untyped_rows: reject")
    (tmp_path / "strict.yaml").write_text(shipped.replace("name: guardant360",
                                                          "name: strict"))
    with pytest.raises(InvalidVariantFileError, match="line 2: field variant_type"):
        read_variant_file(FIXTURES / "guardant_untyped.csv", sample_id="X1_0",
                          profile="strict", settings=_Settings(str(tmp_path)))


def test_relative_days_with_anchor_and_marker_only_draw() -> None:
    path = FIXTURES / "guardant_untyped.csv"
    result = read_variant_file(path, sample_id="X1_35", anchor_date=date(2021, 3, 1))
    assert result.collection_date == date(2021, 4, 5)
    empty = read_variant_file(path, sample_id="X1_70", anchor_date=date(2021, 3, 1))
    assert empty.calls.empty and empty.collection_date == date(2021, 5, 10)
    assert read_variant_file(path, sample_id="X1_35").collection_date is None  # no anchor


def test_draw_level_table_months_and_calls() -> None:
    path = FIXTURES / "mrd_draw_level.csv"
    pos = read_variant_file(path, sample_id="M1_3", anchor_date=date(2020, 1, 10))
    assert pos.caller == "mrd_meanaf" and pos.calls.empty
    assert pos.level is not None and pos.level.unit == "mean_vaf"
    assert pos.level.value == pytest.approx(2.5e-05) and pos.level.call == "positive"
    assert pos.collection_date == date(2020, 4, 26)  # 3.5 months x 30.44 d = 106.5 -> 107 days
    neg = read_variant_file(path, sample_id="M2_2", anchor_date=date(2020, 1, 10))
    # meanAF 0 on a negative draw: below the draw's LoD, never a level of zero.
    assert neg.level is not None and neg.level.value is None and neg.level.call == "negative"


def test_draw_level_unknown_call_spelling_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "mrd.csv"
    text = (FIXTURES / "mrd_draw_level.csv").read_text()
    path.write_text(text.replace(",Pos,2.5e", ",pos?,2.5e"))
    with pytest.raises(InvalidVariantFileError, match=r"line 3: field Test_status: unknown call"):
        read_variant_file(path, sample_id="M1_3")
