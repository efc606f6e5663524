"""The run's ops email (issue #14 item 5): once, only when needed, PHI-free; real SMTP."""

from __future__ import annotations

from pipeline.notify import SmtpTransport, deliver_pending, enqueue_for_assessment
from pipeline.notify.ops import OpsNotice, send_run_notice
from pipeline.notify.outbox import dead_letter_errors
from tests.faults.smtp_sink import FaultySink

from .helpers import OPS, add_patients, assessment, smtp_settings


def test_nothing_to_report_sends_nothing(tmp_path, smtp_server):
    settings = smtp_settings(tmp_path, smtp_server.port)
    notice = OpsNotice(run_id="run-1", deferred=3)  # deferrals retry by themselves
    assert send_run_notice(settings, SmtpTransport(settings.notify.smtp), notice) is None
    assert smtp_server.handler.messages == []


def test_one_phi_free_ops_email_with_every_problem_of_the_run(engine, tmp_path, sink: FaultySink):
    settings = smtp_settings(tmp_path, sink.port)
    transport = SmtpTransport(settings.notify.smtp)
    add_patients(engine, ("PT-0001", "thoracic-a"), ("PT-0009", None))
    enqueue_for_assessment(engine, assessment(patient_id="PT-0001"), None, "thoracic-a",
                           settings)
    routed = enqueue_for_assessment(engine, assessment(patient_id="PT-0009"), None, "gone",
                                    settings)
    sink.handler.script = ["554"]  # the first digest is rejected for good
    report = deliver_pending(engine, settings, transport, "run-7")
    assert len(report.dead) == 1 and len(report.sent) == 1
    notice = OpsNotice(
        run_id="run-7",
        rejected=["input rejected: unparseable date '2025-13-01' (expected YYYY-MM-DD)"],
        dead_letters=dead_letter_errors(engine, [ref for ref, _ in report.dead]),
        fallbacks=routed.warnings,
        escalations=["ref ABCD-EFGH: FAILURE not acknowledged after 24 h"],
        # a careless caller's note with a patient ID: redacted by the deny-list
        notes=["recovered delivery of PT-0001"],
    )
    sent = send_run_notice(settings, transport, notice, deny=["PT-0001", "PT-0009"])
    assert sent is not None
    ops = sink.ops_messages()
    assert len(ops) == 1
    msg = ops[0]
    assert msg["To"] == OPS and "[ops] run run-7: 1 rejected input(s), 1 dead letter(s), " \
        "1 escalation(s), 1 routing fall-back(s)" in msg["Subject"]
    body = msg.get_content()
    for section in ("Rejected inputs", "Dead-lettered notifications", "Escalations",
                    "Routing fall-backs"):
        assert section in body
    assert f"ref {report.dead[0][0]}: SMTP" in body and "554" in body
    assert "care team 'gone' is not configured" in body
    assert "PT-0001" not in str(msg) and "PT-0009" not in str(msg)
    assert "recovered delivery of [redacted]" in body
