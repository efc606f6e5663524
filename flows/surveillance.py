"""The surveillance flow: inbox → validate → ingest → evaluate → reports → notify.

The same flow serves the cron schedule, manual re-runs (``ctdna run``, ``prefect
deployment run 'surveillance-run/manual'``) and the demo. Parameters carry no patient
data beyond pseudonymous sample accessions for targeted re-runs, and no credentials.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.run_lock import one_run_at_a_time
from flows.run_report import (
    publish_run_artifacts,
    redact_rejection,
    skipped_patients,
    surveillance_run_name,
    tier_changes,
)
from flows.runners import shards, task_runner_for
from flows.tasks import (
    deliver_alerts_task,
    enqueue_alerts_task,
    escalate_task,
    evaluate_task,
    file_outcome,
    ingest_manifest_task,
    ingest_therapies_task,
    mark_processed_task,
    new_run_id,
    ops_notice_task,
    pending_patients_task,
    prepare_store_task,
    scan_inbox_task,
    write_cohort_task,
    write_reports_task,
)
from pipeline.config import load_settings
from pipeline.faults import fault_point
from pipeline.ingest import IngestReport
from pipeline.store.repository import now_utc


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
    #: PHI-free warnings: tolerated input defects (#10), routing fall-backs, refused
    #: recipients, recovered deliveries.
    warnings: list[str] = Field(default_factory=list)
    patients_evaluated: int = 0
    #: Stored patients not evaluated by this run, and why (reason -> count; #11 item 2).
    patients_skipped: int = 0
    skipped_reasons: dict[str, int] = Field(default_factory=dict)
    #: Why the evaluated patients were evaluated (reason -> count; incremental runs, #11).
    evaluated_reasons: dict[str, int] = Field(default_factory=dict)
    #: Status transitions of the evaluated patients, ``FROM->TO`` -> count (no IDs; #12).
    tier_changes: dict[str, int] = Field(default_factory=dict)
    reports_written: int = 0
    #: Reports of evaluated patients left as they were: same content (#11 item 3).
    reports_unchanged: int = 0
    #: Messages (digests: one per patient and channel) created by this run (issue #14).
    notifications_created: int = 0
    emails_sent: int = 0
    emails_pending: bool = False
    #: Notifications still owed after this run (pending, failed with backoff, sending).
    emails_deferred: int = 0
    #: Notifications moved to the dead letter by this run (never retried; ops told).
    emails_dead_lettered: int = 0
    dead_letter_refs: list[str] = Field(default_factory=list)
    #: Routing fall-backs of this run (team names only): part of the ops notice (#14 item 5).
    routing_warnings: list[str] = Field(default_factory=list)
    #: FAILURE alerts escalated by this run (references and addresses; issue #14 item 2).
    escalations: list[str] = Field(default_factory=list)
    reports_dir: str | None = None
    outbox: str | None = None
    quarantine_dir: str | None = None

    def problems(self) -> list[str]:
        """Why this run is not a success (PHI-free counts); empty when all went through.

        Rejected inputs, deferred and dead-lettered notifications make the flow run end
        ``Failed`` and ``ctdna run`` exit non-zero (issue #10 item 3).
        """
        out = []
        if self.rejected:
            out.append(f"{len(self.rejected)} input(s) rejected")
        if self.emails_deferred:
            out.append(f"{self.emails_deferred} notification(s) deferred")
        if self.emails_dead_lettered:
            out.append(f"{self.emails_dead_lettered} notification(s) dead-lettered")
        return out

    def describe(self) -> str:
        lines = [
            f"run {self.run_id}{' (dry run: nothing stored or sent)' if self.dry_run else ''}: "
            f"{self.manifests} manifest(s), {self.therapy_files} therapy file(s) new; "
            f"{self.already_processed} already processed",
            f"samples: {self.ingested} ingested, {self.amended} amended, {self.unchanged} "
            f"unchanged, {len(self.rejected)} rejected",
        ]
        lines += [f"  rejected: {error}" for error in self.rejected]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        if not self.dry_run:
            lines.append(f"patients evaluated: {self.patients_evaluated}, skipped: "
                         f"{self.patients_skipped}; reports written: "
                         f"{self.reports_written}, unchanged: {self.reports_unchanged} in "
                         f"{self.reports_dir}")
            if self.evaluated_reasons:
                lines.append("  evaluated because: " + "; ".join(
                    f"{reason} {n}" for reason, n in self.evaluated_reasons.items()))
            if self.skipped_reasons:
                lines.append("  skipped because: " + "; ".join(
                    f"{reason} {n}" for reason, n in self.skipped_reasons.items()))
            if self.tier_changes:
                lines.append("tier changes: " + ", ".join(
                    f"{change} {n}" for change, n in self.tier_changes.items()))
            lines.append(f"alert notifications: {self.notifications_created} new, "
                         f"{self.emails_sent} sent, {self.emails_deferred} deferred (will be "
                         f"retried), {self.emails_dead_lettered} dead-lettered"
                         + (f"; .eml files in {self.outbox}" if self.outbox else ""))
            lines += [f"  dead letter: ref {ref}" for ref in self.dead_letter_refs]
            lines += [f"  escalation: {line}" for line in self.escalations]
            if self.rejected:
                lines.append(f"bad inputs copied to {self.quarantine_dir} (originals untouched)")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _notify_ops_of_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """on_failure hook: tell the lab's operations address (no patient data in the message).

    A run that finished with problems (rejections, deferred or dead-lettered notifications)
    ends ``Failed`` carrying its summary; its ops notice already went out at the end of
    the run (issue #14 item 5: one ops email per run), so only runs that failed or crashed
    without a summary are mailed here.
    """
    from pipeline.notify import send_ops_message, transport_from_settings

    try:
        if isinstance(state.result(raise_on_failure=False), RunSummary):
            return
    except Exception:  # no readable result: the run failed before its summary; mail it
        pass
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
    with one_run_at_a_time(load_settings().schedule.exclusive_runs):
        return _surveillance(inbox, outbox, reports, sample_ids, force, dry_run, notify)


def _surveillance(inbox: str, outbox: str | None, reports: str | None,
                  sample_ids: list[str] | None, force: bool, dry_run: bool,
                  notify: bool) -> Any:
    logger = get_run_logger()
    settings = load_settings()
    run_id = new_run_id()
    started_at = now_utc()  # marks older than this belong to this run too (crash recovery)
    quarantine_dir = str(Path(settings.paths.quarantine).resolve())
    summary = RunSummary(run_id=run_id, dry_run=dry_run, quarantine_dir=quarantine_dir)
    if not dry_run:
        # Schema migrations once per run (under a lock), and deliveries a crashed run left
        # 'sending' made retryable again (issue #10 items 2 and 6).
        summary.warnings += prepare_store_task()
    scan = scan_inbox_task(inbox, force, dry_run)
    summary.manifests, summary.therapy_files = len(scan.manifests), len(scan.therapies)
    summary.already_processed = scan.already_processed
    logger.info("inbox: %d manifest(s), %d therapy file(s) new; %d already processed",
                len(scan.manifests), len(scan.therapies), scan.already_processed)

    total = IngestReport(rejected=list(scan.rejected))  # symlinks out of the inbox (#10)
    with task_runner_for(settings.run) as runner:
        processed = _ingest(runner, scan, run_id, dry_run, sample_ids, quarantine_dir, total)
        _count_ingest(summary, total)
        logger.info("samples: %d ingested, %d amended, %d unchanged, %d rejected",
                    summary.ingested, summary.amended, summary.unchanged,
                    len(summary.rejected))
        if dry_run:
            return _final(summary)
        fault_point("after_ingest")
        # The work queue, not this run's ingest report, says whom to evaluate: patients
        # stored by a run that crashed before enqueueing their alerts are evaluated now.
        queue = pending_patients_task(sorted(_patients_of(scan)) if force else [], run_id,
                                      started_at)
        if queue["patients"]:
            _evaluate_report_enqueue(queue["patients"], reports, settings, summary, runner)
        else:
            logger.info("no patient data changed; nothing to evaluate")
    summary.evaluated_reasons = dict(queue.get("reasons") or {})
    summary.skipped_reasons = skipped_patients(queue["cohort"], summary.patients_evaluated,
                                               queue.get("skipped"))
    summary.patients_skipped = sum(summary.skipped_reasons.values())
    if notify:
        # Unacknowledged FAILURE alerts past their team's time: escalated before delivery,
        # so the escalation goes out in this run (issue #14 item 2).
        escalated = escalate_task()
        summary.escalations = escalated["escalations"]
        summary.warnings += [w for w in escalated["warnings"] if w not in summary.warnings]
        # Always: alerts left pending by an earlier SMTP outage are delivered now (outbox).
        _deliver(run_id, outbox, summary)
    fault_point("after_deliver")
    # Inbox files count as processed only now that their run has finished (item 1).
    mark_processed_task(processed, run_id)
    # One ops email per run, only when something needs a human (issue #14 item 5).
    summary.warnings += ops_notice_task(run_id, outbox, summary.rejected_reasons,
                                        summary.dead_letter_refs, summary.routing_warnings,
                                        summary.emails_deferred, [],
                                        escalations=summary.escalations)
    if not _smtp_configured(settings):
        summary.outbox = str(Path(outbox or settings.notify.outbox).resolve())
    logger.info("run %s: %d patient(s) evaluated, %d notification(s) created, %d sent, "
                "%d deferred, %d dead-lettered", run_id, summary.patients_evaluated,
                summary.notifications_created, summary.emails_sent, summary.emails_deferred,
                summary.emails_dead_lettered)
    return _final(summary)


def _ingest(runner: Any, scan: Any, run_id: str, dry_run: bool,
            sample_ids: list[str] | None, quarantine_dir: str, total: IngestReport
            ) -> list[tuple[str, str, str, str]]:
    """Ingest therapy files, then every manifest in parallel (one task per inbox file).

    Merges each file's report into ``total``; returns the (path, kind, fingerprint,
    outcome) entries to mark processed when the run has finished.
    """
    processed: list[tuple[str, str, str, str]] = []
    # therapy histories first and in order: a manifest's patients may be created by them
    for path in scan.therapies:
        report = ingest_therapies_task(str(path), scan.fingerprints[str(path)], run_id,
                                       dry_run, quarantine_dir)
        processed.append((str(path), "therapies", scan.fingerprints[str(path)],
                          file_outcome(report)))
        total.merge(report)
    futures = [
        runner.submit(ingest_manifest_task, parameters={
            "path": str(path), "fingerprint": scan.fingerprints[str(path)],
            "run_id": run_id, "dry_run": dry_run, "sample_ids": sample_ids,
            "quarantine_dir": quarantine_dir})
        for path in scan.manifests
    ]
    for path, future in zip(scan.manifests, futures, strict=True):
        report = future.result()
        processed.append((str(path), "manifest", scan.fingerprints[str(path)],
                          file_outcome(report)))
        total.merge(report)
    return processed


def _count_ingest(summary: RunSummary, total: IngestReport) -> None:
    summary.ingested, summary.amended = len(total.ingested), len(total.amended)
    summary.unchanged = len(total.unchanged)
    summary.rejected = [r.error for r in total.rejected]
    summary.rejected_reasons = [redact_rejection(r.error, r.path, r.sample_id)
                                for r in total.rejected]
    summary.warnings += [w.one_line() for w in total.warnings]


def _final(summary: RunSummary) -> Any:
    """The summary, or a ``Failed`` state carrying it when something did not go through.

    The work that could be done is done; the state makes the failure visible in Prefect
    (and fires the ops hook) with a PHI-free message of counts (issue #10 item 3).
    """
    publish_run_artifacts(summary)  # the run's page in the Prefect UI (#12 item 3)
    problems = summary.problems()
    if not problems:
        return summary
    from prefect.states import Failed

    return Failed(message=f"run {summary.run_id}: " + "; ".join(problems), data=summary)


def summary_of(state: Any) -> RunSummary:
    """The :class:`RunSummary` of a finished flow run state (Completed or Failed).

    Raises
    ------
    Exception
        The flow's own exception when it crashed without a summary.
    """
    result = state.result(raise_on_failure=False)
    if isinstance(result, RunSummary):
        return result
    if isinstance(result, BaseException):
        raise result
    raise RuntimeError(f"flow run ended {state.type.value} without a summary")


def _evaluate_report_enqueue(patients: list[str], reports: str | None, settings: Any,
                             summary: RunSummary, runner: Any = None) -> None:
    """Evaluate the patients, write their reports, and add new alerts to the ledger.

    Reports are written per patient shard (``run.workers`` shards) in parallel through
    ``runner`` (the run's task runner; None: one shard in this thread), then the cohort page.
    """
    results = evaluate_task(patients)
    summary.patients_evaluated = len(results)
    summary.tier_changes = tier_changes(
        (r.previous_status, r.assessment.status) for r in results)
    fault_point("after_evaluate")
    reports_dir = str(Path(reports or settings.paths.reports).resolve())
    summary.reports_dir = reports_dir
    reports_step = _write_reports(results, reports_dir, settings.run.workers, runner)
    report_paths = reports_step["paths"]
    # only reports whose content changed are rewritten (#11 item 3)
    summary.reports_written = reports_step["reports_written"]
    summary.reports_unchanged = reports_step["reports_unchanged"]
    fault_point("after_reports")
    enqueued = enqueue_alerts_task(
        results, _report_locations(settings.notify.report_base_url, report_paths))
    summary.notifications_created += enqueued["created"]
    summary.warnings += [w for w in enqueued["warnings"] if w not in summary.warnings]
    summary.routing_warnings += [w for w in enqueued["warnings"]
                                 if w not in summary.routing_warnings]
    fault_point("after_enqueue")


def _write_reports(results: list[Any], reports_dir: str, workers: int, runner: Any
                   ) -> dict[str, Any]:
    """Reports of the evaluated patients (sharded), then the cohort page; merged counts."""
    parts = shards(results, workers if runner is not None else 1)
    if runner is None:
        steps = [write_reports_task(results, reports_dir)]
    else:
        futures = [runner.submit(write_reports_task, parameters={
            "results": part, "reports_dir": reports_dir,
            "label": "reports" if len(parts) == 1 else f"reports {i + 1}/{len(parts)}"})
            for i, part in enumerate(parts)]
        steps = [future.result() for future in futures]
    merged: dict[str, Any] = {"paths": {}, "reports_written": 0, "reports_unchanged": 0,
                              "charts_drawn": 0}
    for step in steps:
        merged["paths"].update(step["paths"])
        for key in ("reports_written", "reports_unchanged", "charts_drawn"):
            merged[key] += step[key]
    write_cohort_task(reports_dir, [r.assessment.patient_id for r in results])
    return merged


def _deliver(run_id: str, outbox: str | None, summary: RunSummary) -> None:
    """Deliver, retrying within the run (``notify.delivery_retries``) while failures remain.

    Each attempt sends only rows that are due (backoff); what is still owed afterwards is
    ``emails_deferred`` and stays in the ledger for the next run.
    """
    notify = load_settings().notify
    delays = notify.delivery_retry_delays_seconds or [0.0]
    for attempt in range(notify.delivery_retries + 1):
        result = deliver_alerts_task(run_id, outbox, summary.reports_dir)
        summary.emails_sent += result["sent"]
        summary.dead_letter_refs += result["dead"]
        summary.warnings += [w for w in result["warnings"] if w not in summary.warnings]
        summary.emails_deferred = result["outstanding"]
        if not (result["failed"] or result["aborted"]) or attempt == notify.delivery_retries:
            break
        time.sleep(delays[min(attempt, len(delays) - 1)])
    summary.emails_dead_lettered = len(summary.dead_letter_refs)
    summary.emails_pending = summary.emails_deferred > 0
    if summary.emails_deferred or summary.emails_dead_lettered:
        get_run_logger().warning(
            "alert delivery incomplete: %d deferred (stay in the ledger), %d dead-lettered",
            summary.emails_deferred, summary.emails_dead_lettered)


def _smtp_configured(settings: Any) -> bool:
    from pipeline.notify.secrets import smtp_configured

    return smtp_configured(settings.notify.smtp)


def _patients_of(scan: Any) -> set[str]:
    from pipeline.io.manifest import read_manifest

    patients: set[str] = set()
    for path in scan.manifests:
        try:
            patients |= {row.patient_id for row in read_manifest(
                path, allowed_roots=load_settings().ingest.allowed_roots).rows}
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

    config_env = str(config_file) if config_file else None
    with _environment(CTDNA_DB_URL=db_url, CTDNA_CONFIG=config_env), local_prefect():
        state = surveillance_run(
            inbox=str(inbox.resolve()), outbox=str(outbox.resolve()) if outbox else None,
            reports=str(reports.resolve()) if reports else None, force=force,
            dry_run=dry_run, sample_ids=sample_ids, return_state=True,
        )
    return summary_of(state)
