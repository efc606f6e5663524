#!/usr/bin/env python3
"""Generate a synthetic surveillance cohort for benchmarks (issue #11); no real patient data.

Writes, under ``OUT``:

* ``manifest.csv``: one row per draw (``patients × draws`` rows), care teams round-robin;
* ``therapies.csv``: one first line of therapy per patient (alectinib/lorlatinib/brigatinib);
* canonical variant tables (``../shared/spec/interfaces.md``, fraction VAFs) in one of three
  layouts: ``per-sample`` (one small file per draw, the panel-lab case), ``per-patient`` (one
  table per patient shared by its draws) or ``single`` (one table for the whole cohort, every
  manifest row pointing at it);
* optionally ``big.vcf.gz``: a bgzipped single-sample VCF of ``--vcf-records`` records
  (``pysam.tabix_compress``), the whole-exome-sized read benchmark.

Timelines are drawn from a seeded generator (``--seed``), so the same arguments always give
the same bytes: baseline EML4-ALK fusion plus TP53 (and sometimes KRAS/PIK3CA passengers),
a response, and for about one patient in five an emerging ALK G1202R or MET amplification,
so the rules meet every status.

Usage::

    .venv/bin/python scripts/make_cohort.py OUT --patients 10000 --draws 12
    .venv/bin/python scripts/make_cohort.py OUT --patients 60 --draws 1 --layout per-sample
    .venv/bin/python scripts/make_cohort.py OUT --patients 0 --vcf-records 200000
"""

from __future__ import annotations

import argparse
import random
from datetime import date, timedelta
from pathlib import Path

# GRCh38 (chrom, pos, ref, alt, gene) from ../shared/reference/hotspots.tsv
TP53_R273H = ("chr17", 7673802, "C", "T", "TP53")
KRAS_G12D = ("chr12", 25245350, "C", "T", "KRAS")
PIK3CA_E545K = ("chr3", 179218303, "G", "A", "PIK3CA")
ALK_G1202R = ("chr2", 29220747, "C", "T", "ALK")
DRUGS = ("alectinib", "lorlatinib", "brigatinib")
TEAMS = ("thoracic-a", "thoracic-b", "community-clinic")
HEADER = ("sample_id,gene,variant_type,chrom,pos,ref,alt,fusion_partner,vaf,alt_reads,depth,"
          "copy_number")
#: Weeks after the line start of draws 2.. (draw 1 is the baseline, 5 days before).
DRAW_WEEKS = (4, 8, 12, 20, 28, 36, 44, 52, 64, 76, 88, 100, 112, 124)


def _snv(sample: str, site: tuple[object, ...], vaf: float, depth: int = 3000) -> str:
    chrom, pos, ref, alt, gene = site
    alt_reads = max(1, round(vaf * depth))
    return f"{sample},{gene},snv,{chrom},{pos},{ref},{alt},,{vaf:.5f},{alt_reads},{depth},"


def _draw_rows(rng: random.Random, sample: str, k: int, kind: str, base: float) -> list[str]:
    """Calls of draw ``k`` (0 = baseline) of a patient whose course is ``kind``."""
    if k == 0:
        level = base
    elif kind == "responder" or k < 4:
        level = base * (0.15 if k == 1 else 0.0)
    else:
        level = base * 0.1 * (k - 3)  # re-emergence after month 6
    rows = []
    if level > 0.0005:
        depth = rng.choice((2500, 3000, 4000))
        rows.append(f"{sample},ALK,fusion,,,,,EML4,{level:.5f},{max(1, round(level * depth))},"
                    f"{depth},")
        rows.append(_snv(sample, TP53_R273H, level * 1.3, depth))
        if k == 0 and rng.random() < 0.2:
            rows.append(_snv(sample, rng.choice((KRAS_G12D, PIK3CA_E545K)), level * 0.4, depth))
    if kind == "g1202r" and k >= 5:
        rows.append(_snv(sample, ALK_G1202R, 0.002 * (k - 3)))
    if kind == "met" and k >= 5:
        rows.append(f"{sample},MET,cnv,,,,,,,,,{2.0 + 0.4 * (k - 4):.2f}")
    return rows or [f"{sample},,,,,,,,,,,"]  # a draw with no calls is a real result


