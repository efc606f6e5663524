"""Ledger tests against the real schema and a real SMTP server (aiosmtpd on 127.0.0.1).

Every test takes the ``engine`` fixture so the shared PostgreSQL fixture can parametrise it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import getaddresses
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.assessment import Therapy
from pipeline.notify.ledger import (
    FAILED,
    PENDING,
    SENDING,
    SENT,
    alert_key,
    deliver_pending,
    enqueue_for_assessment,
    ledger_rows,
    new_ref,
)
from pipeline.notify.transport import EmlOutboxTransport, SmtpTransport
from pipeline.store.models import alert_notifications

from .helpers import (
    FALLBACK,
    TEAMS,
    add_patients,
    assessment,
    info_alert,
    resistance_alert,
    smtp_settings,
    subject_tokens,
)


@pytest.fixture
def patients_ab(engine):
    add_patients(engine, ("PT-0001", "thoracic-a"), ("PT-0002", "thoracic-b"),
                 ("PT-0003", None))


def _smtp(tmp_path: Path, server, **notify):
    settings = smtp_settings(tmp_path, server.port, **notify)
    return settings, SmtpTransport(settings.notify.smtp)


def _states(engine) -> dict[str, str]:
    return {r["ref"]: r["state"] for r in ledger_rows(engine)}


def _digests(engine) -> dict[str, set[str]]:
    """Digest ref -> the states of its rows (one digest = one message)."""
    out: dict[str, set[str]] = {}
    for r in ledger_rows(engine):
        out.setdefault(r["digest_ref"], set()).add(r["state"])
    return out


def test_ref_is_random_and_well_formed():
    refs = {new_ref() for _ in range(500)}
    assert len(refs) == 500
    assert all(len(r) == 9 and r[4] == "-" and r.replace("-", "").isalnum() for r in refs)


def test_alert_key_ignores_finding_order_and_detail():
    a1 = resistance_alert("S-101", "S-102")
    a2 = resistance_alert("S-101", "S-102")
    a2.findings.reverse()
    a2.findings[0].vaf = 0.5  # the key is about what was found where, not the number
    assert alert_key("P", "R1", a1) == alert_key("P", "R1", a2)
    assert alert_key("P", "R1", a1) != alert_key("P", "R2", a1)
    assert alert_key("P", "R1", a1) != alert_key("Q", "R1", a1)
    assert alert_key("P", "R1", a1) != alert_key("P", "R1", resistance_alert("S-101"))


def test_enqueue_creates_alert_and_status_rows_once(engine, settings, patients_ab):
    a = assessment(alerts=[resistance_alert("S-101"), info_alert()])
    ids = enqueue_for_assessment(engine, a, None, "thoracic-a", settings)
    rows = ledger_rows(engine)
    assert sorted(ids) == [r["id"] for r in rows]
    # the status change (it carries the headline) leads its tier
    assert [(r["kind"], r["rule_id"], r["tier"]) for r in rows] == [
        ("status", None, "FAILURE"), ("alert", "R1", "FAILURE")]
    assert all(r["state"] == PENDING and r["attempts"] == 0 for r in rows)
    # one digest: both rows share the lead row's ref and one Message-ID, on the email channel
    assert {r["digest_ref"] for r in rows} == {rows[0]["ref"]}
    assert len({r["message_id"] for r in rows}) == 1
    assert {r["channel"] for r in rows} == {"email"}
    assert [r["alert_key"] for r in rows] == [r["item_key"] for r in rows]
    assert all(r["recipients"] == TEAMS["thoracic-a"] for r in rows)
    assert ids.warnings == []
    # identical re-evaluation: nothing new
    again = enqueue_for_assessment(engine, a, None, "thoracic-a", settings)
    assert list(again) == []
    assert len(ledger_rows(engine)) == 2


def test_info_only_and_optimal_are_not_notified(engine, settings, patients_ab):
    a = assessment(status="OPTIMAL", alerts=[info_alert()], draws=["S-100", "S-101"])
    assert list(enqueue_for_assessment(engine, a, None, "thoracic-a", settings)) == []
    na = assessment(status="NOT_EVALUABLE", alerts=[info_alert()], draws=["S-100"])
    assert list(enqueue_for_assessment(engine, na, None, "thoracic-a", settings)) == []


def test_unknown_team_routes_to_fallback_with_warning(engine, settings, patients_ab):
    ids = enqueue_for_assessment(engine, assessment(patient_id="PT-0003"), None, "nope",
                                 settings)
    assert len(ids) == 2
    assert all(r["recipients"] == [FALLBACK] for r in ledger_rows(engine))
    assert len(ids.warnings) == 1 and "'nope'" in ids.warnings[0]
    assert "PT-0003" not in ids.warnings[0]  # ops text carries no patient ID


def test_status_change_notifies_again_unchanged_does_not(engine, settings, patients_ab):
    warn = resistance_alert("S-101", tier="WARNING", rule_id="P3")
    first = assessment(status="WARNING", alerts=[warn])
    assert len(enqueue_for_assessment(engine, first, None, "thoracic-a", settings)) == 2

    # Next draw: same WARNING status with one more draw in the alert -> the alert's findings
    # changed (notified), the status did not (not notified).
    warn2 = resistance_alert("S-101", "S-102", tier="WARNING", rule_id="P3")
    second = assessment(status="WARNING", alerts=[warn2])
    created = enqueue_for_assessment(engine, second, None, "thoracic-a", settings)
    assert [r["kind"] for r in ledger_rows(engine) if r["id"] in created] == ["alert"]

    # Escalation to FAILURE with the same findings: the status change notifies.
    fail = resistance_alert("S-101", "S-102", tier="FAILURE", rule_id="P3")
    third = assessment(status="FAILURE", alerts=[fail])
    created = enqueue_for_assessment(engine, third, None, "thoracic-a", settings)
    kinds = [(r["kind"], r["tier"]) for r in ledger_rows(engine) if r["id"] in created]
    assert kinds == [("status", "FAILURE")]

    # Recovery to OPTIMAL on the same line: INFO notification, then nothing on repeat.
    ok = assessment(status="OPTIMAL", alerts=[], draws=["S-100", "S-101", "S-102", "S-103"])
    created = enqueue_for_assessment(engine, ok, None, "thoracic-a", settings)
    rows = [r for r in ledger_rows(engine) if r["id"] in created]
    assert [(r["kind"], r["tier"]) for r in rows] == [("status", "INFO")]
    assert rows[0]["content"]["previous_status"] == "FAILURE"
    assert list(enqueue_for_assessment(engine, ok, None, "thoracic-a", settings)) == []

    # WARNING again later (new draw sets it): a change, notified again.
    warn3 = resistance_alert("S-104", tier="WARNING", rule_id="P3")
    again = assessment(status="WARNING", alerts=[warn3])
    created = enqueue_for_assessment(engine, again, None, "thoracic-a", settings)
    kinds = sorted(r["kind"] for r in ledger_rows(engine) if r["id"] in created)
    assert kinds == ["alert", "status"]


def test_new_therapy_line_is_a_new_episode(engine, settings, patients_ab):
    line1 = assessment(status="FAILURE")
    enqueue_for_assessment(engine, line1, None, "thoracic-a", settings)
    line2_therapy = Therapy(drug="lorlatinib", start_date=line1.as_of, line=2)
    optimal2 = assessment(status="OPTIMAL", alerts=[], therapy=line2_therapy,
                          draws=["S-200"])
    # Not a recovery: another line started (that is the clinician's decision, not ours).
    assert list(enqueue_for_assessment(engine, optimal2, None, "thoracic-a", settings)) == []
    warn2 = assessment(status="WARNING", therapy=line2_therapy,
                       alerts=[resistance_alert("S-201", tier="WARNING", rule_id="P3")])
    created = enqueue_for_assessment(engine, warn2, None, "thoracic-a", settings)
    assert len(created) == 2


def test_enqueue_within_callers_transaction(engine, settings, patients_ab):
    with engine.begin() as conn:
        ids = enqueue_for_assessment(conn, assessment(), None, "thoracic-a", settings)
        assert len(ids) == 2
        # the same transaction sees its own rows: the status is now "already notified"
        assert list(enqueue_for_assessment(conn, assessment(), None, "thoracic-a",
                                           settings)) == []
    assert len(ledger_rows(engine)) == 2


def test_concurrent_enqueue_creates_no_duplicates(engine, settings, patients_ab):
    a = assessment(alerts=[resistance_alert("S-101"), resistance_alert("S-101", rule_id="R2")])
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            enqueue_for_assessment(engine, a, None, "thoracic-a", settings)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    keys = [r["alert_key"] for r in ledger_rows(engine)]
    assert len(keys) == 3 == len(set(keys))


def test_deliver_to_care_teams_once(engine, tmp_path, smtp_server, patients_ab):
    settings, transport = _smtp(tmp_path, smtp_server)
    a1 = assessment(patient_id="PT-0001")
    a2 = assessment(patient_id="PT-0002", alerts=[resistance_alert("S-201", gene="MET",
                                                                   alteration="amplification",
                                                                   rule_id="R3")])
    enqueue_for_assessment(engine, a1, None, "thoracic-a", settings)
    enqueue_for_assessment(engine, a2, None, "thoracic-b", settings)

    report = deliver_pending(engine, settings, transport, "run-1")
    # one digest per patient: alert + status change in one message each
    assert len(report.sent) == 2 and report.failed == []
    received = smtp_server.handler.messages
    assert len(received) == 2
    rows = {r["ref"]: r for r in ledger_rows(engine)}
    assert {r["state"] for r in rows.values()} == {SENT}
    for mail_from, rcpts, msg in received:
        ref = msg["X-Ctdna-Ref"]
        row = rows[ref]
        expected = TEAMS["thoracic-a" if row["patient_id"] == "PT-0001" else "thoracic-b"]
        assert mail_from == "ctdna@lab.example"
        assert rcpts == expected
        assert [addr for _, addr in getaddresses([msg["To"]])] == expected
        subject = msg["Subject"]
        assert subject.endswith(f"ref {ref}")
        tokens = subject_tokens(a1) | subject_tokens(a2)
        assert not [t for t in tokens if t.lower() in subject.lower()]
        body = msg.get_body(("plain",)).get_content()
        assert ref in body
        assert f"https://lis.example/ctdna/{row['patient_id']}.html" in body
        assert list(msg.iter_attachments()) == []
        assert row["state"] == SENT and row["message_id"] == msg["Message-ID"]
        assert row["transport"] == "smtp" and row["sent_at"] is not None
        items = [r["ref"] for r in rows.values() if r["digest_ref"] == ref]
        assert msg["X-Ctdna-Items"].split(", ") == items and len(items) == 2
        assert all(f"ref {item}" in body for item in items)

    # a second run sends nothing new
    again = deliver_pending(engine, settings, transport, "run-2")
    assert again.sent == [] and len(smtp_server.handler.messages) == 2
    # re-enqueueing the same assessments creates nothing
    assert list(enqueue_for_assessment(engine, a1, None, "thoracic-a", settings)) == []
    assert deliver_pending(engine, settings, transport, "run-3").sent == []
    assert len(smtp_server.handler.messages) == 2


def test_status_change_is_mailed_again(engine, tmp_path, smtp_server, patients_ab):
    settings, transport = _smtp(tmp_path, smtp_server)
    warn = assessment(status="WARNING",
                      alerts=[resistance_alert("S-101", tier="WARNING", rule_id="P3")])
    enqueue_for_assessment(engine, warn, None, "thoracic-a", settings)
    assert len(deliver_pending(engine, settings, transport, "r1").sent) == 1
    fail = assessment(status="FAILURE",
                      alerts=[resistance_alert("S-101", tier="FAILURE", rule_id="P3")])
    enqueue_for_assessment(engine, fail, None, "thoracic-a", settings)
    report = deliver_pending(engine, settings, transport, "r2")
    assert len(report.sent) == 1
    msg = smtp_server.handler.messages[-1][2]
    body = msg.get_body(("plain",)).get_content()
    assert "previously notified: warning" in body
    assert "failure (early-switch review)" in body


def test_outage_then_recovery_delivers_each_exactly_once(engine, tmp_path, smtp_server,
                                                         patients_ab):
    # no backoff: each run below retries at once (backoff is tested on its own)
    settings, transport = _smtp(tmp_path, smtp_server, retry_backoff_minutes=[0])
    enqueue_for_assessment(engine, assessment(patient_id="PT-0001"), None, "thoracic-a",
                           settings)
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)

    # 1) the relay answers 451 to every message: each attempt fails, all stay retryable
    smtp_server.handler.fail_with = "451 4.3.0 Temporary local problem"
    report = deliver_pending(engine, settings, transport, "run-451")
    assert report.sent == [] and len(report.failed) == 2 and not report.aborted
    assert "451" in report.failed[0][1]
    assert set(_states(engine).values()) == {FAILED}

    # 2) the relay is down: the first failure stops the run, the rest stay pending
    smtp_server.handler.fail_with = None
    smtp_server.stop()
    report = deliver_pending(engine, settings, transport, "run-down")
    assert report.aborted and len(report.failed) == 1 and report.deferred == 1
    assert "was unavailable" in report.ops_summary()
    rows = ledger_rows(engine)
    assert {r["state"] for r in rows} == {FAILED}
    assert sorted(r["attempts"] for r in rows) == [1, 1, 2, 2]  # a digest's rows move together
    assert all(r["last_error"] for r in rows)

    # 3) recovery: every digest delivered exactly once, then nothing more
    smtp_server.start()
    report = deliver_pending(engine, settings, transport, "run-ok")
    assert len(report.sent) == 2 and report.failed == []
    refs = [m[2]["X-Ctdna-Ref"] for m in smtp_server.handler.messages]
    assert sorted(refs) == sorted(_digests(engine))
    assert set(_states(engine).values()) == {SENT}
    assert deliver_pending(engine, settings, transport, "run-after").sent == []
    assert len(smtp_server.handler.messages) == 2


def test_two_concurrent_runs_send_each_alert_once(engine, tmp_path, smtp_server, patients_ab):
    settings, transport = _smtp(tmp_path, smtp_server)
    for i in range(6):
        pid = f"PT-10{i:02d}"
        add_patients(engine, (pid, "thoracic-a"))
        enqueue_for_assessment(engine, assessment(patient_id=pid), None, "thoracic-a", settings)
    total = len(_digests(engine))
    assert total == 6  # one digest per patient
    barrier = threading.Barrier(2)
    reports = []
    errors: list[BaseException] = []

    def run(run_id: str) -> None:
        try:
            barrier.wait()
            reports.append(deliver_pending(engine, settings, transport, run_id))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"run-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    refs = [m[2]["X-Ctdna-Ref"] for m in smtp_server.handler.messages]
    assert len(refs) == total == len(set(refs))
    assert sum(len(r.sent) for r in reports) == total
    assert set(reports[0].sent).isdisjoint(reports[1].sent)
    assert set(reports[0].sent) | set(reports[1].sent) == set(refs)
    assert set(_states(engine).values()) == {SENT}


class _InterleavingTransport:
    """A real SMTP transport that starts a second delivery run inside its first send.

    This forces the interleaving that threads only make likely: run B starts while run A
    holds a claim and has its own list of candidate rows.
    """

    name = "smtp"

    def __init__(self, inner, engine, settings):
        self.inner, self.engine, self.settings = inner, engine, settings
        self.nested = None

    def send(self, message):
        if self.nested is None:
            self.nested = deliver_pending(self.engine, self.settings, self.inner, "run-B")
        return self.inner.send(message)


def test_interleaved_runs_never_send_a_claimed_row_twice(engine, tmp_path, smtp_server,
                                                        patients_ab, monkeypatch):
    # claim one digest at a time so that run B can take the second while A sends the first
    monkeypatch.setattr("pipeline.notify.outbox.CLAIM_CHUNK", 1)
    settings, transport = _smtp(tmp_path, smtp_server)
    enqueue_for_assessment(engine, assessment(patient_id="PT-0001"), None, "thoracic-a",
                           settings)
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)
    outer = _InterleavingTransport(transport, engine, settings)
    report_a = deliver_pending(engine, settings, outer, "run-A")
    report_b = outer.nested
    assert len(report_a.sent) == 1 and report_a.skipped == 1
    # B never even sees the digest A holds; A then loses the CAS on the one B sent.
    assert len(report_b.sent) == 1 and report_b.skipped == 0
    refs = [m[2]["X-Ctdna-Ref"] for m in smtp_server.handler.messages]
    assert len(refs) == 2 == len(set(refs))
    claimed = {r["ref"]: r["claimed_by"].split("@")[0] for r in ledger_rows(engine)}
    assert sorted(claimed.values()) == ["run-A", "run-A", "run-B", "run-B"]


def test_rate_limit_defers_the_rest(engine, tmp_path, smtp_server, patients_ab):
    settings, transport = _smtp(tmp_path, smtp_server, max_emails_per_run=2)
    for pid, team in (("PT-0001", "thoracic-a"), ("PT-0002", "thoracic-b"),
                      ("PT-0003", "thoracic-a")):
        enqueue_for_assessment(engine, assessment(patient_id=pid), None, team, settings)
    first = deliver_pending(engine, settings, transport, "r1")
    assert len(first.sent) == 2 and first.deferred == 1  # counted in messages (digests)
    second = deliver_pending(engine, settings, transport, "r2")
    assert len(second.sent) == 1 and second.deferred == 0
    assert len(smtp_server.handler.messages) == 3


def test_stale_sending_row_is_reclaimed_after_lease(engine, tmp_path, patients_ab):
    settings = smtp_settings(tmp_path, 1)
    transport = EmlOutboxTransport(tmp_path / "outbox")
    enqueue_for_assessment(engine, assessment(), None, "thoracic-a", settings)
    t0 = datetime(2025, 7, 1, 6, 0, tzinfo=UTC)
    # a run that crashed after claiming: rows stuck in 'sending'
    with engine.begin() as conn:
        conn.execute(sa.update(alert_notifications).values(
            state=SENDING, claimed_by="crashed", claimed_at=t0))
    within = deliver_pending(engine, settings, transport, "r1", now=t0 + timedelta(minutes=5))
    assert within.sent == [] and within.skipped == 0
    later = deliver_pending(engine, settings, transport, "r2", now=t0 + timedelta(minutes=20))
    assert len(later.sent) == 1
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_eml_outbox_when_no_smtp_host(engine, settings, tmp_path, patients_ab):
    from pipeline.notify.transport import transport_from_settings

    transport = transport_from_settings(settings)
    assert isinstance(transport, EmlOutboxTransport)
    enqueue_for_assessment(engine, assessment(), None, "thoracic-a", settings)
    report = deliver_pending(engine, settings, transport, "r1")
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1 == len(report.sent)
    assert not list((tmp_path / "outbox").glob(".tmp-*"))
    assert {r["transport"] for r in ledger_rows(engine)} == {"eml"}
    assert {r["receipt"] for r in ledger_rows(engine)} == {str(files[0])}
    assert deliver_pending(engine, settings, transport, "r2").sent == []
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_report_location_in_body(engine, tmp_path, patients_ab):
    from .helpers import make_settings

    settings = make_settings(tmp_path)  # no report_base_url: the local path is given
    enqueue_for_assessment(engine, assessment(), None, "thoracic-a", settings,
                           report_location=str(tmp_path / "r" / "PT-0001-2025-07-01.html"))
    deliver_pending(engine, settings, EmlOutboxTransport(tmp_path / "outbox"), "r1")
    texts = [
        message_from_bytes(p.read_bytes(), policy=policy.default).get_body(("plain",)).get_content()
        for p in (tmp_path / "outbox").glob("*.eml")
    ]
    assert len(texts) == 1
    assert all("PT-0001-2025-07-01.html" in t for t in texts)
