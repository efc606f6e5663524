"""Scenarios driven through the real readers and store: manifest + CSV/VCF -> SQLite -> rules."""

from __future__ import annotations

import pytest

from pipeline.ingest import ingest_manifest, ingest_therapies
from pipeline.knowledge import load_knowledge_base
from pipeline.rules import evaluate_cohort
from pipeline.store.repository import Store

HEADER = "sample_id,gene,variant_type,protein_change,vaf,alt_reads,depth,fusion_partner\n"

VCF = """##fileformat=VCFv4.2
##contig=<ID=chr2,length=242193529>
##reference=GRCh38
##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPLASMA
chr2\t29220747\t.\tC\tT\t50\tPASS\tDP=3000\tGT:AD:AF:DP\t0/1:2964,36:0.012:3000
"""


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base()


def _write(tmp_path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")


def test_clearance_then_emerging_g1202r_from_store(tmp_path, settings, kb):
    _write(tmp_path, "calls.csv", HEADER
           + "S0,ALK,fusion,,0.04,80,2000,EML4\n"
           + "S1,ALK,fusion,,0.012,24,2000,EML4\n"
           + "S1,DNMT3A,snv,R882H,0.03,60,2000,\n")
    _write(tmp_path, "empty.csv", HEADER)
    _write(tmp_path, "late.vcf", VCF)
    _write(tmp_path, "manifest.csv",
           "sample_id,patient_id,collection_date,path,genome_build,lod_vaf\n"
           "S0,PX,2025-01-03,calls.csv,GRCh38,0.005\n"
           "S1,PX,2025-02-03,calls.csv,GRCh38,0.005\n"
           "S2,PX,2025-03-10,empty.csv,GRCh38,0.005\n"
           "S3,PX,2025-07-01,late.vcf,GRCh38,0.005\n")
    _write(tmp_path, "therapies.csv",
           "patient_id,drug,start_date,line\nPX,alectinib,2025-01-06,1\n")
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        report = ingest_manifest(tmp_path / "manifest.csv", store, settings, kb)
        assert not report.rejected, report.rejected
        ingest_therapies(tmp_path / "therapies.csv", store)
        frames = (store.observations_frame(), store.samples_frame(), store.therapies_frame())
    finally:
        store.dispose()

    early = evaluate_cohort(*frames, settings, kb, as_of="2025-03-31")[0]
    assert early.status == "OPTIMAL" and {"E1", "Q2"} <= {a.rule_id for a in early.alerts}
    assert early.draws_used == ["S0", "S1", "S2"]

    late = evaluate_cohort(*frames, settings, kb)[0]
    r1 = [a for a in late.alerts if a.rule_id == "R1"]
    # G1202R on alectinib: R1 (new, single draw: WARNING) and R0 (the knowledge base rates
    # alectinib resistant: primary-resistance FAILURE, #9 item 2).
    assert late.status == "FAILURE" and r1, [a.rule_id for a in late.alerts]
    assert r1[0].tier == "WARNING"
    r0 = [a for a in late.alerts if a.rule_id == "R0"]
    assert r0 and r0[0].tier == "FAILURE" and "alectinib resistant" in late.headline
    finding = r1[0].findings[0]
    assert (finding.gene, finding.alteration, finding.sample_id) == ("ALK", "G1202R", "S3")
    assert finding.vaf == pytest.approx(0.012) and finding.lod_vaf == pytest.approx(0.005)
    assert r1[0].therapy_options and late.kb_version == kb.version
