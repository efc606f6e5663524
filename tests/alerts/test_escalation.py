"""Escalation of unacknowledged FAILURE alerts (issue #14 item 2): after the configured time
per care team (clock injected), once per alert, delivered by a real SMTP server to the
team's escalation address. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from pipeline.alerts.ack import acknowledge, list_alerts
from pipeline.alerts.escalation import escalate_overdue
from pipeline.notify import SmtpTransport, deliver_pending, ledger_rows
from pipeline.store.repository import Store

from .conftest import T0
from .helpers import notify_patient, settings_for

ESCALATION = {
    "after_hours": 24,
    "address": "oncall-oncology@hospital.example",
    "teams": {"thoracic-a": {"after_hours": 4, "address": "thoracic-a-lead@hospital.example"}},
}


def _escalation_rows(engine: sa.Engine) -> list[dict]:
    return [r for r in ledger_rows(engine) if r["kind"] == "escalation"]


def test_failure_escalated_after_the_team_time_exactly_once(engine, tmp_path,
                                                            smtp_server) -> None:
    settings = settings_for(tmp_path, smtp_server.port, escalation=ESCALATION)
    notify_patient(engine, settings, T0)                                # thoracic-a: 4 h
    notify_patient(engine, settings, T0, patient_id="PT-0002", team="thoracic-b")  # 24 h
    notify_patient(engine, settings, T0, patient_id="PT-0003", team="thoracic-a",
                   tier="WARNING")                                      # never escalated
    smtp_server.handler.messages.clear()

    assert escalate_overdue(engine, settings, now=T0 + timedelta(hours=3, minutes=59)
                            ).escalated == []
    at = T0 + timedelta(hours=4)
    first = escalate_overdue(engine, settings, now=at)
    # PT-0001's FAILURE alert and FAILURE status change, to the team's escalation address.
    assert len(first.escalated) == 2
    assert {address for _a, _m, address in first.escalated} == {
        "thoracic-a-lead@hospital.example"}
    assert escalate_overdue(engine, settings, now=at + timedelta(hours=1)).escalated == []

    rows = {r["ref"]: r for r in list_alerts(engine, now=at)}
    escalated = {ref for ref, _m, _a in first.escalated}
    assert {rows[ref]["state"] for ref in escalated} == {"escalated"}
    assert all(rows[ref]["open"] and rows[ref]["patient_id"] == "PT-0001" for ref in escalated)
    assert all("thoracic-a-lead@hospital.example" in rows[ref]["escalation_note"]
               for ref in escalated)

    report = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-2",
                             now=at)
    assert len(report.sent) == 2
    received = smtp_server.handler.messages
    assert [rcpt for _f, rcpt, _m in received] == [["thoracic-a-lead@hospital.example"]] * 2
    body = received[0][2].get_body(preferencelist=("plain",)).get_content()
    assert "ESCALATION: not acknowledged within 4 h" in body
    assert "PT-0001" not in received[0][2]["Subject"]

    # thoracic-b waits 24 h (the default), to the default escalation address.
    later = escalate_overdue(engine, settings, now=T0 + timedelta(hours=24))
    assert [a for _r, _m, a in later.escalated] == ["oncall-oncology@hospital.example"] * 2
    assert escalate_overdue(engine, settings, now=T0 + timedelta(days=30)).escalated == []
    assert len(_escalation_rows(engine)) == 4


def test_acknowledged_failure_is_not_escalated(engine, tmp_path, smtp_server) -> None:
    settings = settings_for(tmp_path, smtp_server.port, escalation=ESCALATION)
    notify_patient(engine, settings, T0)
    for row in list_alerts(engine):
        acknowledge(engine, row["ref"], by="Dr. A", now=T0 + timedelta(hours=1))
    assert escalate_overdue(engine, settings, now=T0 + timedelta(days=3)).escalated == []
    assert _escalation_rows(engine) == []


def test_escalation_ref_acknowledges_the_alert(engine, tmp_path, smtp_server) -> None:
    settings = settings_for(tmp_path, smtp_server.port, escalation=ESCALATION)
    notify_patient(engine, settings, T0)
    report = escalate_overdue(engine, settings, now=T0 + timedelta(hours=5))
    alert_ref, message_ref, _address = report.escalated[0]
    result = acknowledge(engine, message_ref, by="Dr. Lead", now=T0 + timedelta(hours=6))
    assert result.ref == alert_ref and result.state["state"] == "acknowledged"
    assert all(r["kind"] != "escalation" for r in list_alerts(engine))


def test_concurrent_escalation_runs_escalate_once(db_url, tmp_path, smtp_server) -> None:
    store = Store(db_url)
    try:
        settings = settings_for(tmp_path, smtp_server.port, escalation=ESCALATION)
        notify_patient(store.engine, settings, T0)
        engines = [Store(db_url).engine for _ in range(4)]
        results: list[int] = []
        barrier = threading.Barrier(len(engines))

        def run(engine: sa.Engine) -> None:
            barrier.wait()
            results.append(len(escalate_overdue(engine, settings,
                                                now=T0 + timedelta(hours=5)).escalated))

        threads = [threading.Thread(target=run, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for engine in engines:
            engine.dispose()
        assert sum(results) == 2
        assert len(_escalation_rows(store.engine)) == 2
        events = [r for r in list_alerts(store.engine) if r["escalated_at"] is not None]
        assert len(events) == 2
    finally:
        store.dispose()


def test_disabled_or_unusable_address(engine, tmp_path, smtp_server) -> None:
    off = settings_for(tmp_path, smtp_server.port, escalation={"enabled": False})
    notify_patient(engine, off, T0)
    assert escalate_overdue(engine, off, now=T0 + timedelta(days=9)).escalated == []
    bad = settings_for(tmp_path, smtp_server.port, allowed_domains=["hospital.example"],
                       fallback_address="lab-fallback@hospital.example",
                       escalation={"address": "oncall@elsewhere.example", "after_hours": 1})
    report = escalate_overdue(engine, bad, now=T0 + timedelta(hours=2))
    assert {a for _r, _m, a in report.escalated} == {"lab-fallback@hospital.example"}
    assert report.warnings == ["escalation address 'oncall@elsewhere.example' of care team "
                               "'thoracic-a' skipped (domain not allowed); escalated to the "
                               "fallback address"]


def test_link_of_the_escalation_message_acknowledges_the_alert(engine, tmp_path, smtp_server,
                                                                ack_server_factory) -> None:
    import urllib.parse
    import urllib.request

    from pipeline.alerts.signing import ack_link

    from .helpers import ACK_BASE

    settings = settings_for(tmp_path, smtp_server.port, escalation=ESCALATION)
    notify_patient(engine, settings, T0)
    alert_ref, message_ref, address = escalate_overdue(
        engine, settings, now=T0 + timedelta(hours=5)).escalated[0]
    server = ack_server_factory(engine, settings)
    link = ack_link(message_ref, address, settings, now=T0 + timedelta(hours=5)) or ""
    data = urllib.parse.urlencode({"name": "Dr. Lead"}).encode()
    url = server.url + "/ack/" + link[len(ACK_BASE) + 1:]
    with urllib.request.urlopen(url, data=data, timeout=10) as response:
        assert response.status == 200 and alert_ref in response.read().decode()
    state = {r["ref"]: r for r in list_alerts(engine)}[alert_ref]
    assert (state["state"], state["acknowledged_by"]) == ("acknowledged", "Dr. Lead")
