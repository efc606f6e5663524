"""Use cases shared by the CLI and the Prefect flows (no Prefect, no argument parsing).

Each function works on whole batches: the store is read once into frames, the rules run
vectorised over the cohort, and the results are written back in bulk.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pipeline
from pipeline.errors import NotFoundError
from pipeline.progress import Progress, resolve
from pipeline.store.repository import Store, now_utc, plain_value

if TYPE_CHECKING:  # loaded where used: `ctdna observations` needs no pandas (#11 item 4)
    from pipeline.alerts.escalation import EscalationReport
    from pipeline.assessment import Assessment
    from pipeline.config import Settings
    from pipeline.knowledge import KnowledgeBase

#: ``ctdna observations --json`` fields (contract order), then extensions.
OBSERVATION_JSON_FIELDS = (
    "sample_id", "patient_id", "collection_date", "chrom", "pos", "ref", "alt", "gene",
    "alteration", "variant_type", "vaf", "alt_reads", "depth", "filter", "detected", "category",
    "lod_vaf", "vaf_source", "copy_number", "fusion_partner", "kb_id",
)


def _json_value(value: Any) -> Any:
    value = plain_value(value)
    return value.isoformat() if isinstance(value, date) else value


def observations_records(store: Store, patient_id: str) -> list[dict[str, Any]]:
    """Every stored observation of the patient (current sample versions), as JSON-ready dicts."""
    require_patient(store, patient_id)
    return [
        {name: _json_value(row[name]) for name in OBSERVATION_JSON_FIELDS}
        for row in store.observation_records([patient_id])
    ]


def require_patient(store: Store, patient_id: str) -> None:
    """Raise :class:`NotFoundError` (exit 2) when the patient is not in the store."""
    if store.patient(patient_id) is None:
        raise NotFoundError(f"unknown patient {patient_id!r}", field="--patient")


@dataclass
class EvaluationResult:
    """One patient's assessment, where it is stored, and what came before it."""

    assessment: Assessment
    assessment_id: int | None
    care_team: str | None
    previous_status: str | None
    #: When the store was read for this evaluation (clears work-queue marks up to then).
    read_at: datetime | None = None


def evaluate_patients(store: Store, settings: Settings, kb: KnowledgeBase,
                      patient_ids: list[str] | None, as_of: date | None = None, *,
                      persist: bool = True,
                      progress: Progress | None = None) -> list[EvaluationResult]:
    """Evaluate the rules for the given patients (all when None) and store the assessments.

    The stored row records the exact sample rows (versions) the rules read, the config and
    knowledge-base versions, so that any alert can be explained and reproduced later.
    """
    from pipeline.rules import evaluate_cohort

    ids = patient_ids if patient_ids is not None else store.patient_ids()
    if not ids:
        return []
    read_at = now_utc()
    steps = resolve(progress)
    steps.start("evaluate", len(ids))  # the rules run on the whole cohort at once
    observations = store.observations_frame(ids)
    samples = store.samples_frame(ids)
    therapies = store.therapies_frame(ids)
    assessments = evaluate_cohort(observations, samples, therapies, settings, kb,
                                  as_of=as_of or date.today(), patient_ids=ids)
    previous = store.assessments_frame(latest_only=True)
    previous_status = dict(zip(previous.get("patient_id", []), previous.get("status", []),
                               strict=False))
    pk_by_sample = dict(zip(samples["sample_id"], samples["sample_pk"], strict=False))
    care_teams = store.care_teams(ids)
    results = []
    evaluated_at = now_utc()
    for assessment in assessments:
        assessment_id = None
        if persist:
            pks = [int(pk_by_sample[s]) for s in assessment.draws_used if s in pk_by_sample]
            assessment_id = store.save_assessment(assessment.contract_json(), sample_pks=pks,
                                                  evaluated_at=evaluated_at)
        results.append(EvaluationResult(assessment, assessment_id,
                                        care_teams.get(assessment.patient_id),
                                        previous_status.get(assessment.patient_id),
                                        read_at))
        steps.advance()
    steps.finish()
    return results


