"""The surveillance flow end to end under Prefect, with a real SMTP server."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.flow

DEMO_PATIENTS = ("DEMO-001", "DEMO-002", "DEMO-003", "DEMO-004")
TEAM_A = {"thoracic-oncology-a@hospital.example"}
TEAM_B = {"thoracic-oncology-b@hospital.example", "tumor-board@hospital.example"}
FALLBACK = {"molecular-lab@hospital.example"}


def _run(inbox: Path, **kwargs: Any) -> Any:
    """Run the flow; its summary (a run with problems ends Failed, carrying the summary)."""
    from flows.surveillance import summary_of, surveillance_run

    state = surveillance_run(inbox=str(inbox), return_state=True, **kwargs)
    summary = summary_of(state)
    assert state.is_failed() == bool(summary.problems()), (state.type, state.message)
    if state.is_failed():
        assert state.message == f"run {summary.run_id}: " + "; ".join(summary.problems())
    return summary


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _forbidden_subject_tokens() -> list[str]:
    return [*DEMO_PATIENTS, "D001", "D002", "D003", "D004", "ALK", "G1202R", "MET", "KRAS",
            "TP53", "alectinib", "brigatinib", "lorlatinib", "progress"]


def test_scheduled_run_end_to_end_then_nothing_new(lab_env: dict[str, Any]) -> None:
    inbox, handler = lab_env["inbox"], lab_env["handler"]
    before = _tree_digest(inbox)
    summary = _run(inbox, reports=str(lab_env["tmp"] / "reports"))
    assert summary.ingested == 13 and not summary.rejected
    assert summary.patients_evaluated == 4
    assert summary.reports_written == 4
    reports = lab_env["tmp"] / "reports"
    assert (reports / "cohort.html").is_file()
    from pipeline.service import patient_report_name

    assert {p.name for p in reports.glob("patient-*.html")} == {
        patient_report_name(p) for p in DEMO_PATIENTS}
    alerts, ops = _alert_and_ops(handler.messages)
    assert summary.emails_sent == len(alerts) > 0
    assert not summary.emails_pending
    # one digest per patient with alerts (issue #14 item 1)
    assert summary.notifications_created == len(alerts) <= len(DEMO_PATIENTS)
    # nothing needed a human (DEMO-004, without a care team, has nothing to notify)
    assert ops == []

    for recipients, message in alerts:
        subject = message["Subject"]
        for token in _forbidden_subject_tokens():
            assert token.lower() not in subject.lower(), (token, subject)
        body = message.get_payload(0).get_payload(decode=True).decode() \
            if message.is_multipart() else message.get_payload(decode=True).decode()
        patient = next(p for p in DEMO_PATIENTS if p in body)
        expected = {"DEMO-001": TEAM_A, "DEMO-003": TEAM_A, "DEMO-002": TEAM_B,
                    "DEMO-004": FALLBACK}[patient]
        assert set(recipients) == expected, (patient, recipients)

    # DEMO-001's confirmed G1202R must have produced a FAILURE notification
    bodies = "\n".join(str(m) for _r, m in alerts)
    assert "FAILURE" in bodies

    sent = len(handler.messages)
    again = _run(inbox, reports=str(lab_env["tmp"] / "reports"))
    assert again.manifests == 0 and again.already_processed == 2
    assert again.ingested == 0 and again.patients_evaluated == 0
    # incremental (#11 item 2): everyone skipped, and the summary says why
    from pipeline.service import UNCHANGED

    assert summary.evaluated_reasons == {"new or amended draws": 4}
    assert again.skipped_reasons == {UNCHANGED: 4} and again.evaluated_reasons == {}
    assert f"skipped because: {UNCHANGED} 4" in again.describe()
    assert len(handler.messages) == sent  # a second run sends nothing new
    forced = _run(inbox, force=True, reports=str(lab_env["tmp"] / "reports"))
    assert forced.unchanged == 13 and forced.patients_evaluated == 4
    assert forced.evaluated_reasons == {"forced by the operator": 4}
    assert len(handler.messages) == sent  # same findings: still nothing new
    assert _tree_digest(inbox) == before  # the lab's files were never modified


def _alert_and_ops(messages: list[Any]) -> tuple[list[Any], list[Any]]:
    """(alert digests, ops notices) among the recorded (recipients, message) pairs."""
    ops = [(r, m) for r, m in messages if "[ops]" in str(m["Subject"])]
    return [(r, m) for r, m in messages if "[ops]" not in str(m["Subject"])], ops


def test_smtp_outage_then_recovery_delivers_each_alert_once(lab_env: dict[str, Any]) -> None:
    inbox, handler = lab_env["inbox"], lab_env["handler"]
    handler.refuse = True
    first = _run(inbox)
    assert first.notifications_created > 0
    assert first.emails_pending and first.emails_sent == 0
    assert first.emails_deferred == first.notifications_created
    assert handler.messages == []
    handler.refuse = False
    second = _run(inbox)  # nothing new in the inbox, but pending alerts are delivered
    assert second.ingested == 0
    alerts, _ops = _alert_and_ops(handler.messages)
    assert second.emails_sent == first.notifications_created == len(alerts)
    third = _run(inbox)
    assert third.emails_sent == 0
    subjects = [m["Subject"] for _r, m in _alert_and_ops(handler.messages)[0]]
    assert len(subjects) == len(set(subjects))  # each alert (its ref) exactly once


def test_bad_file_is_quarantined_and_the_rest_proceeds(lab_env: dict[str, Any]) -> None:
    inbox = lab_env["inbox"]
    batch = inbox / "batch-001"
    (batch / "D004-W6.vcf").write_text("##fileformat=VCFv4.2\nthis is not a vcf\n")
    before = _tree_digest(inbox)
    summary = _run(inbox)
    assert summary.ingested == 12
    assert len(summary.rejected) == 1 and "D004-W6.vcf" in summary.rejected[0]
    # one ops email for the run (issue #14 item 5), without accession, file or patient ID
    _alerts, ops = _alert_and_ops(lab_env["handler"].messages)
    assert len(ops) == 1 and "Rejected inputs" in str(ops[0][1])
    assert not [t for t in (*DEMO_PATIENTS, "D004-W6") if t in str(ops[0][1])]
    quarantined = list(Path(summary.quarantine_dir).rglob("D004-W6.vcf*"))
    assert {p.name for p in quarantined} == {"D004-W6.vcf", "D004-W6.vcf.error.txt"}
    assert _tree_digest(inbox) == before


def test_dry_run_stores_and_sends_nothing(lab_env: dict[str, Any]) -> None:
    from pipeline.store.repository import Store

    summary = _run(lab_env["inbox"], dry_run=True)
    assert summary.dry_run and summary.ingested == 13
    assert lab_env["handler"].messages == []
    store = Store(f"sqlite:///{lab_env['tmp'] / 'store.sqlite'}")
    assert store.samples_frame().empty


@pytest.mark.postgres
def test_two_concurrent_runs_on_postgres_store_once_and_mail_once(
        lab_env: dict[str, Any], pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.store.repository import Store

    monkeypatch.setenv("CTDNA_DB_URL", pg_url)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(_run(lab_env["inbox"]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    store = Store(pg_url)
    samples = store.samples_frame()
    assert len(samples) == 13 and samples["sample_id"].is_unique
    assert store.sample_versions("D001-B")["version"].tolist() == [1]
    handler = lab_env["handler"]
    subjects = [m["Subject"] for _r, m in _alert_and_ops(handler.messages)[0]]
    assert subjects and len(subjects) == len(set(subjects))
    assert sum(r.emails_sent for r in results) == len(subjects)
