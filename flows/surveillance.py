"""The surveillance flow: inbox → validate → ingest → evaluate → reports → notify.

The same flow serves the cron schedule, manual re-runs (``ctdna run``, ``prefect
deployment run 'surveillance-run/manual'``) and the demo. Parameters carry no patient
data beyond pseudonymous sample accessions for targeted re-runs, and no credentials.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.run_lock import one_run_at_a_time
from flows.run_report import publish_run_artifacts, redact_rejection, surveillance_run_name
from flows.tasks import (
    deliver_alerts_task,
    enqueue_alerts_task,
    evaluate_task,
    ingest_manifest_task,
    ingest_therapies_task,
    new_run_id,
    scan_inbox_task,
    write_reports_task,
)
from pipeline.config import load_settings
from pipeline.ingest import IngestReport


class RunSummary(BaseModel):
    """What one run did (counts and locations only: safe to log and to show in Prefect)."""

    run_id: str
    dry_run: bool = False
    manifests: int = 0
    therapy_files: int = 0
    already_processed: int = 0
    ingested: int = 0
    amended: int = 0
    unchanged: int = 0
    rejected: list[str] = Field(default_factory=list)
    # the same rejections without sample accession or file name (Prefect artifacts, #12)
    rejected_reasons: list[str] = Field(default_factory=list)
    patients_evaluated: int = 0
    reports_written: int = 0
    notifications_created: int = 0
    emails_sent: int = 0
    emails_pending: bool = False
    reports_dir: str | None = None
    outbox: str | None = None
    quarantine_dir: str | None = None

    def describe(self) -> str:
        lines = [
            f"run {self.run_id}{' (dry run: nothing stored or sent)' if self.dry_run else ''}: "
            f"{self.manifests} manifest(s), {self.therapy_files} therapy file(s) new; "
            f"{self.already_processed} already processed",
            f"samples: {self.ingested} ingested, {self.amended} amended, {self.unchanged} "
            f"unchanged, {len(self.rejected)} rejected",
        ]
        lines += [f"  rejected: {error}" for error in self.rejected]
        if not self.dry_run:
            lines.append(f"patients evaluated: {self.patients_evaluated}; reports written: "
                         f"{self.reports_written} in {self.reports_dir}")
            lines.append(f"alert notifications: {self.notifications_created} new, "
                         f"{self.emails_sent} sent"
                         + ("; some still pending (will be retried)" if self.emails_pending
                            else "")
                         + (f"; .eml files in {self.outbox}" if self.outbox else ""))
            if self.rejected:
                lines.append(f"bad inputs copied to {self.quarantine_dir} (originals untouched)")
        return "\n".join(lines)


def _notify_ops_of_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure hook: tell the lab's operations address (no patient data in the message)."""
    from pipeline.notify import send_ops_message, transport_from_settings

    settings = load_settings()
    send_ops_message(
        settings, transport_from_settings(settings),
        "surveillance run failed",
        f"The ctdna surveillance flow run {flow_run.name} ({flow_run.id}) ended in state "
        f"{state.type.value}: {state.message}. Check the Prefect UI and the worker log.",
    )


@flow(name="surveillance-run", flow_run_name=surveillance_run_name, log_prints=False,
      on_failure=[_notify_ops_of_failure], on_crashed=[_notify_ops_of_failure])
def surveillance_run(
    inbox: str,
    outbox: str | None = None,
    reports: str | None = None,
    sample_ids: list[str] | None = None,
    force: bool = False,
    dry_run: bool = False,
    notify: bool = True,
) -> RunSummary:
    """One surveillance run over the lab's inbox.

    Parameters
    ----------
    inbox
        Folder the lab delivers manifests, variant files and therapy histories into.
    outbox
        Folder for ``.eml`` files when no SMTP host is configured.
    reports
        Folder for the HTML reports (default: ``paths.reports`` of the config).
    sample_ids
        Only these sample accessions (manual re-runs).
    force
        Process every inbox file even if already processed, and re-evaluate its patients.
    dry_run
        Validate and read everything, store and send nothing.
    notify
        Send alert emails (False for back-fills).
    """
    with one_run_at_a_time():
        return _surveillance(inbox, outbox, reports, sample_ids, force, dry_run, notify)


