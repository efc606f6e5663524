"""Issue #10 item 5: one fixture per bad-input kind (written in tmp), read by the real reader
and, where detection matters, through the real ingest into SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import InvalidVariantFileError
from pipeline.ingest import detected_mask, ingest_manifest
from pipeline.io import read_variant_file
from pipeline.knowledge import load_knowledge_base
from pipeline.store.repository import Store

HEAD = ("##fileformat=VCFv4.2\n##contig=<ID=chr2,length=242193529>\n"
        '##FILTER=<ID=PASS,Description="All filters passed">\n'
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n'
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPLASMA\n")
GOOD = "chr2\t29443695\t.\tC\tT\t.\tPASS\tDP=1000\tGT:AD:AF\t0/1:980,20:0.02\n"


def _vcf(tmp_path: Path, body: str, head: str = HEAD, name: str = "s.vcf") -> Path:
    path = tmp_path / name
    path.write_text(head + body)
    return path


def _read(path: Path):
    return read_variant_file(path, sample_id="S1", genome_build="GRCh38")


@pytest.mark.parametrize(("body", "record", "field", "needle"), [
    (GOOD.replace("\tC\tT\t", "\tC\tZ\t"), "record 1", "ALT", "'Z'"),
    (GOOD.replace("\tC\tT\t", "\tC\tC\t"), "record 1", "ALT", "equals REF"),
    (GOOD.replace("\tC\tT\t", "\tB\tT\t"), "record 1", "REF", "'B'"),
    (GOOD.replace("29443695", "29443x95"), "record 1", "POS", "29443x95"),
    (GOOD.replace("chr2\t", "chr 2\t"), "record 1", "CHROM", "chr 2"),
    (GOOD.replace("PASS", "PASS;"), "record 1", "FILTER", "PASS;"),
    (GOOD + GOOD, "record 2", "ALT", "same variant"),
    (GOOD + GOOD.replace("\t29443695\t.\tC\tT", "\t29443694\t.\tAC\tAT"), "record 2", "ALT",
     "after trimming"),
    (GOOD.replace("0/1:980,20:0.02", "0/1:980,20:0.02:7"), "record 1", None, "more values"),
    (GOOD.replace("0/1:", "0/3:"), "record 1", None, "beyond the ALT alleles"),
    (GOOD.replace("0/1:", "0/C:"), "record 1", None, "not a genotype"),
    (GOOD.replace("980,20", "980,20,5"), "record 1", "FORMAT/AD", "Number=R"),
    (GOOD.replace(":0.02", ":high"), "record 1", "FORMAT/AF", "Type=Float"),
    (GOOD.replace("DP=1000", "DP=1000;DP=1000"), "record 1", "INFO/DP", "twice"),
    (GOOD.rstrip("\n"), "record 1", "end of file", "no newline"),
])
def test_defect_in_a_read_part_rejects_the_file(tmp_path: Path, body: str, record: str,
                                                field: str | None, needle: str) -> None:
    path = _vcf(tmp_path, body)
    with pytest.raises(InvalidVariantFileError) as info:
        _read(path)
    err = info.value
    assert err.record == record and needle in err.message, str(err)
    if field is not None:
        assert err.field == field
    assert str(err).startswith(str(path)) and "\n" not in str(err)


@pytest.mark.parametrize(("head", "field"), [
    (HEAD.replace('Number=R,Type=Integer,Description="Allelic depths"',
                  'Number=R,Type=Integer,Description=Allelic depths'), "FORMAT/AD"),
    (HEAD.replace("##fileformat=VCFv4.2", "##fileformat=VCF4"), "fileformat"),
    (HEAD.replace("\tFORMAT\tPLASMA", "\tFORMAT\tPLASMA\tPLASMA"), "#CHROM"),
])
def test_header_defects_in_read_fields_reject(tmp_path: Path, head: str, field: str) -> None:
    with pytest.raises(InvalidVariantFileError) as info:
        _read(_vcf(tmp_path, GOOD if "PLASMA\tPLASMA" not in head else
                   GOOD.rstrip("\n") + "\t0/1:980,20:0.02\n", head))
    assert info.value.field == field and info.value.record.startswith("header")


@pytest.mark.parametrize(("head", "body", "needle"), [
    (HEAD, GOOD.replace("\t.\tPASS", "\tbad\tPASS"), "field QUAL"),
    (HEAD.replace("#CHROM", '##INFO=<ID=NS,Number=1,Type=Integer,Description="n">\n#CHROM'),
     GOOD.replace("DP=1000", "DP=1000;NS=abc"), "field INFO/NS: value is not of Type=Integer"),
    (HEAD, GOOD.replace("DP=1000", "DP=1000;H2=5"), "field INFO/H2: a Flag takes no value"),
    (HEAD.replace("#CHROM", "##SAMPLE=<Assay=WGS>\n#CHROM"), GOOD, "field SAMPLE"),
    (HEAD, GOOD.replace("\tPASS", "\tq10;q10"), "a filter name is repeated"),
    (HEAD, GOOD.replace("29443695", "29443800") + GOOD, "not sorted"),
])
def test_defect_in_an_unread_part_is_stored_with_a_warning(tmp_path: Path, head: str,
                                                           body: str, needle: str) -> None:
    result = _read(_vcf(tmp_path, body, head))
    assert len(result.calls) >= 1
    assert any(w.startswith("invalid VCF, tolerated because ctdna does not read it")
               and needle in w for w in result.warnings), result.warnings


def test_undeclared_info_keys_of_tso500_keep_loading(realdata: Path) -> None:
    result = _read(realdata / "umccr__vcf_stuff/test-tso500-tumoronly.vcf.gz")
    assert len(result.calls) == 31
    assert not any("invalid VCF" in w and "INFO/" in w for w in result.warnings)


def test_genotype_ref_and_no_evidence_are_never_detected(tmp_path: Path, settings) -> None:
    body = GOOD + GOOD.replace("29443695", "29443700").replace("0/1:", "0/0:")  # GT 0/0
    result = _read(_vcf(tmp_path, body))
    assert detected_mask(result.calls, lod_vaf=0.001, min_alt_reads=1).tolist() == [True,
                                                                                    False]
    assert any("homozygous reference" in w and "record 2" in w for w in result.warnings)
    # A file with no VAF source and no read counts at all (genotypes only): stored, never
    # "detected" (issue #10: 362 EBI files used to become detected calls with no VAF).
    bare = HEAD.replace('##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n'
                        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">\n',
                        "").replace("DP,Number=1", "XD,Number=1")
    _vcf(tmp_path, "chr2\t29443710\t.\tG\tA\t.\tPASS\t.\tGT\t0/1\n", bare, "bare.vcf")
    result = _read(tmp_path / "bare.vcf")
    assert detected_mask(result.calls, lod_vaf=0.001, min_alt_reads=1).tolist() == [False]
    assert any("without a VAF or read counts" in w and "record 1" in w
               for w in result.warnings)
    manifest = tmp_path / "m.csv"
    manifest.write_text("sample_id,patient_id,collection_date,path,genome_build\n"
                        "S1,P1,2025-01-02,s.vcf,GRCh38\nS2,P1,2025-02-02,bare.vcf,GRCh38\n")
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        report = ingest_manifest(manifest, store, settings, load_knowledge_base())
        assert report.ingested == ["S1", "S2"]
        assert {w.sample_id for w in report.warnings} == {"S1", "S2"}
        stored = store.observations_frame(["P1"])
        assert stored.loc[stored["detected"].astype(bool), "pos"].tolist() == [29443695]
        assert len(stored) == 3
    finally:
        store.dispose()


def test_cli_ingest_json_lists_warnings_with_sample_and_file(tmp_path: Path) -> None:
    path = _vcf(tmp_path, GOOD.replace("\t.\tPASS", "\tbad\tPASS"))
    manifest = tmp_path / "m.csv"
    manifest.write_text("sample_id,patient_id,collection_date,path,genome_build\n"
                        "S1,P1,2025-01-02,s.vcf,GRCh38\n")
    env = {**os.environ, "CTDNA_DB_URL": f"sqlite:///{tmp_path / 'cli.sqlite'}"}
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "ingest", "--manifest",
                          str(manifest), "--json"], capture_output=True, text=True, env=env,
                         timeout=240)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ingested"] == ["S1"]
    (warning,) = [w for w in report["warnings"] if "QUAL" in w["warning"]]
    assert warning["sample_id"] == "S1" and warning["path"] == str(path.resolve())
    assert "record 1: field QUAL" in warning["warning"]
