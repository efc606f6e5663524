"""Genome build: declared spellings, detection from real headers, never a guess."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import GenomeBuildError
from pipeline.io import read_variant_file
from pipeline.io.build import build_from_contigs, build_from_text, normalise_build

from .conftest import FIXTURES


@pytest.mark.parametrize(("spelling", "build"), [
    ("GRCh37", "GRCh37"), ("hg19", "GRCh37"), ("b37", "GRCh37"), (" grch37 ", "GRCh37"),
    ("GRCh38", "GRCh38"), ("hg38", "GRCh38"),
])
def test_normalise(spelling: str, build: str) -> None:
    assert normalise_build(spelling) == build


def test_unknown_spelling() -> None:
    with pytest.raises(GenomeBuildError, match="hg18"):
        normalise_build("hg18")


def test_contigs_and_text() -> None:
    assert build_from_contigs({"chr1": 249250621}) == "GRCh37"
    assert build_from_contigs({"7": 159345973}) == "GRCh38"
    assert build_from_contigs({"chr1": 1000}) is None
    assert build_from_text(["file:///ref/hs37d5.fa"]) == "GRCh37"
    assert build_from_text(["/ref/Homo_sapiens_assembly38.fasta"]) == "GRCh38"
    assert build_from_text(["/ref/lab37.fa"]) is None


@pytest.mark.realdata
@pytest.mark.parametrize(("rel", "kw", "build"), [
    ("umccr__vcf_stuff/test-mutect2.vcf.gz", {}, "GRCh37"),  # GRCh37, no "chr"
    ("YinanWang16__tso500-ctdna-post-processing/"
     "FusionMix_DNA_1pct_rep1_CopyNumberVariants.vcf", {}, "GRCh37"),  # hg19 with "chr"
    ("umccr__vcf_stuff/test-tso500-tumoronly.vcf.gz", {}, "GRCh38"),  # hg38 with "chr"
    ("gavinoliver-prog__umi-aware-seqc2-ctdna-variant-calling/"
     "arm_a_standard_tumor_only.lofreq.vcf.gz", {}, "GRCh38"),  # ##reference only
])
def test_detected_from_real_headers(realdata: Path, rel: str, kw: dict, build: str) -> None:
    assert read_variant_file(realdata / rel, sample_id="S", **kw).genome_build == build


@pytest.mark.realdata
def test_grch38_no_chr_needs_declaration(realdata: Path) -> None:
    path = realdata / "sigven__pcgr/T001-COAD.grch38.vcf.gz"  # GRCh38 without "chr", no contigs
    with pytest.raises(GenomeBuildError, match="not detectable"):
        read_variant_file(path, sample_id="S")
    assert read_variant_file(path, sample_id="S", genome_build="hg38").genome_build == "GRCh38"


@pytest.mark.realdata
def test_undetectable_and_contradicted(realdata: Path) -> None:
    with pytest.raises(GenomeBuildError, match="not detectable"):
        read_variant_file(realdata / "mskcc__vcf2maf/test_varscan.vcf", sample_id="S",
                          vcf_sample="TUMOR")
    with pytest.raises(GenomeBuildError, match="contig lengths are GRCh37"):
        read_variant_file(realdata / "umccr__vcf_stuff/test-mutect2.vcf.gz", sample_id="S",
                          genome_build="GRCh38")


def test_fixture_reference_text() -> None:
    # multiallelic.vcf declares chr2 with its GRCh38 length
    assert read_variant_file(FIXTURES / "multiallelic.vcf", sample_id="S").genome_build == "GRCh38"
