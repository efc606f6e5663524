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
    intent: str = Field("palliative", description="palliative | curative | adjuvant (#9 item 7)")


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
        None, description="evidenced | analogy | convention: how the rule is supported"
    )
    unverified_knowledge: bool = Field(
        False, description="True when a fact used is not verified against its primary source"
    )
    confirmed: bool | None = None
    draws_used: list[str] = Field(default_factory=list, description="sample_ids the rule read")


class DrawLevel(_Model):
    """The ctDNA level of one draw as the rules used it (one truth for reports and emails)."""

    sample_id: str
    collection_date: date
    day: int = Field(..., description="days since the start of the line")
    role: Literal["baseline", "on_treatment"]
    provisional_reference: bool = False
    detected: bool
    level: float | None = Field(None, description="ctDNA level (unit below); None if censored")
    upper_bound: float | None = Field(None, description="LoD bound of a non-detect")
    unit: Literal["fraction", "mtm_per_ml"] = "fraction"
    source: str = Field(..., description="marker_vaf | tumor_fraction | draw_<unit>")
    markers: str | None = Field(None, description="tracked markers detected, 'GENE ALT, ...'")
    informative: bool = True


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
    headline: str = Field("", description="one sentence: what drives the status (#9 item 8)")
    baseline_context: list[Alert] = Field(
        default_factory=list,
        description="baseline-risk alerts (B2) once response is assessed: context, not current",
    )
    baseline_provisional: bool = Field(
        False, description="True when the reference is the first on-treatment draw (#9 item 5)"
    )
    levels: list[DrawLevel] = Field(
        default_factory=list, description="per-draw ctDNA level of the line, as the rules used it"
    )
    reevaluate_on: date | None = Field(
        None, description="first date after as_of on which this assessment changes without "
                          "new data (next draw due, draw overdue, line ended, a later-dated "
                          "draw or line); incremental runs re-evaluate then (#11 item 2)")

    def contract_json(self) -> dict[str, object]:
        """The object printed by ``ctdna evaluate --json`` (contract + extensions).

        Floats are rounded to 3 significant digits (VAF, LoD, levels: the assays report
        2-3 digits; #9 item 8), copy numbers included.
        """
        rounded = _rounded(self.model_dump(mode="json"))
        assert isinstance(rounded, dict)  # a model dumps to a dict
        return rounded


def _rounded(value: object, digits: int = 3) -> object:
    """``value`` with every float rounded to ``digits`` significant digits.

    Leaves (strings, ints, booleans, None: most of a dumped assessment) are copied without
    a call: 3.5 million nodes for 10,000 patients (#11 item 2).
    """
    spec = f".{digits}g"

    def walk(item: object) -> object:
        if isinstance(item, float):
            return float(format(item, spec))
        if isinstance(item, dict):
            return {k: v if type(v) in _LEAVES else walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [v if type(v) in _LEAVES else walk(v) for v in item]
        return item

    return walk(value)


_LEAVES = frozenset({str, int, bool, type(None)})
