"""Recognition (alk-knowledge.md 1.7, 3.2-3.4, 4.1-4.2): coordinates, annotations, CNV, fusions."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.errors import InputError
from pipeline.schema import CATEGORIES
from tests.knowledge.conftest import make_calls

BUILD_KEYS = [("GRCh37", "grch37"), ("GRCh38", "grch38")]


def _one(kb, row, build="GRCh37", **kw):
    out = kb.annotate(make_calls([row]), build, **kw)
    return out.iloc[0]


@pytest.mark.parametrize("build,key", BUILD_KEYS)
@pytest.mark.parametrize("prefix", ["", "chr"])
def test_every_hotspot_allele_recognised_from_bare_coordinates(kb, build, key, prefix):
    hot = kb.data.hotspot_alleles
    hot = hot[(hot[f"{key}_ref"].str.len() == hot[f"{key}_alt"].str.len())]
    calls = make_calls([{
        "chrom": prefix + h[f"{key}_chrom"], "pos": int(h[f"{key}_pos"]),
        "ref": h[f"{key}_ref"], "alt": h[f"{key}_alt"],
        "variant_type": "snv" if len(h[f"{key}_ref"]) == 1 else "mnv"} for _, h in hot.iterrows()])
    out = kb.annotate(calls, build)
    assert list(out["gene"]) == list(hot["gene"])
    assert list(out["alteration"]) == list(hot["protein"])
    assert list(out["kb_id"]) == [f"{g}:{p}" for g, p in zip(hot["gene"], hot["protein"],
                                                            strict=True)]
    assert set(out["category"]) <= set(CATEGORIES)
    alk = out[out["gene"] == "ALK"]
    assert (alk["category"] == "alk_resistance").all() and len(alk) == 29
    assert (out.loc[out["gene"] == "KRAS", "category"] == "bypass").all()
    assert (out.loc[out["gene"] == "TP53", "category"] == "transformation").all()


@pytest.mark.parametrize("build,pos", [("GRCh37", 29443613), ("GRCh38", 29220747)])
def test_g1202_decoys(kb, build, pos):
    # c.3604 is at `pos`; c.3606 (the codon's third base) at pos - 2; codon neighbour outside
    rows = [
        {"chrom": "2", "pos": pos, "ref": "C", "alt": "T"},       # GGA>AGA  G1202R
        {"chrom": "2", "pos": pos, "ref": "C", "alt": "G"},       # GGA>CGA  G1202R (2nd route)
        {"chrom": "2", "pos": pos - 2, "ref": "T", "alt": "C"},   # GGA>GGG  synonymous
        {"chrom": "2", "pos": pos - 1, "ref": "C", "alt": "T"},   # GGA>GAA  G1202E
        {"chrom": "2", "pos": pos + 1, "ref": "C", "alt": "T"},   # c.3603: codon 1201, not 1202
        {"chrom": "2", "pos": pos, "ref": "A", "alt": "T"},       # REF disagrees: wrong build
    ]
    out = kb.annotate(make_calls(rows), build)
    assert list(out["alteration"])[:4] == ["G1202R", "G1202R", "G1202=", "G1202E"]
    assert list(out["kb_id"])[:2] == ["ALK:G1202R", "ALK:G1202R"]
    assert out["kb_id"].iloc[2:].isna().all()
    assert (out["category"].iloc[2:] == "other").all()
    assert out["alteration"].iloc[4] is None and out["alteration"].iloc[5] is None


def test_two_base_mnv_in_one_codon_makes_a_new_amino_acid(kb):
    # G1202 GGA: c.3604G>A alone = R, c.3605G>A alone = E; together AAA = K (G1202K, alk 1.4)
    singles = kb.annotate(make_calls([
        {"chrom": "chr2", "pos": 29443613, "ref": "C", "alt": "T"},
        {"chrom": "chr2", "pos": 29443612, "ref": "C", "alt": "T"}]), "GRCh37")
    assert list(singles["alteration"]) == ["G1202R", "G1202E"]
    mnv = _one(kb, {"chrom": "chr2", "pos": 29443612, "ref": "CC", "alt": "TT",
                    "variant_type": "mnv"})
    assert mnv["alteration"] == "G1202K" and mnv["kb_id"] is None


def test_mnv_spanning_two_codons_is_decomposed_per_codon(kb):
    # plus 29443610..29443613 = C T C C: c.3607 (D1203) and c.3604 (G1202) in one MNV
    out = _one(kb, {"chrom": "2", "pos": 29443610, "ref": "CTCC", "alt": "TTCT",
                    "variant_type": "mnv"})
    assert out["alteration"] == "G1202R+D1203N"
    assert out["kb_id"] == "ALK:G1202R" and out["category"] == "alk_resistance"
    known = _one(kb, {"chrom": "2", "pos": 29443613, "ref": "CNNNNNNNNNNNNNNNNNC",
                      "alt": "TNNNNNNNNNNNNNNNNNT"})
    assert known["kb_id"] is None  # N bases: not a substitution the KB can read


def test_mnv_compound_in_cis_maps_to_compound_entry(kb):
    # one 19-base MNV record over plus 29443613..29443631 carrying c.3604G>A (G1202R) and
    # c.3586C>A (L1196M): a phased cis compound (alk-knowledge.md 1.6, 18 bp apart)
    ref = "CCCCCGCCATGAGCTCCAG"
    alt = "T" + ref[1:-1] + "T"
    out = _one(kb, {"chrom": "2", "pos": 29443613, "ref": ref, "alt": alt, "variant_type": "mnv"})
    assert out["alteration"] == "L1196M+G1202R"
    assert out["kb_id"] == "ALK:L1196M+G1202R" and out["category"] == "alk_resistance"
    assert out["kb_verified"] is False or not out["kb_verified"]  # compound row is recalled


@pytest.mark.parametrize("build,shift", [("GRCh37", 0), ("GRCh38", -222866)])
def test_indel_left_normalisation(kb, build, shift):
    rows = [
        {"chrom": "2", "pos": 29443611 + shift, "ref": "TCCC", "alt": "T"},   # normalised
        {"chrom": "2", "pos": 29443614 + shift, "ref": "CCCC", "alt": "C"},   # right-shifted
        {"chrom": "2", "pos": 29443612 + shift, "ref": "CCCCC", "alt": "CC"},  # padded
        {"chrom": "2", "pos": 29445271 + shift, "ref": "G", "alt": "GCGT"},   # T1151dup
        {"chrom": "2", "pos": 29445274 + shift, "ref": "T", "alt": "TCGT"},   # right-shifted
        {"chrom": "2", "pos": 29445272 + shift, "ref": "C", "alt": "CGTC"},
        {"chrom": "2", "pos": 29443611 + shift, "ref": "TCC", "alt": "T"},    # frameshift decoy
        {"chrom": "2", "pos": 29445271 + shift, "ref": "G", "alt": "GAAA"},   # other insertion
    ]
    out = kb.annotate(make_calls(rows), build)
    assert list(out["alteration"])[:6] == ["G1202del"] * 3 + ["T1151dup"] * 3
    assert list(out["kb_id"])[:6] == ["ALK:G1202del"] * 3 + ["ALK:T1151dup"] * 3
    assert out["kb_id"].iloc[6:].isna().all()


@pytest.mark.parametrize("text", [
    "ENSP00000373700:p.Gly1202Arg", "p.Gly1202Arg", "p.G1202R", "G1202R", "p.(Gly1202Arg)",
    "NP_004295.2:p.Gly1202Arg",
])
def test_protein_change_spellings(kb, text):
    out = _one(kb, {"gene": "ALK", "protein_change": text, "variant_type": "snv"})
    assert (out["alteration"], out["kb_id"], out["category"]) == ("G1202R", "ALK:G1202R",
                                                                  "alk_resistance")


@pytest.mark.parametrize("text", ["p.Thr1151dup", "p.Thr1151_Leu1152insThr", "1151Tins",
                                  "T1151_L1152insT"])
def test_t1151_synonyms(kb, text):
    out = _one(kb, {"gene": "ALK", "protein_change": text, "variant_type": "indel"})
    assert (out["alteration"], out["kb_id"]) == ("T1151dup", "ALK:T1151dup")


def test_vep_csq_and_snpeff_ann(kb):
    csq = ("T|missense_variant|MODERATE|ALK|ENSG00000171094|Transcript|ENST00000389048|"
           "protein_coding|23/29||ENST00000389048.3:c.3604G>A|ENSP00000373700.3:p.Gly1202Arg")
    ann = ("T|missense_variant|MODERATE|KRAS|ENSG00000133703|transcript|ENST00000256078.4|"
           "protein_coding|2/5|c.35G>C|p.Gly12Ala|35/570|35/570|12/189||")
    other = "A|synonymous_variant|LOW|FOO1|ENSG1|transcript|ENST1|protein_coding|1/2|c.3C>T|p.Leu1="
    out = kb.annotate(make_calls([
        {"annotation": csq, "variant_type": "snv"},
        {"annotation": ann + "," + other, "variant_type": "snv"},
        {"annotation": "A|missense_variant|MODERATE|FOO1|x|transcript|ENST1|pc|1/2|c.4G>A|"
                       "p.Val2Met", "gene": "FOO1", "variant_type": "snv"},
    ]), "GRCh37")
    assert list(out["alteration"]) == ["G1202R", "G12A", "V2M"]
    assert list(out["gene"]) == ["ALK", "KRAS", "FOO1"]
    assert list(out["category"]) == ["alk_resistance", "bypass", "other"]
    assert out["kb_id"].iloc[2] is None


def test_met_isoform_numbering_normalised(kb):
    long_iso = _one(kb, {"gene": "MET", "annotation":
                         "A|missense_variant|MODERATE|MET|E|transcript|ENST00000318493|pc|19/21|"
                         "c.3736G>A|ENSP00000317272:p.Asp1246Asn"})
    short_iso = _one(kb, {"gene": "MET", "protein_change": "D1228N"})
    assert long_iso["alteration"] == short_iso["alteration"] == "D1228N"
    assert long_iso["kb_id"] == "MET:D1228N"


def test_ras_codon_class_and_unlisted_change(kb):
    # KRAS G12 any change counts as bypass (codon class), even one not in the DoCM list
    g12f = _one(kb, {"gene": "KRAS", "protein_change": "G12F"})
    assert (g12f["alteration"], g12f["category"], g12f["kb_id"]) == ("G12F", "bypass", "KRAS:G12X")
    syn = _one(kb, {"gene": "KRAS", "protein_change": "p.Gly12="})
    assert syn["kb_id"] is None and syn["category"] == "other"


@pytest.mark.parametrize("build", ["GRCh37", "GRCh38"])
def test_met_exon14_splice_sites(kb, build):
    spec = kb.data.manifest["met_exon14"][build]
    acc, don = spec["acceptor"][1], spec["donor"][0]
    rows = [
        {"chrom": "chr7", "pos": acc, "ref": "G", "alt": "A"},          # c.2888-1
        {"chrom": "chr7", "pos": don, "ref": "G", "alt": "T"},          # c.3028+1
        {"chrom": "chr7", "pos": spec["exon_start"] - 20, "ref": "A" * 25, "alt": "A"},
        {"chrom": "chr7", "pos": spec["exon_start"] + 40, "ref": "C", "alt": "T"},  # exonic SNV
        {"chrom": "chr7", "pos": spec["window"][1] + 500, "ref": "G", "alt": "A"},
        {"gene": "MET", "protein_change": "exon 14 skipping", "variant_type": "indel"},
    ]
    out = kb.annotate(make_calls(rows), build)
    assert list(out["kb_id"]) == ["MET:exon14_skipping"] * 3 + [None, None,
                                                                "MET:exon14_skipping"]
    assert list(out["alteration"])[:3] == ["exon 14 skipping"] * 3


@pytest.mark.parametrize("kind,value,amp", [
    ("plasma_cn", 2.09, False), ("plasma_cn", 2.1, True), ("plasma_cn", 7.0, True),
    ("absolute_cn", 4.0, False), ("absolute_cn", 5.0, True),
    ("fold_change", 1.2, False), ("fold_change", 1.3, True),
    ("log2_ratio", 0.2, False), ("log2_ratio", 0.5, True),
])
def test_met_amplification_floor_per_cnv_kind(kb, kind, value, amp):
    out = _one(kb, {"gene": "MET", "variant_type": "cnv", "copy_number": value}, cnv_kind=kind)
    if amp:
        assert (out["alteration"], out["category"], out["kb_id"]) == (
            "amplification", "bypass", "MET:amplification")
    else:
        assert out["alteration"] is None and out["category"] == "other" and out["kb_id"] is None


def test_other_cnvs(kb):
    out = kb.annotate(make_calls([
        {"gene": "KRAS", "variant_type": "cnv", "copy_number": 3.0},
        {"gene": "MYC", "variant_type": "cnv", "copy_number": 9.0},
        {"gene": "NF2", "variant_type": "cnv", "copy_number": 0.0, "alt": "<DEL>"},
    ]), "GRCh38")
    assert list(out["alteration"]) == ["amplification", None, "deletion"]
    assert list(out["category"]) == ["bypass", "other", "bypass"]
    assert kb.met_plasma_cn_tier(2.5) == "low" and kb.met_plasma_cn_tier(2.7) == "intermediate"
    assert kb.met_plasma_cn_tier(6.7) == "intermediate" and kb.met_plasma_cn_tier(6.8) == "high"
    assert kb.met_plasma_cn_tier(2.0) is None


@pytest.mark.parametrize("build,alk_bp,eml4_bp", [("GRCh37", 29448092, 42493956),
                                                  ("GRCh38", 29223528, 42295554)])
def test_fusion_from_bnd_pair(kb, build, alk_bp, eml4_bp):
    rows = [
        {"chrom": "chr2", "pos": eml4_bp, "ref": "N", "alt": f"N]chr2:{alk_bp}]",
         "variant_type": "sv", "mate_chrom": "chr2", "mate_pos": alk_bp},
        {"chrom": "chr2", "pos": alk_bp, "ref": "N", "alt": f"N]chr2:{eml4_bp}]",
         "variant_type": "sv", "mate_chrom": "chr2", "mate_pos": eml4_bp},
        {"chrom": "chr2", "pos": alk_bp, "ref": "N", "alt": "N]11:5000000]",
         "variant_type": "sv", "mate_chrom": "11", "mate_pos": 5000000},
        {"chrom": "chr2", "pos": alk_bp, "ref": "N", "alt": "N.", "variant_type": "sv"},
        {"chrom": "chr2", "pos": alk_bp, "ref": "N", "alt": "N]chr2:29500000]",
         "variant_type": "sv", "mate_chrom": "chr2", "mate_pos": 29_500_000},  # inside ALK
    ]
    out = kb.annotate(make_calls(rows), build)
    assert list(out["alteration"])[:3] == ["EML4-ALK fusion", "EML4-ALK fusion",
                                           "ALK fusion (partner unknown)"]
    assert list(out["variant_type"])[:3] == ["fusion"] * 3
    assert list(out["category"])[:3] == ["driver"] * 3
    assert list(out["fusion_partner"])[:2] == ["EML4", "EML4"]
    assert list(out["variant_type"])[3:] == ["sv", "sv"]
    assert out["kb_id"].iloc[3:].isna().all()


def test_fusion_from_inv_and_table(kb):
    out = kb.annotate(make_calls([
        {"chrom": "2", "pos": 29446500, "ref": "N", "alt": "<INV>", "variant_type": "sv",
         "mate_chrom": "2", "mate_pos": 42500000},
        {"gene": "ALK", "variant_type": "fusion", "fusion_partner": "EML4"},
        {"gene": "ALK", "variant_type": "fusion", "fusion_partner": "EML4--ALK"},
        {"gene": "EML4", "variant_type": "fusion", "fusion_partner": "ALK"},
        {"gene": "ALK", "variant_type": "fusion"},
        {"gene": "MET", "variant_type": "fusion", "fusion_partner": "ST7"},
        {"gene": "RET", "variant_type": "fusion", "fusion_partner": "CCDC6"},
    ]), "GRCh37")
    assert list(out["alteration"]) == ["EML4-ALK fusion"] * 4 + [
        "ALK fusion (partner unknown)", "ST7-MET fusion", "CCDC6-RET fusion"]
    assert list(out["category"]) == ["driver"] * 5 + ["bypass", "other"]
    assert list(out["gene"]) == ["ALK"] * 5 + ["MET", "RET"]


def test_gene_rules_chip_lof_other(kb):
    out = kb.annotate(make_calls([
        {"gene": "DNMT3A", "protein_change": "R882H"},
        {"gene": "TET2", "chrom": "4", "pos": 106000000, "ref": "C", "alt": "T"},
        {"gene": "NF2", "protein_change": "p.Arg57Ter"},
        {"gene": "RB1", "annotation": "A|frameshift_variant|HIGH|RB1|x|transcript|ENST1|pc|3/27|"
                                      "c.100delA|p.Lys34fs"},
        {"gene": "STK11", "protein_change": "Q37*"},
        {"chrom": "9", "pos": 1000, "ref": "A", "alt": "G"},
    ]), "GRCh37")
    assert list(out["category"]) == ["chip", "chip", "bypass", "transformation", "other",
                                     "other"]
    assert list(out["kb_id"])[:4] == ["DNMT3A:CHIP", "TET2:CHIP", "NF2:loss_of_function",
                                      "RB1:loss_of_function"]
    assert list(out["alteration"])[2:5] == ["R57*", "K34fs", "Q37*"]
    assert out["alteration"].iloc[5] is None and out["gene"].iloc[5] is None


def test_kb_verified_and_row_preservation(kb):
    calls = make_calls([
        {"chrom": "2", "pos": 29443613, "ref": "C", "alt": "T", "vaf": 0.011, "sample_id": "S1"},
        {"gene": "EGFR", "protein_change": "L858R", "vaf": 0.02, "sample_id": "S1"},
        {"gene": "ALK", "protein_change": "L1256F", "vaf": 0.003, "sample_id": "S1"},
    ])
    before = calls.copy()
    out = kb.annotate(calls, "GRCh37")
    assert list(out["kb_verified"]) == [True, False, False]
    assert len(out) == 3 and list(out["vaf"]) == [0.011, 0.02, 0.003]
    assert list(out["sample_id"]) == ["S1"] * 3
    pd.testing.assert_frame_equal(calls, before)  # the input frame is not modified


def test_empty_frame_and_bad_arguments(kb):
    from pipeline.schema import empty_calls

    out = kb.annotate(empty_calls(), "GRCh38")
    assert out.empty and {"gene", "alteration", "category", "kb_id", "kb_verified"} <= set(
        out.columns)
    with pytest.raises(InputError, match="genome build"):
        kb.annotate(empty_calls(), "hg19")
    with pytest.raises(InputError, match="cnv_kind"):
        kb.annotate(empty_calls(), "GRCh37", cnv_kind="percent")


def test_build_matters(kb):
    # the GRCh37 G1202R position read as GRCh38 is not G1202R (REF/codon disagree or no codon)
    out = kb.annotate(pd.DataFrame([{"chrom": "2", "pos": 29443613, "ref": "C", "alt": "T",
                                     "variant_type": "snv"}]), "GRCh38")
    assert out["kb_id"].iloc[0] is None