def alert_history(store: Store, patient_id: str) -> list[dict[str, Any]]:
    """Every alert of every stored assessment of the patient, oldest first."""
    frame = store.assessments_frame(patient_id)
    history: list[dict[str, Any]] = []
    for row in frame.to_dict("records"):
        payload = row["payload"]
        for alert in payload.get("alerts", []):
            history.append({
                "evaluated_at": row["evaluated_at"], "as_of": row["as_of"],
                "status": row["status"], "rule_id": alert["rule_id"], "tier": alert["tier"],
                "title": alert["title"], "config_version": row["config_version"],
                "kb_version": row["kb_version"],
            })
    return history


def reports_dir(settings: Settings, override: Path | None = None) -> Path:
    folder = Path(override or settings.paths.reports)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def patient_report_name(patient_id: str) -> str:
    """File name of a patient's report: ``patient-<16 hex>.html``, a stable hash of the ID.

    Not derived from the raw ID (issue #10 item 7): replacing unsafe characters made ``P/1``
    and ``P_1`` share one file, so an email linked to the other patient's report, and the
    ID itself would show in URLs and server logs. The ID is shown inside the page. 64 bits of
    SHA-256 make a collision within a cohort practically impossible.
    """
    digest = hashlib.sha256(patient_id.encode("utf-8")).hexdigest()[:16]
    return f"patient-{digest}.html"


def write_patient_report(store: Store, settings: Settings, kb: KnowledgeBase, patient_id: str,
                         out: Path, *, assessment: Assessment | None = None) -> Path:
    """Render and write the clinician report of one patient."""
    from pipeline.report.render import render_patient_report, write_html

    if assessment is None:
        results = evaluate_patients(store, settings, kb, [patient_id], persist=False)
        assessment = results[0].assessment
    html = render_patient_report(
        patient_id,
        store.observations_frame([patient_id]),
        store.samples_frame([patient_id]),
        store.therapies_frame([patient_id]),
        assessment,
        alert_history(store, patient_id),
        settings,
        kb.sources(),
    )
    return write_html(out, html)


def write_cohort_report(store: Store, settings: Settings, kb: KnowledgeBase, out: Path, *,
                        today: date | None = None) -> Path:
    """Render and write the lab's cohort overview."""
    from pipeline.report.render import CohortRow, render_cohort_report, write_html

    results = evaluate_patients(store, settings, kb, None, today, persist=False)
    samples = store.samples_frame()
    draw_dates = samples.groupby("patient_id")["collection_date"].apply(list).to_dict() \
        if not samples.empty else {}
    unacknowledged = open_alert_counts(store)
    rows = [
        CohortRow.from_assessment(r.assessment, draw_dates.get(r.assessment.patient_id, []),
                                  settings, care_team=r.care_team,
                                  open_alerts=unacknowledged.get(r.assessment.patient_id, 0))
        for r in results
    ]
    html = render_cohort_report(rows, settings, generated_at=datetime.now())
    return write_html(out, html)


def pipeline_version() -> str:
    return pipeline.__version__


def escalate_unacknowledged(store: Store, settings: Settings, *,
                            now: datetime | None = None) -> EscalationReport:
    """The run's escalation step (issue #14 item 2): enqueue an escalation message for every
    FAILURE alert not acknowledged in time (``notify.escalation``), once per alert.

    Call it after the run's alerts are enqueued and before delivery, so the escalation goes
    out in the same run. ``ctdna alerts --escalate`` runs the same step.
    """
    from pipeline.alerts.escalation import escalate_overdue

    return escalate_overdue(store.engine, settings, now=now)


def open_alert_counts(store: Store, patient_ids: list[str] | None = None) -> dict[str, int]:
    """Patient -> open (unacknowledged WARNING/FAILURE) alerts: the cohort report's
    ``open_alerts`` sort key (unacknowledged alerts first, issue #14 item 2)."""
    from pipeline.store.alerts import open_alert_counts as counts

    with store.engine.connect() as conn:
        return counts(conn, patient_ids)
