"""Synthetic demo timelines (no real patient data), written as a lab would deliver them.

Four patients, each showing one part of the rule set, in the formats labs deliver:

* DEMO-001 (alectinib, vendor-style canonical CSV): clearance by week 9, then EML4-ALK
  re-detection with ALK G1202R that is confirmed and rising → early-switch review.
* DEMO-002 (brigatinib, Mutect2 tumor/normal VCFs, then a vendor table with copy
  number): < 50 % decrease at
  week 5, confirmed at week 8, MET amplification (bypass).
* DEMO-003 (alectinib, canonical CSV, percent VAFs): nothing detectable at baseline (not
  evaluable for response), later an emerging KRAS G12D.
* DEMO-004 (lorlatinib, VCF): clearance by week 6, optimal.

GRCh38 coordinates come from ../shared/reference/hotspots.tsv (e.g. ALK G1202R c.3604G>A =
chr2:29220747 C>T); the VCF headers carry GRCh38 contig lengths so the build is detected.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

GRCH38_CONTIGS = {
    "chr1": 248956422, "chr2": 242193529, "chr7": 159345973, "chr12": 133275309,
    "chr17": 83257441,
}

# (chrom, pos, ref, alt, gene, protein) in GRCh38
TP53_R273H = ("chr17", 7673802, "C", "T", "TP53", "R273H")
TP53_R175H = ("chr17", 7675088, "C", "T", "TP53", "R175H")
ALK_G1202R = ("chr2", 29220747, "C", "T", "ALK", "G1202R")
KRAS_G12D = ("chr12", 25245350, "C", "T", "KRAS", "G12D")
PIK3CA_E545K = ("chr3", 179218303, "G", "A", "PIK3CA", "E545K")


def _vcf(path: Path, tumor: str, normal: str,
         calls: list[tuple[tuple[object, ...], int, int]]) -> None:
    """A Mutect2-like tumor/normal VCF (normal first, as Mutect2 writes it)."""
    lines = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fractions of alternate alleles">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Approximate read depth">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">',
        '##source=Mutect2',
        f"##normal_sample={normal}",
        f"##tumor_sample={tumor}",
        "##reference=file:///refs/GRCh38_full_analysis_set_plus_decoy_hla.fa",
        *[f"##contig=<ID={c},length={n}>" for c, n in GRCH38_CONTIGS.items()],
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + f"{normal}\t{tumor}",
    ]
    for (chrom, pos, ref, alt, *_), alt_reads, depth in calls:
        ref_reads = depth - alt_reads
        af = round(alt_reads / depth, 5)
        lines.append(
            f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\tDP={depth + 1500}\tGT:AD:AF:DP\t"
            f"0/0:1500,0:0.0:1500\t0/1:{ref_reads},{alt_reads}:{af}:{depth}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_demo_inbox(workdir: Path, today: date) -> tuple[Path, Path]:
    """Write the demo inbox and a demo config; returns (inbox folder, config file)."""
    inbox = workdir / "inbox"
    batch = inbox / "batch-001"
    batch.mkdir(parents=True, exist_ok=True)

    def day(offset: int) -> date:
        return today + timedelta(days=offset)

    # Therapy starts relative to today, so the timelines end around now.
    start1, start2, start3, start4 = day(-300), day(-70), day(-240), day(-50)
    therapies = [
        ("DEMO-001", "alectinib", start1, "", 1),
        ("DEMO-002", "brigatinib", start2, "", 1),
        ("DEMO-003", "alectinib", start3, "", 1),
        ("DEMO-004", "lorlatinib", start4, "", 1),
    ]
    (batch / "therapies.csv").write_text(
        "patient_id,drug,start_date,end_date,line\n"
        + "".join(f"{p},{d},{s.isoformat()},{e},{n}\n" for p, d, s, e, n in therapies),
        encoding="utf-8",
    )

    manifest_rows: list[str] = []

    def add(sample: str, patient: str, drawn: date, path: str, team: str, **extra: str) -> None:
        manifest_rows.append(
            f"{sample},{patient},{drawn.isoformat()},{path},{extra.get('vcf_sample', '')},"
            f"GRCh38,{team},{extra.get('lod_vaf', '')},{extra.get('assay', '')},"
            f"{extra.get('tumor_fraction', '')}"
        )

    # DEMO-001: canonical CSV shared by all draws (fraction VAFs)
    d1 = {"B": start1 - timedelta(days=5), "W4": start1 + timedelta(days=28),
          "W9": start1 + timedelta(days=63), "M6": start1 + timedelta(days=182),
          "M8": start1 + timedelta(days=240)}
    rows1 = [
        "sample_id,gene,variant_type,chrom,pos,ref,alt,protein_change,fusion_partner,vaf,alt_reads,depth",
        "D001-B,ALK,fusion,,,,,,EML4,0.062,186,3000",
        f"D001-B,TP53,snv,{','.join(map(str, TP53_R273H[:4]))},,,0.081,243,3000",
        "D001-W4,ALK,fusion,,,,,,EML4,0.004,12,3000",
        # week 9: nothing detected; the vendor writes the draw with no calls as an empty row
        "D001-W9,,,,,,,,,,,",
        f"D001-W4,TP53,snv,{','.join(map(str, TP53_R273H[:4]))},,,0.006,18,3000",
        "D001-M6,ALK,fusion,,,,,,EML4,0.003,9,3000",
        f"D001-M6,ALK,snv,{','.join(map(str, ALK_G1202R[:4]))},,,0.0027,8,3000",
        "D001-M8,ALK,fusion,,,,,,EML4,0.011,33,3000",
        f"D001-M8,ALK,snv,{','.join(map(str, ALK_G1202R[:4]))},,,0.0093,28,3000",
        f"D001-M8,TP53,snv,{','.join(map(str, TP53_R273H[:4]))},,,0.012,36,3000",
    ]
    (batch / "demo001_calls.csv").write_text("\n".join(rows1) + "\n", encoding="utf-8")
    for key, drawn in d1.items():
        add(f"D001-{key}", "DEMO-001", drawn, "demo001_calls.csv", "thoracic-a",
            assay="guardant360")

    # DEMO-002: VCFs (Mutect2 T/N) plus a CNV table for MET
    d2 = {"B": start2 - timedelta(days=6), "W5": start2 + timedelta(days=35),
          "W8": start2 + timedelta(days=56)}
    _vcf(batch / "D002-B.vcf", "D002-B_plasma", "D002_wbc", [(TP53_R175H, 150, 3000)])
    _vcf(batch / "D002-W5.vcf", "D002-W5_plasma", "D002_wbc", [(TP53_R175H, 90, 3000)])
    # the week-8 draw came back from a second vendor as a table, with plasma copy number
    (batch / "D002-W8.csv").write_text(
        "sample_id,gene,variant_type,chrom,pos,ref,alt,vaf,alt_reads,depth,copy_number\n"
        f"D002-W8,TP53,snv,{','.join(map(str, TP53_R175H[:4]))},0.035,105,3000,\n"
        f"D002-W8,PIK3CA,snv,{','.join(map(str, PIK3CA_E545K[:4]))},0.004,12,3000,\n"
        "D002-W8,MET,cnv,,,,,,,,3.4\n", encoding="utf-8")
    for key, drawn in d2.items():
        path = "D002-W8.csv" if key == "W8" else f"D002-{key}.vcf"
        assay = "guardant360" if key == "W8" else "umi_panel"
        add(f"D002-{key}", "DEMO-002", drawn, path, "thoracic-b", assay=assay)

    # DEMO-003: baseline negative; percent VAFs declared in the column name
    d3 = {"B": start3 - timedelta(days=3), "W6": start3 + timedelta(days=42),
          "M7": start3 + timedelta(days=210)}
    (batch / "demo003_calls.csv").write_text(
        "sample_id,gene,variant_type,chrom,pos,ref,alt,vaf_percent,alt_reads,depth\n"
        "D003-B,,,,,,,,,\nD003-W6,,,,,,,,,\n"
        f"D003-M7,KRAS,snv,{','.join(map(str, KRAS_G12D[:4]))},0.41,14,3400\n",
        encoding="utf-8")
    for key, drawn in d3.items():
        add(f"D003-{key}", "DEMO-003", drawn, "demo003_calls.csv", "thoracic-a",
            assay="guardant360")

    # DEMO-004: clearance by week 6 (VCF; care team not configured → fallback address)
    d4 = {"B": start4 - timedelta(days=2), "W6": start4 + timedelta(days=42)}
    _vcf(batch / "D004-B.vcf", "D004-B_plasma", "D004_wbc", [(TP53_R273H, 96, 3200)])
    _vcf(batch / "D004-W6.vcf", "D004-W6_plasma", "D004_wbc", [])
    for key, drawn in d4.items():
        add(f"D004-{key}", "DEMO-004", drawn, f"D004-{key}.vcf", "community-clinic",
            assay="umi_panel")

    (batch / "manifest.csv").write_text(
        "sample_id,patient_id,collection_date,path,vcf_sample,genome_build,care_team,lod_vaf,"
        "assay,tumor_fraction\n" + "\n".join(manifest_rows) + "\n", encoding="utf-8")

    config = workdir / "demo-config.yaml"
    config.write_text(
        "# Demo lab configuration (overrides the shipped configs/defaults.yaml)\n"
        'version: "demo-2026.11"\n'
        "care_teams:\n"
        '  thoracic-a: ["thoracic-oncology-a@hospital.example"]\n'
        '  thoracic-b: ["thoracic-oncology-b@hospital.example", "tumor-board@hospital.example"]\n'
        "notify:\n"
        '  fallback_address: "molecular-lab@hospital.example"\n'
        '  ops_address: "lab-ops@hospital.example"\n'
        f'  outbox: "{workdir / "outbox"}"\n'
        "paths:\n"
        f'  reports: "{workdir / "reports"}"\n'
        f'  quarantine: "{workdir / "quarantine"}"\n',
        encoding="utf-8",
    )
    return inbox, config
