"""What an export holds, gathered once from the store and the rule engine (#14 item 4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from pipeline.assessment import Assessment
    from pipeline.config import Settings
    from pipeline.knowledge import KnowledgeBase
    from pipeline.store.repository import Store

#: Store observation columns exported, in order; ``vaf`` and ``lod_vaf`` are renamed with
#: their unit by :data:`RENAMED` (``tumor_fraction`` already says it is a fraction).
OBSERVATION_COLUMNS = (
    "patient_id", "sample_id", "collection_date", "assay", "genome_build", "lod_vaf",
    "tumor_fraction", "record_index", "chrom", "pos", "ref", "alt", "variant_type", "gene",
    "alteration", "category", "kb_id", "protein_change", "vaf", "vaf_source", "alt_reads",
    "depth", "filter", "detected", "copy_number", "fusion_partner", "mate_chrom", "mate_pos",
)
RENAMED = {"vaf": "vaf_fraction", "lod_vaf": "lod_fraction"}


@dataclass
class ExportData:
    """The export's content: store observations and the engine's assessments."""

    observations: pd.DataFrame  # OBSERVATION_COLUMNS, renamed by RENAMED
    assessments: list[Assessment]
    care_teams: dict[str, str | None]
    generated_at: datetime
    pipeline_version: str
    config_version: str
    kb_version: str

    def alert_rows(self) -> list[dict[str, Any]]:
        """One row per current alert: its rule, tier, exact draws and versions."""
        rows = []
        for a in self.assessments:
            for i, alert in enumerate(a.alerts, start=1):
                rows.append({
                    "alert_id": alert_id(a, i), "patient_id": a.patient_id,
                    "care_team": self.care_teams.get(a.patient_id), "as_of": a.as_of,
                    "rule_id": alert.rule_id, "tier": alert.tier, "title": alert.title,
                    "confirmed": alert.confirmed,
                    "draws_used": ";".join(alert.draws_used),
                    "alterations": ";".join(dict.fromkeys(
                        " ".join(p for p in (f.gene, f.alteration) if p)
                        for f in alert.findings if f.gene)),
                    "evidence_strength": alert.evidence_strength,
                    "unverified_knowledge": alert.unverified_knowledge,
                    "suggested_actions": " | ".join(alert.suggested_actions),
                    "config_version": a.config_version, "kb_version": a.kb_version,
                })
        return rows

    def assessment_rows(self) -> list[dict[str, Any]]:
        """One row per patient: tier, headline, line of therapy, next draw, versions."""
        # nadir as ``evaluate --json`` prints it (3 significant digits, the assays' precision)
        nadirs = {a.patient_id: a.contract_json().get("nadir") for a in self.assessments}
        return [{
            "patient_id": a.patient_id, "care_team": self.care_teams.get(a.patient_id),
            "as_of": a.as_of, "status": a.status, "headline": a.headline,
            "status_reason": a.status_reason,
            "drug": a.therapy.drug if a.therapy else None,
            "line": a.therapy.line if a.therapy else None,
            "baseline_sample_id": a.baseline_sample_id,
            "nadir_fraction": nadirs[a.patient_id], "next_draw_due": a.next_draw_due,
            "draws_used": ";".join(a.draws_used),
            "alert_rules": ";".join(al.rule_id for al in a.alerts),
            "config_version": a.config_version, "kb_version": a.kb_version,
            "pipeline_version": a.pipeline_version,
        } for a in self.assessments]


def alert_id(assessment: Assessment, index: int) -> str:
    """A stable, PHI-free-enough reference of an alert within one export."""
    return f"{assessment.patient_id}:{assessment.as_of.isoformat()}:{index}"


def collect(store: Store, settings: Settings, kb: KnowledgeBase,
            patient_ids: list[str] | None, as_of: date | None) -> ExportData:
    """Read the observations and evaluate the assessments (not stored: a read-only export)."""
    import pipeline
    from pipeline.service import evaluate_patients, require_patient
    from pipeline.store.repository import now_utc

    if patient_ids is not None:
        for pid in patient_ids:
            require_patient(store, pid)
    ids = patient_ids if patient_ids is not None else store.patient_ids()
    results = evaluate_patients(store, settings, kb, ids, as_of, persist=False)
    obs = store.observations_frame(ids)
    obs = obs[[c for c in OBSERVATION_COLUMNS if c in obs.columns]].rename(columns=RENAMED)
    return ExportData(
        observations=obs.reset_index(drop=True),
        assessments=[r.assessment for r in results],
        care_teams={r.assessment.patient_id: r.care_team for r in results},
        generated_at=now_utc(), pipeline_version=pipeline.__version__,
        config_version=settings.version_label(), kb_version=str(kb.version),
    )
