"""Prefect tasks wrapping the core use cases.

Granularity: one task per inbox file (a manifest is a batch) or per whole-cohort step;
per-variant work is vectorised inside ``pipeline``. Tasks receive paths and IDs, never
open handles, and persist no results (results could carry patient data; engineering-notes
§4.3). Only I/O gets retries: email delivery. Database and config locations come from the
environment (``CTDNA_DB_URL``, ``CTDNA_CONFIG``), never from flow parameters, so that no
credential is stored in Prefect's database.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline.config import Settings, load_settings
from pipeline.errors import DeliveryError, InputError
from pipeline.inbox import InboxScan, mark_processed, quarantine, scan_inbox
from pipeline.ingest import IngestReport, IngestWarning, ingest_manifest, ingest_therapies
from pipeline.ingest import prepare_sample as _prepare_sample
from pipeline.io.manifest import RowRejection, read_manifest, read_therapies
from pipeline.knowledge import KnowledgeBase, knowledge_base_for
from pipeline.service import (
    EvaluationResult,
    evaluate_patients,
    write_patient_reports_for,
    write_run_cohort_report,
)
from pipeline.store.repository import Store

TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


def context() -> tuple[Settings, Store, KnowledgeBase]:
    """Settings, store and knowledge base from the environment of this worker."""
    settings = load_settings()
    return settings, Store(settings.database_url), knowledge_base_for(settings)


@task(name="scan-inbox", **TASK_OPTIONS)
def scan_inbox_task(inbox: str, force: bool, dry_run: bool) -> InboxScan:
    _settings, store, _kb = context()
    return scan_inbox(Path(inbox), None if dry_run else store, force=force)


@task(name="ingest-therapies", **TASK_OPTIONS)
def ingest_therapies_task(path: str, fingerprint: str, run_id: str, dry_run: bool,
                          quarantine_dir: str) -> IngestReport:
    _settings, store, _kb = context()
    try:
        if dry_run:
            rows = read_therapies(path)
            return IngestReport(therapies=len(rows))
        report = ingest_therapies(path, store)
    except InputError as exc:
        report = IngestReport(rejected=[RowRejection(path, exc.one_line())])
        if not dry_run:
            quarantine(Path(path), exc.one_line(), Path(quarantine_dir), root=Path(path).parent)
        return report
    # The file is marked processed by mark_processed_task when the run has finished
    # (issue #10 item 1), not here: a crash before then re-reads it (idempotent).
    return report


@task(name="ingest-manifest", **TASK_OPTIONS)
def ingest_manifest_task(path: str, fingerprint: str, run_id: str, dry_run: bool,
                         sample_ids: list[str] | None, quarantine_dir: str) -> IngestReport:
    """Ingest one delivered batch; bad files are quarantined while the rest proceeds."""
    settings, store, kb = context()
    selected = set(sample_ids) if sample_ids else None
    try:
        if dry_run:
            parsed = read_manifest(path, allowed_roots=settings.ingest.allowed_roots)
            report = IngestReport(rejected=list(parsed.rejected))
            for row in parsed.rows:
                if selected is None or row.sample_id in selected:
                    try:
                        prepared = _prepare_sample(row, settings, kb)
                        report.ingested.append(row.sample_id)
                        report.warnings += [IngestWarning(str(row.path), w, row.sample_id)
                                            for w in prepared.warnings]
                    except InputError as exc:
                        report.rejected.append(RowRejection(str(row.path), exc.one_line(),
                                                            row.sample_id, row.line))
            return report
        report = ingest_manifest(path, store, settings, kb, sample_ids=selected, run_id=run_id)
    except InputError as exc:  # the manifest as a whole is unusable
        report = IngestReport(rejected=[RowRejection(path, exc.one_line())])
    if not dry_run:
        for rejection in report.rejected:
            quarantine(Path(rejection.path), rejection.error, Path(quarantine_dir),
                       root=Path(path).parent)
    return report


def file_outcome(report: IngestReport) -> str:
    """``ok`` | ``partial`` | ``rejected`` of one inbox file's ingest report."""
    if not report.rejected:
        return "ok"
    return "partial" if report.ingested or report.unchanged or report.amended else "rejected"