def write_cohort(out: Path, patients: int, draws: int, layout: str, seed: int,
                 today: date) -> int:
    """Write manifest, therapies and tables; returns the number of manifest rows."""
    rng = random.Random(seed)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    manifest = ["sample_id,patient_id,collection_date,path,genome_build,care_team,assay"]
    therapies = ["patient_id,drug,start_date,line"]
    everything: list[str] = []
    span = 7 * DRAW_WEEKS[max(0, min(draws, len(DRAW_WEEKS)) - 2)] + 30
    for p in range(patients):
        patient = f"P{p + 1:05d}"
        start = today - timedelta(days=span + rng.randint(0, 60))
        therapies.append(f"{patient},{rng.choice(DRUGS)},{start.isoformat()},1")
        kind = rng.choices(("responder", "g1202r", "met"), weights=(8, 1, 1))[0]
        base = rng.uniform(0.01, 0.12)
        team = TEAMS[p % len(TEAMS)]
        own: list[str] = []
        for k in range(draws):
            sample = f"{patient}-D{k + 1:02d}"
            weeks = -5 / 7 if k == 0 else DRAW_WEEKS[k - 1]
            drawn = start + timedelta(days=round(7 * weeks))
            rows = _draw_rows(rng, sample, k, kind, base)
            if layout == "per-sample":
                name = f"tables/{sample}.csv"
                (out / name).write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
            elif layout == "per-patient":
                name = f"tables/{patient}.csv"
                own += rows
            else:
                name = "tables/cohort.csv"
                everything += rows
            manifest.append(f"{sample},{patient},{drawn.isoformat()},{name},GRCh38,{team},"
                            "guardant360")
        if layout == "per-patient":
            (out / name).write_text(HEADER + "\n" + "\n".join(own) + "\n", encoding="utf-8")
    if layout == "single" and patients:
        (tables / "cohort.csv").write_text(HEADER + "\n" + "\n".join(everything) + "\n",
                                           encoding="utf-8")
    if patients:
        (out / "manifest.csv").write_text("\n".join(manifest) + "\n", encoding="utf-8")
        (out / "therapies.csv").write_text("\n".join(therapies) + "\n", encoding="utf-8")
    return len(manifest) - 1


def write_big_vcf(out: Path, records: int, seed: int) -> Path:
    """A bgzipped single-sample Mutect2-style VCF with ``records`` SNV records (GRCh38)."""
    import pysam  # only for bgzip; the pipeline's reader is pipeline.io

    rng = random.Random(seed)
    plain = out / "big.vcf"
    lines = [
        "##fileformat=VCFv4.2", '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FILTER=<ID=weak_evidence,Description="Weak evidence">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fractions">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        "##source=Mutect2", "##reference=file:///refs/GRCh38.fa",
        "##contig=<ID=chr2,length=242193529>",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tPLASMA",
    ]
    bases = "ACGT"
    with plain.open("w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
        for i in range(records):
            ref = bases[rng.randrange(4)]
            alt = bases[(bases.index(ref) + rng.randrange(1, 4)) % 4]
            depth = rng.randint(800, 4000)
            alt_n = rng.randint(1, 60)
            filt = "PASS" if i % 3 else "weak_evidence"
            handle.write(f"chr2\t{1000 + 10 * i}\t.\t{ref}\t{alt}\t.\t{filt}\t.\tGT:AD:AF:DP\t"
                         f"0/1:{depth - alt_n},{alt_n}:{alt_n / depth:.5f}:{depth}\n")
    target = out / "big.vcf.gz"
    pysam.tabix_compress(str(plain), str(target), force=True)
    plain.unlink()
    (out / "big-manifest.csv").write_text(
        "sample_id,patient_id,collection_date,path,genome_build,assay\n"
        f"BIG-1,PBIG,{date(2026, 1, 5).isoformat()},big.vcf.gz,GRCh38,umi_panel\n",
        encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--draws", type=int, default=12)
    parser.add_argument("--layout", choices=("per-sample", "per-patient", "single"),
                        default="per-patient")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--today", type=date.fromisoformat, default=date(2026, 12, 1),
                        help="date the timelines end near (fixed by default: same bytes)")
    parser.add_argument("--vcf-records", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.draws <= len(DRAW_WEEKS) + 1:
        parser.error(f"--draws must be 1..{len(DRAW_WEEKS) + 1}")
    args.out.mkdir(parents=True, exist_ok=True)
    n = write_cohort(args.out, args.patients, args.draws, args.layout, args.seed, args.today)
    print(f"{n} manifest rows in {args.out / 'manifest.csv'}" if n else "no cohort written")
    if args.vcf_records:
        print(f"VCF written to {write_big_vcf(args.out, args.vcf_records, args.seed)}")


if __name__ == "__main__":
    main()