def _surveillance(inbox: str, outbox: str | None, reports: str | None,
                  sample_ids: list[str] | None, force: bool, dry_run: bool,
                  notify: bool) -> RunSummary:
    logger = get_run_logger()
    settings = load_settings()
    run_id = new_run_id()
    quarantine_dir = str(Path(settings.paths.quarantine).resolve())
    summary = RunSummary(run_id=run_id, dry_run=dry_run, quarantine_dir=quarantine_dir)
    scan = scan_inbox_task(inbox, force, dry_run)
    summary.manifests, summary.therapy_files = len(scan.manifests), len(scan.therapies)
    summary.already_processed = scan.already_processed
    logger.info("inbox: %d manifest(s), %d therapy file(s) new; %d already processed",
                len(scan.manifests), len(scan.therapies), scan.already_processed)

    total = IngestReport()
    # therapy histories first: evaluation needs the lines of therapy
    for path in scan.therapies:
        total.merge(ingest_therapies_task(str(path), scan.fingerprints[str(path)], run_id,
                                          dry_run, quarantine_dir))
    futures = [
        ingest_manifest_task.submit(str(path), scan.fingerprints[str(path)], run_id, dry_run,
                                    sample_ids, quarantine_dir)
        for path in scan.manifests
    ]
    for future in futures:
        total.merge(future.result())
    summary.ingested, summary.amended = len(total.ingested), len(total.amended)
    summary.unchanged = len(total.unchanged)
    summary.rejected = [r.error for r in total.rejected]
    summary.rejected_reasons = [redact_rejection(r.error, r.path, r.sample_id)
                                for r in total.rejected]
    logger.info("samples: %d ingested, %d amended, %d unchanged, %d rejected",
                summary.ingested, summary.amended, summary.unchanged, len(summary.rejected))
    if dry_run:
        publish_run_artifacts(summary)
        return summary

    patients = sorted(total.patients)
    if force:
        patients = sorted(set(patients) | _patients_of(scan))
    if patients:
        _evaluate_report_enqueue(patients, reports, settings, summary)
    else:
        logger.info("no patient data changed; nothing to evaluate")
    if notify:
        # Always: alerts left pending by an earlier SMTP outage are delivered now (outbox).
        _deliver(run_id, outbox, summary)
    if not _smtp_configured(settings):
        summary.outbox = str(Path(outbox or settings.notify.outbox).resolve())
    logger.info("run %s: %d patient(s) evaluated, %d notification(s) created, %d sent",
                run_id, summary.patients_evaluated, summary.notifications_created,
                summary.emails_sent)
    publish_run_artifacts(summary)
    return summary


def _evaluate_report_enqueue(patients: list[str], reports: str | None, settings: Any,
                             summary: RunSummary) -> None:
    """Evaluate the patients, write their reports, and add new alerts to the ledger."""
    results = evaluate_task(patients)
    summary.patients_evaluated = len(results)
    reports_dir = str(Path(reports or settings.paths.reports).resolve())
    summary.reports_dir = reports_dir
    report_paths = write_reports_task(results, reports_dir)
    summary.reports_written = len(report_paths)
    summary.notifications_created = enqueue_alerts_task(
        results, _report_locations(settings.notify.report_base_url, report_paths))


def _deliver(run_id: str, outbox: str | None, summary: RunSummary) -> None:
    notify = load_settings().notify
    delivery = deliver_alerts_task.with_options(
        retries=notify.delivery_retries,
        retry_delay_seconds=notify.delivery_retry_delays_seconds or 0,
    )
    state = delivery(run_id, outbox, return_state=True)
    if state.is_completed():
        summary.emails_sent = state.result()["sent"]
    else:
        summary.emails_pending = True
        get_run_logger().warning("alert delivery incomplete; pending alerts stay in the ledger")


def _smtp_configured(settings: Any) -> bool:
    return bool(settings.notify.smtp.host)


def _patients_of(scan: Any) -> set[str]:
    from pipeline.io.manifest import read_manifest

    patients: set[str] = set()
    for path in scan.manifests:
        try:
            patients |= {row.patient_id for row in read_manifest(path).rows}
        except Exception:
            continue
    return patients


def _report_locations(base_url: str | None, report_paths: dict[str, str]) -> dict[str, str]:
    """Where the care team opens each report: under the configured URL, else the file path."""
    if not base_url:
        return report_paths
    base = base_url if base_url.endswith("/") else base_url + "/"
    return {pid: base + Path(path).name for pid, path in report_paths.items()}


@contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is not None:
                os.environ[key] = value
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_surveillance_locally(*, inbox: Path, outbox: Path | None = None,
                             reports: Path | None = None, force: bool = False,
                             dry_run: bool = False, db_url: str | None = None,
                             config_file: Path | None = None,
                             sample_ids: list[str] | None = None) -> RunSummary:
    """Run the flow in this process (``ctdna run``): same code as the scheduled deployment.

    The database URL and config path travel through the environment, not flow parameters,
    so they are never stored in Prefect's database.
    """
    from pipeline.errors import InputError

    if not inbox.is_dir():
        raise InputError("inbox folder does not exist", path=inbox, field="--inbox")
    load_settings(config_file)  # validate the config before starting Prefect
    from flows.local_server import local_prefect

    config = str(config_file) if config_file else None
    with _environment(CTDNA_DB_URL=db_url, CTDNA_CONFIG=config), local_prefect():
        return surveillance_run(
            inbox=str(inbox.resolve()), outbox=str(outbox.resolve()) if outbox else None,
            reports=str(reports.resolve()) if reports else None, force=force,
            dry_run=dry_run, sample_ids=sample_ids,
        )