@task(name="prepare-store", **TASK_OPTIONS)
def prepare_store_task() -> list[str]:
    """Migrate the schema (once, under a lock) and recover interrupted deliveries.

    Returns PHI-free warnings (alert references only) for the run summary.
    """
    from pipeline.notify import recover_interrupted
    from pipeline.store.migrate import upgrade

    settings = load_settings()
    store = Store(settings.database_url, migrate=False)
    upgrade(store.engine)
    recovered = recover_interrupted(store.engine)
    return [f"ref {ref}: delivery interrupted by a crashed run; retried now with the same "
            "Message-ID" for ref in recovered]


@task(name="pending-patients", **TASK_OPTIONS)
def pending_patients_task(force_patients: list[str], run_id: str,
                          started_at: datetime | None = None) -> dict[str, Any]:
    """Patients this run evaluates (incremental, #11 item 2), after marking ``force_patients``.

    Returns ``{"patients": [...], "cohort": n, "reasons": {reason: n}, "skipped":
    {reason: n}}``: the patients in the work queue (new or amended data, therapy change,
    forced) plus those whose stored assessment is stale (never evaluated, other config,
    knowledge base or ctdna version, cadence date passed); counts only leave the flow.
    """
    from pipeline.service import evaluation_queue

    settings, store, kb = context()
    queue = evaluation_queue(store, settings, kb, run_id=run_id, started_at=started_at,
                             force=force_patients)
    return {"patients": queue.patients, "cohort": queue.cohort, "reasons": queue.reasons,
            "skipped": queue.skipped}


@task(name="mark-processed", **TASK_OPTIONS)
def mark_processed_task(entries: list[tuple[str, str, str, str]], run_id: str) -> None:
    """Record inbox files (path, kind, fingerprint, outcome) as processed at run end."""
    _settings, store, _kb = context()
    for path, kind, key, outcome in entries:
        mark_processed(store, Path(path), kind, key, outcome, run_id)


@task(name="evaluate", **TASK_OPTIONS)
def evaluate_task(patient_ids: list[str] | None) -> list[EvaluationResult]:
    settings, store, kb = context()
    return evaluate_patients(store, settings, kb, patient_ids)


@task(name="write-reports", **TASK_OPTIONS)
def write_reports_task(results: list[EvaluationResult], reports_dir: str,
                       label: str = "reports") -> dict[str, Any]:
    """Write one shard of patients' reports, only those whose content changed (#11 item 3).

    The flow deals the evaluated patients into shards (``run.workers``) written in
    parallel by its task runner; ``label`` names the shard's progress bar. Returns
    ``{"paths": {patient: path}, "reports_written": n, "reports_unchanged": n,
    "charts_drawn": n}``.
    """
    settings, store, kb = context()
    outcome = write_patient_reports_for(store, settings, kb, results, Path(reports_dir),
                                        label=label)
    counts = outcome.counts()
    counts.pop("cohort_written", None)
    return {"paths": outcome.paths, **counts}


