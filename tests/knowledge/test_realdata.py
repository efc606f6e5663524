"""Recognition on real third-party files (read in place; never copied into the repository)."""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import pytest

from tests.knowledge.conftest import make_calls

REALDATA = Path(os.environ.get(
    "CTDNA_REALDATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "realdata"))
GAVIN = REALDATA / "gavinoliver-prog__umi-aware-seqc2-ctdna-variant-calling"

pytestmark = pytest.mark.realdata


def _vcf_rows(path: Path) -> list[dict[str, object]]:
    """A tiny independent VCF text parse (CHROM POS REF ALT FILTER), ALT alleles split."""
    if not path.is_file():
        pytest.skip(f"{path} absent")
    rows = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            for alt in f[4].split(","):
                rows.append({"chrom": f[0], "pos": int(f[1]), "ref": f[3], "alt": alt,
                             "filter": f[6], "variant_type": "snv" if len(f[3]) == len(alt) == 1
                             else "indel"})
    return rows


# SEQC2 Sample A hotspots (hg38) and their DoCM names (hotspots.tsv). The truth set holds the
# first five; the UMI-consensus Mutect2 arm misses MAP2K1 D67N and calls PIK3CA E545K.
RAS_BRAF = {
    ("chr1", 114713908, "T", "A"): ("NRAS", "Q61L", "bypass"),
    ("chr1", 114716127, "C", "A"): ("NRAS", "G12C", "bypass"),
    ("chr7", 140753336, "A", "T"): ("BRAF", "V600E", "bypass"),
    ("chr12", 25245350, "C", "G"): ("KRAS", "G12A", "bypass"),
}
EXPECTED = {
    "KnownPositives_hg38.somatic_only.vcf.gz": {
        **RAS_BRAF, ("chr15", 66435145, "G", "A"): ("MAP2K1", "D67N", "bypass")},
    "arm_c_consensus_tumor_only.mutect2.filtered.vcf.gz": {
        **RAS_BRAF, ("chr3", 179218303, "G", "A"): ("PIK3CA", "E545K", "bypass")},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_seqc2_hotspots_recognised(kb, name):
    rows = _vcf_rows(GAVIN / name)
    out = kb.annotate(make_calls(rows), "GRCh38")
    found = {}
    for r, (_, o) in zip(rows, out.iterrows(), strict=True):
        key = (r["chrom"], r["pos"], r["ref"], r["alt"])
        if o["kb_id"] is not None:
            found[key] = (o["gene"], o["alteration"], o["category"])
    # exactly the known hotspots are recognised, with their DoCM names; the EGFR calls in
    # these files lie outside the EGFR hotspot codons and stay unrecognised
    assert found == EXPECTED[name]
    egfr = out[(out["chrom"] == "chr7") & (out["pos"].between(55_000_000, 55_300_000))]
    assert len(egfr) > 0 and egfr["kb_id"].isna().all()


def test_tso500_fusion_breakends_hg19(kb):
    path = REALDATA / "YinanWang16__tso500-ctdna-post-processing" / \
        "FusionMix_DNA_1pct_rep1_Fusions.csv"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    rows = [{"chrom": r["Chr1"], "pos": int(r["Pos1"]), "mate_chrom": r["Chr2"],
             "mate_pos": int(r["Pos2"]), "ref": "N", "alt": "<BND>", "variant_type": "sv"}
            for r in csv.DictReader(lines)]
    out = kb.annotate(make_calls(rows), "GRCh37")
    fusions = sorted(set(out.loc[out["category"] == "driver", "alteration"]))
    assert fusions == ["EML4-ALK fusion", "NPM1-ALK fusion"]
    assert (out.loc[out["category"] == "driver", "variant_type"] == "fusion").all()


def test_pcgr_fusion_list_grch38(kb):
    path = REALDATA / "sigven__pcgr" / "T001-BRCA.grch38.fusions.tsv"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    rows = []
    for r in csv.DictReader(path.read_text().splitlines(), delimiter="\t"):
        left, right = r["LeftBreakpoint"].split(":"), r["RightBreakpoint"].split(":")
        rows.append({"chrom": left[0], "pos": int(left[1]), "mate_chrom": right[0],
                     "mate_pos": int(right[1]), "ref": "N", "alt": "<BND>",
                     "variant_type": "sv"})
    out = kb.annotate(make_calls(rows), "GRCh38")
    assert list(out.loc[out["category"] == "driver", "alteration"]) == ["EML4-ALK fusion"]


def test_guardant_myeloid_clone_is_chip_in_kb_2026_12(kb):
    """Real Guardant360 serial table (Roosan et al., mumtahena/ctDNA_lung multi.csv, read in
    place): patient G8 carries IDH1 R132H / IDH2 R140Q at 21-27 % (issue #13). With KB
    2026.12 both are CHIP, so they can never drive the lung-cancer ctDNA level."""
    path = REALDATA / "mumtahena__ctDNA_lung" / "multi.csv"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    with path.open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Gene"] in ("IDH1", "IDH2")]
    assert rows, "the real table holds the IDH1/IDH2 rows"
    calls = make_calls([{"gene": r["Gene"], "protein_change": r["Mutations"].split()[-1],
                         "variant_type": "SNV", "vaf": float(r["ctDNA"]) / 100.0}
                        for r in rows])
    annotated = kb.annotate(calls, "GRCh37")
    assert set(annotated["category"]) == {"chip"}
    assert annotated["vaf"].max() > 0.2  # the 20-27 % clone that drove the level before
