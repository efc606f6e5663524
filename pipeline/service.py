"""Use cases shared by the CLI and the Prefect flows (no Prefect, no argument parsing).

Each function works on whole batches: the store is read once into frames, the rules run
vectorised over the cohort, and the results are written back in bulk.
"""

from __future__ import annotations

import dataclasses
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
    from pipeline.evaluation import Evaluated
    from pipeline.knowledge import KnowledgeBase
    from pipeline.report.batch import ReportsOutcome
    from pipeline.report.render import CohortRow

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

    evaluated: Evaluated
    assessment_id: int | None
    care_team: str | None
    previous_status: str | None
    #: When the store was read for this evaluation (clears work-queue marks up to then).
    read_at: datetime | None = None

    @property
    def assessment(self) -> Assessment:
        """The patient's assessment (built on first use for a worker's shard)."""
        return self.evaluated.assessment

    @property
    def payload(self) -> dict[str, Any]:
        """``assessment.contract_json()``, made once: what was stored and what ``--json``
        prints."""
        return self.evaluated.payload


def evaluate_patients(store: Store, settings: Settings, kb: KnowledgeBase,
                      patient_ids: list[str] | None, as_of: date | None = None, *,
                      persist: bool = True,
                      progress: Progress | None = None) -> list[EvaluationResult]:
    """Evaluate the rules for the given patients (all when None) and store the assessments.

    The stored row records the exact sample rows (versions) the rules read, the config and
    knowledge-base versions, so that any alert can be explained and reproduced later.
    """
    from pipeline.evaluation import evaluate_from_store

    ids = patient_ids if patient_ids is not None else store.patient_ids()
    if not ids:
        return []
    read_at = now_utc()
    steps = resolve(progress)
    steps.start("evaluate", len(ids))  # the rules run on the whole cohort at once
    # Whole-cohort frames, in patient shards on several processes for a large cohort (#11).
    evaluated = evaluate_from_store(store, settings, kb, list(ids), as_of or date.today())
    previous = store.assessments_frame(latest_only=True)
    previous_status = dict(zip(previous.get("patient_id", []), previous.get("status", []),
                               strict=False))
    care_teams = store.care_teams(ids)
    # The contract JSON is made once: the stored payload is the one printed (one truth).
    stored_ids: list[int | None] = [None] * len(evaluated)
    if persist:
        stored_ids = list(store.save_assessments(
            [(e.payload, e.sample_pks) for e in evaluated], evaluated_at=now_utc()))
    results = []
    for e, assessment_id in zip(evaluated, stored_ids, strict=True):
        patient = str(e.payload["patient_id"])
        results.append(EvaluationResult(e, assessment_id, care_teams.get(patient),
                                        previous_status.get(patient), read_at))
        steps.advance()
    steps.finish()
    return results


#: Why an incremental run evaluates a patient (#11 item 2), keyed by the work-queue reason.
#: Data and operator marks come from ingest, therapy import and ``--force``; the others are
#: added by :func:`evaluation_queue` from the latest stored assessment.
EVALUATION_REASONS: dict[str, str] = {
    "ingest": "new or amended draws",
    "ingested": "new draws",
    "amended": "amended draws",
    "therapies": "therapy history changed",
    "force": "forced by the operator",
    "never-evaluated": "never evaluated",
    "pipeline": "ctdna upgraded since the last evaluation",
    "config": "configuration changed since the last evaluation",
    "knowledge-base": "knowledge base changed since the last evaluation",
    "cadence": "a cadence date passed (next draw due, draw overdue or line ended)",
    "later-as-of": "last evaluated for a later date",
}
#: Incremental-run reasons, in order of precedence when several apply to one patient.
STALE_REASONS = ("never-evaluated", "pipeline", "config", "knowledge-base", "cadence",
                 "later-as-of")
UNCHANGED = ("unchanged since the last evaluation (no new or amended data, same therapy, "
             "configuration, knowledge base and ctdna version, no cadence date passed)")


@dataclass(frozen=True)
class EvaluationQueue:
    """The patients a flow run evaluates, and why; counts only (no IDs) leave the flow.

    Attributes
    ----------
    patients
        Patient IDs to evaluate (sorted).
    cohort
        Number of stored patients.
    reasons
        Evaluated patients per reason (:data:`EVALUATION_REASONS` wording).
    skipped
        Skipped patients per reason (:data:`UNCHANGED`).
    """

    patients: list[str]
    cohort: int
    reasons: dict[str, int]
    skipped: dict[str, int]


