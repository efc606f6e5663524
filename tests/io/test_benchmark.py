"""Speed: 100,000 VCF records must parse in seconds (issue #2)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.io import read_variant_file

HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr2,length=242193529>
##FILTER=<ID=PASS,Description="All filters passed">
##FILTER=<ID=weak_evidence,Description="weak">
##INFO=<ID=CSQ,Number=.,Type=String,Description="Format: Allele|Consequence|SYMBOL|BIOTYPE|HGVSp">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNORMAL\tPLASMA
"""


@pytest.mark.benchmark
def test_parse_100k_records(tmp_path: Path, benchmark) -> None:
    rng = random.Random(7)
    path = tmp_path / "big.vcf"
    lines = [HEADER]
    for i in range(100_000):
        alt_n = rng.randint(1, 60)
        ref_n = rng.randint(900, 3000)
        af = alt_n / (alt_n + ref_n)
        filt = "PASS" if i % 3 else "weak_evidence"
        lines.append(
            f"chr2\t{1000 + i * 10}\t.\tC\tT\t.\t{filt}\tCSQ=T|missense_variant|ALK|"
            f"protein_coding|p.Gly{i % 1000}Arg\tGT:AD:AF:DP\t0/0:1000,0:0:1000\t"
            f"0/1:{ref_n},{alt_n}:{af:.5f}:{ref_n + alt_n}\n"
        )
    path.write_text("".join(lines))
    result = benchmark.pedantic(
        lambda: read_variant_file(path, sample_id="S", vcf_sample="PLASMA"), rounds=1,
        iterations=1,
    )
    assert len(result.calls) == 100_000
    assert benchmark.stats.stats.max < 30
