"""Scenario patients for the report tests, shaped exactly like the store frames.

Columns follow docs/architecture.md ("Store frames"): ``observations_frame``,
``samples_frame``, ``therapies_frame``; VAF, LoD and tumor fraction are fractions 0-1.
The assessments are real :class:`pipeline.assessment.Assessment` objects, i.e. what the
rule engine hands to the renderer.

Scenario "progression" (patient ``PT-0001``): EML4-ALK v3 + TP53 at baseline on alectinib,
clearance by week 9, then ALK G1202R emerges at week 30 and is confirmed at week 34 (rules R1
and P2 FAILURE, both confirmed on draws S5 and S6). A DNMT3A CHIP variant is present
throughout and must not drive the ctDNA level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from pipeline.assessment import Alert, Assessment, DrawLevel, Finding, Therapy, TherapyOption
from pipeline.config import load_settings
from pipeline.rules import evaluate_cohort

OBSERVATION_COLUMNS = (
    "sample_pk", "sample_id", "patient_id", "collection_date", "lod_vaf", "tumor_fraction",
    "assay", "chrom", "pos", "ref", "alt", "gene", "alteration", "variant_type", "category",
    "kb_id", "vaf", "alt_reads", "depth", "filter", "detected", "copy_number", "fusion_partner",
)
SAMPLE_COLUMNS = (
    "sample_pk", "sample_id", "patient_id", "collection_date", "lod_vaf", "lod_source",
    "tumor_fraction", "assay", "median_depth", "n_records", "genome_build",
)
THERAPY_COLUMNS = ("patient_id", "line", "drug", "start_date", "end_date")

# (gene, alteration, variant_type, category, chrom, pos, ref, alt, fusion_partner)
_MARKERS: dict[str, tuple[Any, ...]] = {
    "fusion": ("ALK", "EML4-ALK fusion", "fusion", "driver", "chr2", 29223528, "N", "<BND>",
               "EML4"),
    "tp53": ("TP53", "R273H", "snv", "transformation", "chr17", 7673802, "C", "T", None),
    "dnmt3a": ("DNMT3A", "R882H", "snv", "chip", "chr2", 25234373, "C", "T", None),
    "g1202r": ("ALK", "G1202R", "snv", "alk_resistance", "chr2", 29220765, "C", "T", None),
}


@dataclass
class Scenario:
    """One patient's store frames, current assessment and alert history."""

    patient_id: str
    observations: pd.DataFrame
    samples: pd.DataFrame
    therapies: pd.DataFrame
    assessment: Assessment | None
    alert_history: list[dict[str, Any]]


def rules_levels(frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
                 as_of: date) -> list[DrawLevel]:
    """The per-draw levels the real rule engine computes (reports never recompute them)."""
    (assessment,) = evaluate_cohort(*frames, load_settings(env={}), None, as_of=as_of)
    return assessment.levels