def evaluation_queue(store: Store, settings: Settings, kb: KnowledgeBase, *, run_id: str,
                     started_at: datetime | None = None, force: list[str] | None = None,
                     today: date | None = None) -> EvaluationQueue:
    """Select the patients whose assessment may have changed since it was stored (#11 item 2).

    New or amended draws and therapy changes are already in the work queue (marked in the
    transaction that stored them). Added here, from one query over the latest assessments:
    patients never evaluated, evaluated by another ctdna version, configuration or
    knowledge-base version, or whose ``reevaluate_on`` date (the next draw falls due or is
    overdue, the line ended, a later-dated draw enters the window) is on or before
    ``today``. They are marked in the work queue with that reason, so a run that fails
    before evaluating leaves them for the next. Every other patient is skipped: its stored
    assessment is the one the rules would give again.
    """
    today = today or date.today()
    if force:
        store.mark_pending(force, "force", run_id)
    queued = store.pending_reasons()
    stamps = store.evaluation_stamps()
    ids = store.patient_ids()
    stale: dict[str, str] = {}
    if len(stamps):
        last_as_of = stamps["as_of"]
        again = stamps["reevaluate_on"]
        checks = {
            "pipeline": stamps["pipeline_version"] != pipeline_version(),
            "config": stamps["config_version"] != settings.version_label(),
            "knowledge-base": stamps["kb_version"] != str(kb.version),
            "cadence": again.map(lambda d: d is not None and d <= today).astype(bool),
            "later-as-of": last_as_of.map(lambda d: d is not None and d > today).astype(bool),
        }
        for reason in reversed(STALE_REASONS[1:]):  # the first reason in order wins
            for pid in stamps.loc[checks[reason].to_numpy(), "patient_id"]:
                stale[str(pid)] = reason
        evaluated = set(stamps["patient_id"].astype(str))
    else:
        evaluated = set()
    for pid in ids:
        if pid not in evaluated:
            stale[pid] = "never-evaluated"
    by_reason: dict[str, list[str]] = {}
    for pid, reason in stale.items():
        if pid not in queued:  # a data or operator mark stays (and keeps its reason)
            by_reason.setdefault(reason, []).append(pid)
    for reason, pids in by_reason.items():
        store.mark_pending(pids, reason, run_id)
    marks = store.pending_reasons(run_id, started_at)
    counts: dict[str, int] = {}
    for reason in marks.values():
        label = EVALUATION_REASONS.get(reason, reason)
        counts[label] = counts.get(label, 0) + 1
    # Marks a concurrent run made after this one started are that run's work (#11 item 6).
    elsewhere = len(set(store.pending_reasons()) - set(marks))
    skipped = {UNCHANGED: len(ids) - len(marks) - elsewhere,
               "queued by a concurrent run": elsewhere}
    return EvaluationQueue(sorted(marks), len(ids), counts,
                           {k: n for k, n in skipped.items() if n > 0})


