"""Canonical variant table and vendor profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import GenomeBuildError, InputError, InvalidVariantFileError
from pipeline.io import read_variant_file
from pipeline.io.table import known_profiles

from .conftest import FIXTURES


def test_shipped_profiles() -> None:
    assert {"guardant360", "tso500_fusions", "pcgr_fusions"} <= set(known_profiles())


def test_canonical_table_rows_units_and_non_detects() -> None:
    result = read_variant_file(FIXTURES / "table_canonical.csv", sample_id="S1")
    calls = result.calls
    assert result.caller == "canonical" and result.file_format == "table"
    assert result.genome_build == "GRCh38" and result.n_records == 4
    assert calls["variant_type"].tolist() == ["snv", "fusion", "cnv"]
    assert calls["record_index"].tolist() == [3, 4, 5]  # physical lines (comment line 1)
    assert calls.loc[0, "vaf"] == pytest.approx(0.012) and calls.loc[0, "pos"] == 29220765
    assert calls.loc[1, "fusion_partner"] == "EML4"
    assert calls.loc[2, "copy_number"] == pytest.approx(3.1)
    assert any("non-detects" in w for w in result.warnings)  # KRAS vaf 0 is not a call


def test_canonical_sample_with_only_marker_row_has_no_calls() -> None:
    result = read_variant_file(FIXTURES / "table_canonical.csv", sample_id="S2")
    assert result.calls.empty and list(result.calls.columns)[:3] == ["record_index", "chrom",
                                                                     "pos"]


def test_unknown_sample_and_profile() -> None:
    with pytest.raises(InvalidVariantFileError, match="present: S1, S2"):
        read_variant_file(FIXTURES / "table_canonical.csv", sample_id="S9")
    with pytest.raises(InputError, match="guardant360"):
        read_variant_file(FIXTURES / "table_canonical.csv", sample_id="S1", profile="nope")


def test_table_without_build(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("sample_id,gene,variant_type,protein_change,vaf\nS1,ALK,snv,G1202R,0.01\n")
    with pytest.raises(GenomeBuildError):
        read_variant_file(path, sample_id="S1")
    assert read_variant_file(path, sample_id="S1", genome_build="hg19").genome_build == "GRCh37"


def test_unrecognised_table_lists_profiles(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InvalidVariantFileError, match="pcgr_fusions"):
        read_variant_file(path, sample_id="S1")


@pytest.mark.realdata
def test_guardant_multi_percent_and_non_detects(realdata: Path) -> None:
    path = realdata / "mumtahena__ctDNA_lung/multi.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    draw = [r for r in rows if r[0] == "G1" and r[1] == "727"]
    detected = [r for r in draw if float(r[3]) > 0]
    result = read_variant_file(path, sample_id="G1_727")
    assert result.caller == "guardant360" and result.n_records == len(draw)
    assert len(result.calls) == len(detected) > 0
    assert (result.calls["vaf"] > 0).all()  # ctDNA=0 rows never become VAF-0 calls
    assert sorted(result.calls["vaf"]) == pytest.approx(sorted(float(r[3]) / 100
                                                               for r in detected))


@pytest.mark.realdata
def test_guardant_prep_gg_fusion_and_resistance(realdata: Path) -> None:
    result = read_variant_file(realdata / "mumtahena__ctDNA_lung/prep_gg.csv", sample_id="G301_0")
    calls = result.calls
    fusions = calls[calls["variant_type"] == "fusion"]
    assert len(fusions) == 1  # EML4-ALK and reciprocal ALK-EML4 rows: one event
    assert fusions.iloc[0]["gene"] == "ALK" and fusions.iloc[0]["fusion_partner"] == "EML4"
    assert fusions.iloc[0]["vaf"] == pytest.approx(0.05)
    assert "L1196M" in calls["protein_change"].tolist()
    amp = calls[calls["variant_type"] == "cnv"].iloc[0]
    assert amp["gene"] == "BRAF" and amp["copy_number"] == pytest.approx(2.1)
    assert amp["cnv_kind"] == "plasma_cn"


@pytest.mark.realdata
def test_guardant_draw_without_alterations(realdata: Path) -> None:
    result = read_variant_file(realdata / "mumtahena__ctDNA_lung/prep_gg.csv", sample_id="G110_0")
    assert result.calls.empty


@pytest.mark.realdata
def test_tso500_fusions_preamble_and_reciprocal_rows(realdata: Path) -> None:
    path = realdata / ("YinanWang16__tso500-ctdna-post-processing/"
                       "FusionMix_DNA_1pct_rep1_Fusions.csv")
    result = read_variant_file(path, sample_id="FusionMix_DNA_1pct_rep1")
    calls = result.calls
    assert result.caller == "tso500_fusions" and result.genome_build == "GRCh37"
    eml4 = calls[calls["fusion_partner"] == "EML4"].iloc[0]
    assert (eml4["gene"], eml4["chrom"], eml4["pos"]) == ("ALK", "chr2", 29448092)
    assert eml4["vaf"] == pytest.approx(0.00156985871272)
    assert eml4["record_index"] == 23  # 19 preamble lines + header + 3rd data row
    assert (calls["fusion_partner"] == "NPM1").sum() == 1  # two rows, one event


@pytest.mark.realdata
def test_pcgr_fusions(realdata: Path) -> None:
    path = realdata / "sigven__pcgr/T001-BRCA.grch38.fusions.tsv"
    result = read_variant_file(path, sample_id="T001", genome_build="GRCh38")
    alk = result.calls[result.calls["gene"] == "ALK"].iloc[0]
    assert alk["fusion_partner"] == "EML4" and alk["alt_reads"] == 100
    assert (alk["chrom"], alk["pos"], alk["mate_chrom"], alk["mate_pos"]) == (
        "2", 29223528, "2", 42295554)
