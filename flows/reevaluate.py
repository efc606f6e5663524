"""Re-evaluation after a config or knowledge-base change (whole cohort or some patients)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.run_lock import one_run_at_a_time
from flows.surveillance import RunSummary, _deliver, _evaluate_report_enqueue
from flows.tasks import TASK_OPTIONS, context, new_run_id
from pipeline.ingest import reannotate


@task(name="reannotate", **TASK_OPTIONS)
def reannotate_task(patient_ids: list[str] | None) -> int:
    """Re-run recognition on stored observations with the current knowledge base."""
    settings, store, kb = context()
    return reannotate(store, settings, kb, patient_ids)


@task(name="select-patients", **TASK_OPTIONS)
def select_patients_task(patient_ids: list[str] | None) -> list[str]:
    _settings, store, _kb = context()
    known = store.patient_ids()
    return known if not patient_ids else [p for p in patient_ids if p in set(known)]


@flow(name="reevaluate")
def reevaluate(
    patient_ids: list[str] | None = None,
    reannotate_observations: bool = True,
    reports: str | None = None,
    outbox: str | None = None,
    notify: bool = True,
) -> RunSummary:
    """Re-annotate (optional), re-evaluate, re-report and notify what changed.

    Alerts already notified with the same findings are not sent again (ledger); a status
    that changed because of the new config or knowledge base is notified.
    """
    logger = get_run_logger()
    settings, _store, _kb = context()
    run_id = new_run_id()
    summary = RunSummary(run_id=run_id)
    # never alongside a surveillance run when the shared slot is on (#12 item 3)
    with one_run_at_a_time(settings.schedule.exclusive_runs):
        patients = select_patients_task(patient_ids)
        if reannotate_observations:
            updated = reannotate_task(patients)
            logger.info("re-annotated %d observation(s)", updated)
        _evaluate_report_enqueue(patients, reports, settings, summary)
        if notify:
            _deliver(run_id, outbox, summary)
    return summary
