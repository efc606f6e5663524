"""Readers on real caller VCFs, checked against values computed from the raw text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import InvalidVariantFileError
from pipeline.io import read_variant_file

from .conftest import text_records

pytestmark = pytest.mark.realdata


def _read(path: Path, **kw):
    return read_variant_file(path, sample_id="S1", **kw)


def test_mutect2_tumor_from_header_normal_first(realdata: Path) -> None:
    path = realdata / "umccr__vcf_stuff/test-mutect2.vcf.gz"
    result = _read(path)
    assert result.vcf_sample == "tumor_downsample"  # normal is the FIRST column
    assert result.genome_build == "GRCh37"
    expected = text_records(path, "tumor_downsample")
    calls = result.calls
    assert len(calls) == len(expected) == result.n_records
    exp_af = [float(r["FMT"]["AF"]) for r in expected]
    exp_dp = [int(r["FMT"]["DP"]) for r in expected]
    exp_alt = [int(r["FMT"]["AD"].split(",")[1]) for r in expected]
    np.testing.assert_allclose(calls["vaf"], exp_af, atol=1e-6)
    assert calls["depth"].tolist() == exp_dp
    assert calls["alt_reads"].tolist() == exp_alt
    assert set(calls["vaf_source"]) == {"FORMAT/AF"}
    assert calls.loc[0, "filter"] == "germline_risk;mapping_quality"
    # SnpEff ANN: gene and HGVS.p of the first protein-coding entry
    row = calls[calls["pos"] == 67407].iloc[0]
    assert row["gene"] == "WASH4P" and row["protein_change"] == "p.Pro156Pro"


def test_vardict_tumor_first_and_duplicate_filter(realdata: Path) -> None:
    path = realdata / "umccr__vcf_stuff/test-vardict.vcf.gz"
    result = _read(path, vcf_sample="tumor_downsample")
    expected = text_records(path, "tumor_downsample")
    np.testing.assert_allclose(result.calls["vaf"], [float(r["FMT"]["AF"]) for r in expected],
                               atol=1e-6)
    assert result.calls.loc[1, "filter"] == "REJECT"  # "REJECT;REJECT" de-duplicated


def _strelka_tier1_vaf(rec: dict) -> float:
    """Strelka user guide, "Somatic variant allele frequencies", computed from the raw text:
    SNV tier-1 {ALT}U / ({REF}U + {ALT}U); indel TIR / (TAR + TIR) (first value = tier 1)."""
    fmt = rec["FMT"]
    if "TIR" in fmt:
        tir, tar = int(fmt["TIR"].split(",")[0]), int(fmt["TAR"].split(",")[0])
        return tir / (tar + tir)
    alt = int(fmt[f"{rec['ALT'][0]}U"].split(",")[0])
    ref = int(fmt[f"{rec['REF']}U"].split(",")[0])
    return alt / (ref + alt)


def test_strelka2_tier1_counts(realdata: Path) -> None:
    path = realdata / "umccr__vcf_stuff/test-strelka2.vcf.gz"
    result = _read(path, vcf_sample="tumor_downsample")
    expected = text_records(path, "tumor_downsample")
    assert len(result.calls) == len(expected) == 37
    np.testing.assert_allclose(result.calls["vaf"], [_strelka_tier1_vaf(r) for r in expected],
                               atol=1e-12)
    assert set(result.calls["vaf_source"]) == {"strelka_tier1"}
    # issue #10 item 8: dividing by all four base counts put 9 of these 37 VAFs 0.5-4 % low
    four = [int(r["FMT"][f"{r['ALT'][0]}U"].split(",")[0])
            / sum(int(r["FMT"][f"{b}U"].split(",")[0]) for b in "ACGT") for r in expected]
    assert int((~np.isclose(result.calls["vaf"], four, rtol=1e-3)).sum()) == 9


def test_strelka1_snvs_and_indels_tier1(realdata: Path) -> None:
    path = realdata / "mskcc__vcf2maf/test_strelka.vcf"
    result = _read(path, vcf_sample="TUMOR", genome_build="b37")
    expected = text_records(path, "TUMOR")
    assert len(result.calls) == len(expected) == 240
    assert any("TIR" in r["FMT"] for r in expected)  # both kinds are exercised
    np.testing.assert_allclose(result.calls["vaf"], [_strelka_tier1_vaf(r) for r in expected],
                               atol=1e-12)
    assert result.calls["alt_reads"].tolist() == [
        int(r["FMT"]["TIR" if "TIR" in r["FMT"] else f"{r['ALT'][0]}U"].split(",")[0])
        for r in expected]


def test_with_two_columns_and_no_tumor_header_is_an_error(realdata: Path) -> None:
    with pytest.raises(InvalidVariantFileError, match="MB_normal_50x, tumor_downsample"):
        _read(realdata / "umccr__vcf_stuff/test-strelka2.vcf.gz")


def test_tso500_ref_records_skipped_undeclared_info_tolerated(realdata: Path) -> None:
    path = realdata / "umccr__vcf_stuff/test-tso500-tumoronly.vcf.gz"
    result = _read(path)
    expected = [r for r in text_records(path, "PTC_TSO200609VD_L2000553.bam")
                if r["ALT"] != ["."]]
    assert result.n_records == 35 and len(result.calls) == len(expected) == 31
    ad = [[int(x) for x in r["FMT"]["AD"].split(",")] for r in expected]
    np.testing.assert_allclose(result.calls["vaf"], [a[1] / sum(a) for a in ad], atol=1e-9)
    # AD comes before VF in the precedence; Pisces' VF divides by DP (which can hold one more
    # read than sum(AD)), so the two agree within 1e-3 on this panel.
    np.testing.assert_allclose(result.calls["vaf"], [float(r["FMT"]["VF"]) for r in expected],
                               atol=1e-3)
    kras = result.calls[result.calls["pos"] == 25206386].iloc[0]
    assert kras["alt_reads"] == 13 and kras["depth"] == 1398
    assert any("not declared" in w and "CodingVariant" in w for w in result.warnings)
    assert any("ALT '.'" in w for w in result.warnings)
    assert result.genome_build == "GRCh38"


def test_sage_multisample_selected_by_name(realdata: Path) -> None:
    path = realdata / "umccr__vcf_stuff/test-sage2-multitumor.vcf.gz"
    result = _read(path, vcf_sample="APGI_1965")
    row = result.calls.iloc[0]
    assert row["vaf"] == pytest.approx(0.291, abs=1e-6)
    assert (row["alt_reads"], row["depth"]) == (16, 55)


def test_lofreq_sites_only_info_af(realdata: Path) -> None:
    path = realdata / ("gavinoliver-prog__umi-aware-seqc2-ctdna-variant-calling/"
                       "arm_a_standard_tumor_only.lofreq.vcf.gz")
    result = _read(path)
    expected = text_records(path)
    assert result.vcf_sample is None and len(result.calls) == 1557
    np.testing.assert_allclose(result.calls["vaf"], [float(r["INFO"]["AF"]) for r in expected],
                               atol=1e-6)
    assert result.calls["depth"].tolist() == [int(r["INFO"]["DP"]) for r in expected]
    dp4 = [[int(x) for x in r["INFO"]["DP4"].split(",")] for r in expected]
    assert result.calls["alt_reads"].tolist() == [d[2] + d[3] for d in dp4]


def test_mutect1_ad_then_fa(realdata: Path) -> None:
    path = realdata / "mskcc__vcf2maf/test_mutect.vcf"
    result = _read(path, vcf_sample="TUMOR", genome_build="GRCh37")
    for rec, (_, row) in zip(text_records(path, "TUMOR"), result.calls.iterrows(), strict=True):
        ad = [int(x) for x in rec["FMT"]["AD"].split(",")]
        if sum(ad):
            assert row["vaf"] == pytest.approx(ad[1] / sum(ad))
            assert row["vaf"] == pytest.approx(float(rec["FMT"]["FA"]), abs=6e-3)
        else:
            assert row["vaf_source"] == "FORMAT/FA"
            assert row["vaf"] == pytest.approx(float(rec["FMT"]["FA"]), abs=1e-6)


def test_strelka1_without_contigs(realdata: Path) -> None:
    path = realdata / "mskcc__vcf2maf/test_strelka.vcf"
    result = _read(path, vcf_sample="TUMOR", genome_build="b37")
    assert result.genome_build == "GRCh37"
    assert any("no ##contig" in w for w in result.warnings)
    first = text_records(path, "TUMOR")[0]
    assert result.calls.loc[0, "vaf"] == pytest.approx(_strelka_tier1_vaf(first))


def test_varscan_freq_percent(realdata: Path) -> None:
    path = realdata / "mskcc__vcf2maf/test_varscan.vcf"
    result = _read(path, vcf_sample="TUMOR", genome_build="GRCh37")
    # record 92 has ALT 'A/T' (VarScan's ambiguous call): skipped with a warning (#10)
    expected = [r for r in text_records(path, "TUMOR") if "/" not in r["ALT"][0]]
    assert len(expected) == 499 and len(result.calls) == 499
    assert any("record 92: field ALT" in w and "A/T" in w for w in result.warnings)
    np.testing.assert_allclose(
        result.calls["vaf"], [float(r["FMT"]["FREQ"].rstrip("%")) / 100 for r in expected],
        atol=1e-9)
    assert result.calls.loc[0, "vaf"] == pytest.approx(0.3846)
    assert result.calls["alt_reads"].tolist() == [int(r["FMT"]["AD"]) for r in expected]


def test_pcgr_info_tvaf(realdata: Path) -> None:
    path = realdata / "sigven__pcgr/T001-COAD.grch38.vcf.gz"
    result = _read(path, genome_build="GRCh38")
    expected = text_records(path)
    np.testing.assert_allclose(result.calls["vaf"], [float(r["INFO"]["TVAF"]) for r in expected],
                               atol=1e-6)
    assert result.calls["depth"].tolist() == [int(r["INFO"]["TDP"]) for r in expected]


def test_umi_mutect2_multiallelic_split(realdata: Path) -> None:
    path = realdata / ("gavinoliver-prog__umi-aware-seqc2-ctdna-variant-calling/"
                       "arm_b_standard_tumor_normal.mutect2.filtered.vcf.gz")
    result = _read(path)
    assert result.vcf_sample == "tumor"
    expected = text_records(path, "tumor")
    assert len(result.calls) == sum(len(r["ALT"]) for r in expected)
    multi = next(r for r in expected if len(r["ALT"]) > 1)
    rows = result.calls[result.calls["pos"] == multi["POS"]]
    ad = [int(x) for x in multi["FMT"]["AD"].split(",")]
    assert rows["alt"].tolist() == multi["ALT"]
    assert rows["alt_reads"].tolist() == ad[1:]
    np.testing.assert_allclose(rows["vaf"], [float(x) for x in multi["FMT"]["AF"].split(",")],
                               atol=1e-6)


def test_gridss_breakends_and_single_breakends(realdata: Path) -> None:
    path = realdata / "PapenfussLab__gridss/COLO829v003T.purple.sv.vcf.gz"
    result = _read(path, vcf_sample="COLO829v003T.sorted.bam")
    calls = result.calls
    assert set(calls["variant_type"]) == {"sv"}
    assert calls["record_index"].is_unique
    first = calls.iloc[0]
    assert (first["mate_chrom"], first["mate_pos"]) == ("12", 41796101)
    single = calls[calls["alt"].str.endswith(".") | calls["alt"].str.startswith(".")]
    assert len(single) > 0 and single["mate_chrom"].isna().all()
    ids = {r["ID"]: r for r in text_records(path)}
    # a mate pair is reported once
    reported = {ids_key for ids_key, r in ids.items() if (r["CHROM"], r["POS"]) in
                set(zip(calls["chrom"], calls["pos"], strict=True))}
    for key in reported:
        mate = ids[key]["INFO"].get("MATEID")
        if mate and mate in ids and mate != key:
            assert not (mate in reported and ids[mate]["POS"] != ids[key]["POS"]
                        and (ids[mate]["CHROM"], ids[mate]["POS"]) in
                        set(zip(calls["chrom"], calls["pos"], strict=True))
                        and ids[key]["CHROM"] == ids[mate]["CHROM"]
                        and ids[key]["POS"] == ids[mate]["POS"])


def test_manta_pr_sr_proxy(realdata: Path) -> None:
    path = realdata / "umccr__vcf_stuff/HCC2218_manta.vcf"
    result = _read(path, vcf_sample="HCC2218C")
    first = text_records(path, "HCC2218C")[0]
    pr = [int(x) for x in first["FMT"]["PR"].split(",")]
    sr = [int(x) for x in first["FMT"]["SR"].split(",")]
    row = result.calls.iloc[0]
    assert row["vaf"] == pytest.approx((pr[1] + sr[1]) / sum(pr + sr))
    assert row["vaf_source"] == "manta_PR_SR"
    bnd = result.calls[result.calls["alt"] == "]17:72663037]A"].iloc[0]
    assert (bnd["mate_chrom"], bnd["mate_pos"]) == ("17", 72663037)
    assert (result.calls["alt"] == "T[1:228158942[").sum() == 0  # its mate, de-duplicated


def test_tso500_craft_cnv_fold_change(realdata: Path) -> None:
    path = realdata / ("YinanWang16__tso500-ctdna-post-processing/"
                       "FusionMix_DNA_1pct_rep1_CopyNumberVariants.vcf")
    result = _read(path)
    assert result.genome_build == "GRCh37"  # hg19 contig lengths
    expected = [r for r in text_records(path, "FusionMix_DNA_1pct_rep1") if r["ALT"] != ["."]]
    calls = result.calls
    assert result.n_records == 59 and len(calls) == len(expected)
    assert set(calls["variant_type"]) == {"cnv"} and set(calls["cnv_kind"]) == {"fold_change"}
    assert calls["copy_number"].tolist() == pytest.approx([float(r["FMT"]["FC"])
                                                           for r in expected])
    assert calls["gene"].tolist() == [r["INFO"]["ANT"] for r in expected]
    assert calls["vaf"].isna().all()


def test_vep_csq_order_from_header(realdata: Path) -> None:
    path = realdata / "brentp__cyvcf2/test-hemi.vcf"
    result = _read(path, vcf_sample="15G15594", genome_build="GRCh37")
    header = [line for line in path.read_text().splitlines() if line.startswith("##INFO=<ID=CSQ")]
    names = header[0].split("Format: ")[1].rstrip('">').split("|")
    first = text_records(path)[0]["INFO"]["CSQ"].split(",")[0].split("|")
    assert names[0] == "Consequence"
    assert result.calls.loc[0, "gene"] == first[names.index("SYMBOL")]