@task(name="write-cohort-report", **TASK_OPTIONS)
def write_cohort_task(reports_dir: str, evaluated: list[str] | None = None) -> str:
    """Write the cohort page (every stored patient) into ``reports_dir``; returns its path.

    ``evaluated``: patients this run evaluated and stored (their latest stored assessment is
    current although their work-queue mark is cleared only later). The page is rewritten
    only when its content changed (#11 item 3).
    """
    settings, store, kb = context()
    folder = Path(reports_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return str(write_run_cohort_report(store, settings, kb, folder / "cohort.html",
                                       evaluated=evaluated or []))


@task(name="enqueue-alerts", **TASK_OPTIONS)
def enqueue_alerts_task(results: list[EvaluationResult], report_paths: dict[str, str]
                        ) -> dict[str, Any]:
    """Add new notifications to the ledger and clear the patients' work-queue marks.

    Returns ``{"created": messages, "alerts": rows, "warnings": [...]}``: messages are
    digests (one per patient and channel, issue #14); routing warnings are PHI-free.
    """
    from pipeline.notify import enqueue_evaluated

    settings, store, _kb = context()
    created = enqueue_evaluated(store.engine, results, settings, report_paths)
    return {"created": len(created.digests), "alerts": len(created),
            "warnings": list(created.warnings)}


@task(name="deliver-alerts", **TASK_OPTIONS)
def deliver_alerts_task(run_id: str, outbox: str | None,
                        reports_dir: str | None = None) -> dict[str, Any]:
    """Deliver every due digest once on its channel; never raises for delivery failures.

    Returns counts, dead-lettered references and warnings (no PHI). Dead letters reach the
    ops address through the run's one ops notice (:func:`ops_notice_task`). Undelivered
    alerts stay in the ledger for the next attempt (outbox pattern).
    """
    from pipeline.notify import deliver_pending, outstanding_count, transport_from_settings
    from pipeline.notify.charts import report_chart_provider
    from pipeline.service import reports_dir as report_folder

    settings, store, _kb = context()
    transport = transport_from_settings(settings, outbox=Path(outbox) if outbox else None)
    # The PNG the report step drew this run is reused, not drawn again (#11 item 3).
    charts = report_chart_provider(store, report_folder(settings, Path(reports_dir)
                                                        if reports_dir else None))
    report = deliver_pending(store.engine, settings, transport, run_id, chart_for=charts)
    return {"sent": len(report.sent), "failed": len(report.failed),
            "dead": [ref for ref, _error in report.dead], "aborted": report.aborted,
            "outstanding": outstanding_count(store.engine), "warnings": list(report.warnings)}


@task(name="escalate-unacknowledged", **TASK_OPTIONS)
def escalate_task() -> dict[str, list[str]]:
    """Escalate FAILURE alerts not acknowledged in time (issue #14 item 2); before delivery,
    so the escalation messages go out in this run. References and addresses only (no PHI).
    """
    from pipeline.service import escalate_unacknowledged

    settings, store, _kb = context()
    report = escalate_unacknowledged(store, settings)
    return {"escalations": [f"alert {ref} escalated to {address} (message ref {message})"
                            for ref, message, address in report.escalated],
            "warnings": list(report.warnings)}


@task(name="ops-notice", **TASK_OPTIONS)
def ops_notice_task(run_id: str, outbox: str | None, rejected: list[str],
                    dead_refs: list[str], routing: list[str], deferred: int,
                    notes: list[str], escalations: list[str] | None = None) -> list[str]:
    """Mail the run's one ops notice when something needs a human (issue #14 item 5).

    Parameters carry no PHI (redacted rejection reasons, references, team names); patient
    IDs are read here from the store and redacted from the mail as a second guard. Returns
    PHI-free warnings (the notice could not be sent).
    """
    from pipeline.notify import send_run_notice, transport_from_settings
    from pipeline.notify.ops import OpsNotice
    from pipeline.notify.outbox import dead_letter_errors

    settings, store, _kb = context()
    notice = OpsNotice(run_id=run_id, rejected=rejected,
                       dead_letters=dead_letter_errors(store.engine, dead_refs),
                       fallbacks=routing, escalations=list(escalations or []),
                       deferred=deferred, notes=notes)
    transport = transport_from_settings(settings, outbox=Path(outbox) if outbox else None)
    try:
        send_run_notice(settings, transport, notice, deny=store.patient_ids())
    except DeliveryError as exc:
        return [f"ops notice not sent: {exc}"]
    return []


def new_run_id() -> str:
    """ctdna's run id: the Prefect flow-run id inside a flow run (issue #12 item 3).

    The same id then names the run in the store's ledger, the run summary and the Prefect
    UI (``/runs/flow-run/<id>``). Outside a flow run (library use) a random 12-hex id.
    """
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else uuid.uuid4().hex[:12]