def _frames(
    patient_id: str,
    draws: list[dict[str, Any]],
    therapies: list[dict[str, Any]],
    first_pk: int,
    markers: dict[str, tuple[Any, ...]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    markers = _MARKERS if markers is None else markers
    samples, obs = [], []
    for i, draw in enumerate(draws):
        pk = first_pk + i
        calls = draw.get("calls", [])
        samples.append({
            "sample_pk": pk,
            "sample_id": draw["sample_id"],
            "patient_id": patient_id,
            "collection_date": draw["date"],
            "lod_vaf": draw["lod"],
            "lod_source": draw.get("lod_source", "assay"),
            "tumor_fraction": draw.get("tf"),
            "assay": draw.get("assay", "default"),
            "median_depth": draw.get("depth", 3000.0),
            "n_records": len(calls),
            "genome_build": "GRCh38",
        })
        for key, vaf, alt_reads, depth, *rest in calls:
            gene, alteration, vtype, category, chrom, pos, ref, alt, partner = markers[key]
            filt = rest[0] if rest else "PASS"
            detected = filt == "PASS" and vaf >= draw["lod"] and alt_reads >= 2
            obs.append({
                "sample_pk": pk, "sample_id": draw["sample_id"], "patient_id": patient_id,
                "collection_date": draw["date"], "lod_vaf": draw["lod"],
                "tumor_fraction": draw.get("tf"), "assay": draw.get("assay", "default"),
                "chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "gene": gene,
                "alteration": alteration, "variant_type": vtype, "category": category,
                "kb_id": f"{gene}:{alteration}", "vaf": vaf, "alt_reads": alt_reads,
                "depth": depth, "filter": filt, "detected": detected, "copy_number": None,
                "fusion_partner": partner,
            })
    observations = pd.DataFrame(obs, columns=list(OBSERVATION_COLUMNS))
    observations["vaf"] = observations["vaf"].astype(float)
    observations["detected"] = observations["detected"].astype(bool)
    samples_frame = pd.DataFrame(samples, columns=list(SAMPLE_COLUMNS))
    samples_frame["tumor_fraction"] = samples_frame["tumor_fraction"].astype(float)
    therapy_frame = pd.DataFrame(
        [{"patient_id": patient_id, **t} for t in therapies], columns=list(THERAPY_COLUMNS)
    )
    return observations, samples_frame, therapy_frame


def progression(patient_id: str = "PT-0001", *, gene_override: str | None = None) -> Scenario:
    """Cleared on alectinib, then confirmed ALK G1202R emergence (FAILURE)."""
    start = date(2025, 2, 3)

    def wk(n: float) -> date:
        return start + timedelta(days=round(7 * n))

    draws = [
        {"sample_id": "S1", "date": start - timedelta(days=6), "lod": 0.005, "depth": 3100.0,
         "calls": [("fusion", 0.021, 64, 3050), ("tp53", 0.018, 55, 3060),
                   ("dnmt3a", 0.008, 25, 3100)]},
        {"sample_id": "S2", "date": wk(4), "lod": 0.005, "depth": 2900.0,
         "calls": [("fusion", 0.006, 17, 2890), ("tp53", 0.002, 6, 2950),
                   ("dnmt3a", 0.009, 26, 2900)]},
        {"sample_id": "S3", "date": wk(9), "lod": 0.004, "depth": 3600.0,
         "calls": [("dnmt3a", 0.010, 36, 3600)]},
        {"sample_id": "S4", "date": wk(20), "lod": 0.008, "depth": 1500.0, "lod_source": "depth",
         "calls": []},
        {"sample_id": "S5", "date": wk(30), "lod": 0.005, "depth": 3200.0,
         "calls": [("fusion", 0.007, 22, 3150), ("g1202r", 0.006, 19, 3170),
                   ("dnmt3a", 0.011, 35, 3200)]},
        {"sample_id": "S6", "date": wk(34), "lod": 0.005, "depth": 3300.0,
         "calls": [("fusion", 0.015, 49, 3280), ("g1202r", 0.011, 36, 3290),
                   ("tp53", 0.004, 13, 3300, "weak_evidence")]},
    ]
    therapies = [
        {"line": 1, "drug": "alectinib", "start_date": start, "end_date": None},
    ]
    markers = dict(_MARKERS)
    if gene_override is not None:
        markers["g1202r"] = (gene_override, "G1202R", "snv", "alk_resistance", "chr2",
                                29220765, "C", "T", None)
    obs, samples, ther = _frames(patient_id, draws, therapies, first_pk=1, markers=markers)
    gene = gene_override or "ALK"
    as_of = wk(34) + timedelta(days=2)
    findings = [
        Finding(gene=gene, alteration="G1202R", sample_id="S5", collection_date=wk(30),
                vaf=0.006, alt_reads=19, depth=3170, lod_vaf=0.005),
        Finding(gene=gene, alteration="G1202R", sample_id="S6", collection_date=wk(34),
                vaf=0.011, alt_reads=36, depth=3290, lod_vaf=0.005),
    ]
    alerts = [
        Alert(
            rule_id="R1", tier="FAILURE",
            title="New ALK kinase-domain resistance mutation (confirmed)",
            findings=findings,
            suggested_actions=["Early-switch review by the treating clinician",
                               "Consider tissue or plasma re-genotyping"],
            therapy_options=[
                TherapyOption(name="lorlatinib", kind="approved",
                              reference="Shaw et al., JCO 2019", evidence_level="A"),
                TherapyOption(name="NVL-655 (neladalkib)", kind="trial",
                              reference="ALKOVE-1 (NCT05384626)", evidence_level="C",
                              verified=False),
            ],
            evidence=["ELN: resistance mutations = failure (PMC7214240)",
                      "McCoach 2018: 53% of progressing plasma samples carry ALK mutations"],
            evidence_strength="direct",
            unverified_knowledge=True,
            confirmed=True,
            draws_used=["S5", "S6"],
        ),
        Alert(
            rule_id="P2", tier="FAILURE", title="Confirmed loss of molecular response",
            findings=[
                Finding(gene="ALK", alteration="EML4-ALK fusion", sample_id="S6",
                        collection_date=wk(34), vaf=0.015, alt_reads=49, depth=3280,
                        lod_vaf=0.005, ctdna_level=0.015),
                Finding(gene="TP53", alteration="R273H", sample_id="S6", collection_date=wk(34),
                        vaf=None, detected=False, lod_vaf=0.005),
            ],
            suggested_actions=["Early-switch review", "Resistance work-up (rules R1-R3)"],
            evidence=["ELN 2013: confirmed loss of MMR = failure"],
            evidence_strength="analogy (CML/IO)",
            confirmed=True,
            draws_used=["S4", "S5", "S6"],
        ),
    ]
    assessment = Assessment(
        patient_id=patient_id, as_of=as_of,
        therapy=Therapy(drug="alectinib", start_date=start, line=1),
        status="FAILURE", alerts=alerts,
        config_version="2026.11.0+test", kb_version="kb-2026.10", pipeline_version="0.1.0",
        draws_used=["S1", "S2", "S3", "S4", "S5", "S6"], baseline_sample_id="S1",
        nadir=0.004, next_draw_due=wk(38), days_on_therapy=(as_of - start).days,
        levels=rules_levels((obs, samples, ther), as_of),
        status_reason="ALK G1202R detected on two consecutive draws 28 days apart",
        caveats=["Plasma negative does not downgrade CNS surveillance (rule C2)."],
    )
    history = [
        {"evaluated_at": datetime(2025, 9, 1, 6, 0, tzinfo=UTC), "rule_id": "P1",
         "tier": "WARNING", "title": "Loss of molecular response after clearance"},
        {"evaluated_at": datetime(2025, 4, 10, 6, 0, tzinfo=UTC), "rule_id": "E1",
         "tier": "INFO", "title": "Clearance by week 10"},
    ]
    return Scenario(patient_id, obs, samples, ther, assessment, history)


def cleared(patient_id: str = "PT-0002") -> Scenario:
    """Baseline detected, cleared by week 5 on lorlatinib (OPTIMAL); tumor fraction reported."""
    start = date(2025, 5, 5)
    draws = [
        {"sample_id": "C1", "date": start - timedelta(days=3), "lod": 0.002, "tf": 0.031,
         "assay": "guardant360", "calls": [("fusion", 0.028, 90, 3200)]},
        {"sample_id": "C2", "date": start + timedelta(weeks=5), "lod": 0.002, "tf": None,
         "assay": "guardant360", "calls": []},
    ]
    therapies = [
        {"line": 1, "drug": "alectinib", "start_date": date(2023, 1, 9),
         "end_date": date(2025, 4, 30)},
        {"line": 2, "drug": "lorlatinib", "start_date": start, "end_date": None},
    ]
    obs, samples, ther = _frames(patient_id, draws, therapies, first_pk=100)
    as_of = start + timedelta(weeks=6)
    assessment = Assessment(
        patient_id=patient_id, as_of=as_of,
        therapy=Therapy(drug="lorlatinib", start_date=start, line=2),
        status="OPTIMAL",
        alerts=[Alert(rule_id="E1", tier="INFO", title="Clearance by week 10", findings=[],
                      suggested_actions=["Continue surveillance per cadence C1"],
                      evidence=["ctMoniTR: clearance <= 10 weeks, OS HR 2.12"],
                      evidence_strength="direct", confirmed=None, draws_used=["C2"])],
        config_version="2026.11.0+test", kb_version="kb-2026.10", pipeline_version="0.1.0",
        # the rules' C1 due date (week 8-10 window of line 2); reports never recompute it
        baseline_sample_id="C1", next_draw_due=date(2025, 7, 14),
        days_on_therapy=(as_of - start).days, levels=rules_levels((obs, samples, ther), as_of),
        status_reason="All tracked markers below LoD by week 5",
    )
    return Scenario(patient_id, obs, samples, ther, assessment, [])


KB_SOURCES = [
    {"name": "ctdna curated ALK knowledge", "version": "kb-2026.10", "licence": "CC-BY-4.0",
     "url": "https://github.com/example/ctdna/configs/knowledge"},
    {"name": "CIViC", "version": "2026-10-01", "licence": "CC0-1.0",
     "url": "https://civicdb.org"},
]