def alert_histories(store: Store, patient_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every alert of every stored assessment of each patient, oldest first (one query)."""
    frame = store.assessments_frame(patient_ids=patient_ids)
    histories: dict[str, list[dict[str, Any]]] = {pid: [] for pid in patient_ids}
    for row in frame.to_dict("records"):
        payload = row["payload"]
        for alert in payload.get("alerts", []):
            histories.setdefault(row["patient_id"], []).append({
                "evaluated_at": row["evaluated_at"], "as_of": row["as_of"],
                "status": row["status"], "rule_id": alert["rule_id"], "tier": alert["tier"],
                "title": alert["title"], "config_version": row["config_version"],
                "kb_version": row["kb_version"],
            })
    return histories


def alert_history(store: Store, patient_id: str) -> list[dict[str, Any]]:
    """Every alert of every stored assessment of the patient, oldest first."""
    return alert_histories(store, [patient_id])[patient_id]


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


def write_patient_reports_for(store: Store, settings: Settings, kb: KnowledgeBase,
                              results: list[EvaluationResult], folder: Path, *,
                              label: str = "reports") -> ReportsOutcome:
    """The evaluated patients' reports; only those whose content changed are rewritten.

    Issue #11 item 3: the store is read once for the batch (or shard). The trend chart of
    each patient that may get an email (alerts, or a tier change) is drawn as PNG too and
    left in ``<folder>/.charts`` for the email builder (``ChartCache.for_reports(folder)``).

    Returns
    -------
    ReportsOutcome
        ``paths`` (patient -> report, written or unchanged), ``written``, ``unchanged``;
        ``counts()`` for the run summary.
    """
    from pipeline.report.batch import write_patient_reports
    from pipeline.report.chartcache import ChartCache

    ids = [r.assessment.patient_id for r in results]
    png_for = {r.assessment.patient_id for r in results
               if r.assessment.alerts or (r.previous_status is not None
                                          and r.previous_status != r.assessment.status)}
    return write_patient_reports(
        ids, store.observations_frame(ids), store.samples_frame(ids), store.therapies_frame(ids),
        {r.assessment.patient_id: r.assessment for r in results}, alert_histories(store, ids),
        settings, kb.sources(), folder, patient_report_name,
        charts=ChartCache.for_reports(folder), png_for=png_for, label=label)


def write_reports(store: Store, settings: Settings, kb: KnowledgeBase,
                  results: list[EvaluationResult], folder: Path, *,
                  today: date | None = None) -> ReportsOutcome:
    """The evaluated patients' reports and the cohort page, each only when changed."""
    outcome = write_patient_reports_for(store, settings, kb, results, folder)
    cohort, written = _cohort_page(store, settings, kb, folder / "cohort.html", today=today,
                                   results=results, only_if_changed=True)
    outcome.cohort_path, outcome.cohort_written = str(cohort), written
    return outcome


def write_run_cohort_report(store: Store, settings: Settings, kb: KnowledgeBase, out: Path, *,
                            evaluated: list[str]) -> Path:
    """The run's cohort page: rewritten only when its content changed.

    ``evaluated``: patients whose assessment this run stored; their latest stored one is
    used although their work-queue mark is still set until their alerts are enqueued.
    """
    return _cohort_page(store, settings, kb, out, today=None, results=None,
                        only_if_changed=True, evaluated=set(evaluated))[0]


def write_all_reports(store: Store, settings: Settings, kb: KnowledgeBase, folder: Path, *,
                      today: date | None = None) -> ReportsOutcome:
    """Every patient's report and the cohort page (``ctdna report --all``), as of today.

    The patients are evaluated (not stored) as for ``ctdna report --patient``; reports whose
    content is unchanged since the folder's last run are left as they are.
    """
    results = evaluate_patients(store, settings, kb, None, today, persist=False)
    return write_reports(store, settings, kb, results, folder, today=today)


def _stored_current(store: Store, settings: Settings, kb: KnowledgeBase, today: date,
                    exclude: set[str], evaluated: set[str] | None = None
                    ) -> tuple[dict[str, Assessment], list[str]]:
    """Stored latest assessments that are today's truth, and the patients that need one.

    A stored assessment is reused when it was made for ``today`` with the current
    configuration and knowledge base and the patient has no newer data (not in the work
    queue); anything else is evaluated again (not stored), as the page always did. This is
    the one place that decides it for the cohort page.
    """
    from pipeline.assessment import Assessment

    latest = store.latest_assessments_frame()
    pending = set(store.pending_patients())
    reused: dict[str, Assessment] = {}
    if not latest.empty:
        as_of = latest["as_of"].astype(str).str[:10]
        ok = ((as_of == today.isoformat())
              & (latest["config_version"] == settings.version_label())
              & (latest["kb_version"] == str(kb.version))
              & ~latest["patient_id"].isin((pending - (evaluated or set())) | exclude))
        for pid, payload in zip(latest.loc[ok, "patient_id"], latest.loc[ok, "payload"],
                                strict=True):
            reused[str(pid)] = Assessment.model_validate(payload)
    missing = [pid for pid in store.patient_ids() if pid not in reused and pid not in exclude]
    return reused, missing


def cohort_rows(store: Store, settings: Settings, kb: KnowledgeBase, today: date, *,
                results: list[EvaluationResult] | None = None,
                evaluated: set[str] | None = None) -> list[CohortRow]:
    """One :class:`CohortRow` per patient of the store, as of ``today``.

    ``results`` (this run's evaluations) are used as they are; the other patients' stored
    assessments are reused when current (see :func:`_stored_current`), else evaluated.
    """
    from pipeline.report.render import CohortRow

    fresh = {r.assessment.patient_id: r.assessment for r in results or []}
    reused, missing = _stored_current(store, settings, kb, today, set(fresh),
                                      evaluated or set())
    again = evaluate_patients(store, settings, kb, missing, today, persist=False) \
        if missing else []
    assessments = {**reused, **fresh, **{r.assessment.patient_id: r.assessment
                                         for r in again}}
    last_draw, alterations = store.cohort_facts()
    teams = store.care_teams(list(assessments))
    unacknowledged = open_alert_counts(store)
    return [
        CohortRow.from_assessment(a, [last_draw[pid]] if pid in last_draw else [], settings,
                                  care_team=teams.get(pid),
                                  alterations=alterations.get(pid, ()),
                                  open_alerts=unacknowledged.get(pid, 0))
        for pid, a in sorted(assessments.items())
    ]


def _cohort_page(store: Store, settings: Settings, kb: KnowledgeBase, out: Path, *,
                 today: date | None, results: list[EvaluationResult] | None,
                 only_if_changed: bool, evaluated: set[str] | None = None) -> tuple[Path, bool]:
    from pipeline.report.batch import ReportManifest, content_digest
    from pipeline.report.render import render_cohort_report, write_html

    now = datetime.now()
    day = today or now.date()
    rows = cohort_rows(store, settings, kb, day, results=results, evaluated=evaluated)
    manifest = ReportManifest(out.parent)
    fingerprint = content_digest([dataclasses.astuple(r) for r in rows], day,
                                 settings.version_label(), settings.cadence.overdue_grace_days)
    if only_if_changed and manifest.current(out.name, fingerprint):
        return out, False
    path = write_html(out, render_cohort_report(rows, settings, generated_at=now))
    manifest.record(out.name, fingerprint)
    manifest.save()
    return path, True


def write_cohort_report(store: Store, settings: Settings, kb: KnowledgeBase, out: Path, *,
                        today: date | None = None) -> Path:
    """Render and write the lab's cohort overview (always rewritten: ``ctdna report``)."""
    return _cohort_page(store, settings, kb, out, today=today, results=None,
                        only_if_changed=False)[0]


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
