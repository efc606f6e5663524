"""The assessment: what the rule engine concludes for one patient at one date.

Serialises to the JSON shape of ``../shared/spec/interfaces.md`` (``ctdna evaluate --json``)
plus audit fields (exact draws, config and knowledge-base versions) that make every alert
explainable and reproducible. FAILURE means "early-switch review by a clinician", never an
automatic therapy change.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["OPTIMAL", "WARNING", "FAILURE", "NOT_EVALUABLE"]
Tier = Literal["INFO", "WARNING", "FAILURE"]

FAILURE_MEANING = (
    "FAILURE means 'early-switch review by a clinician' (confirm, re-genotype, consider "
    "options); it is never an automatic change of therapy."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Therapy(_Model):
    drug: str
    start_date: date
    line: int
    end_date: date | None = None


class Finding(_Model):
    gene: str | None
    alteration: str | None
    sample_id: str
    collection_date: date
    vaf: float | None = Field(None, description="fraction 0-1; None for a non-detect or CNV")
    detected: bool = True
    lod_vaf: float | None = Field(None, description="the draw's LoD, fraction 0-1")
    alt_reads: int | None = None
    depth: int | None = None
    copy_number: float | None = None
    ctdna_level: float | None = Field(None, description="draw-level ctDNA (fraction) if relevant")
    note: str | None = None


class TherapyOption(_Model):
    name: str
    kind: Literal["approved", "trial", "investigational", "procedure"]
    reference: str
    evidence_level: str | None = None
    verified: bool = True


class Alert(_Model):
    rule_id: str
    tier: Tier
    title: str
    findings: list[Finding]
    suggested_actions: list[str]
    therapy_options: list[TherapyOption] = Field(default_factory=list)
    evidence: list[str]
    evidence_strength: str | None = Field(
        None, description="direct | analogy (CML/IO) | heuristic: how the rule is supported"
    )
    unverified_knowledge: bool = Field(
        False, description="True when a fact used is not verified against its primary source"
    )
    confirmed: bool | None = None
    draws_used: list[str] = Field(default_factory=list, description="sample_ids the rule read")


class Assessment(_Model):
    patient_id: str
    as_of: date
    therapy: Therapy | None
    status: Status
    alerts: list[Alert]
    # audit and context (extensions of the contract JSON)
    config_version: str
    kb_version: str
    pipeline_version: str
    draws_used: list[str] = Field(default_factory=list, description="every sample_id considered")
    baseline_sample_id: str | None = None
    nadir: float | None = Field(None, description="lowest ctDNA level on the line, fraction 0-1")
    next_draw_due: date | None = None
    days_on_therapy: int | None = None
    status_reason: str = ""
    caveats: list[str] = Field(default_factory=list)

    def contract_json(self) -> dict[str, object]:
        """The object printed by ``ctdna evaluate --json`` (contract + extensions)."""
        return self.model_dump(mode="json")
