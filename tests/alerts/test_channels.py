"""One alert, one state, whatever the channels (issue #14 items 2 and 3): the ledger holds a
row per (alert, channel); ``ctdna alerts`` lists each alert once and the reference of any of
its rows acknowledges it."""

from __future__ import annotations

from datetime import timedelta

from pipeline.alerts.ack import acknowledge, list_alerts
from pipeline.alerts.escalation import escalate_overdue
from pipeline.notify import enqueue_for_assessment, ledger_rows
from tests.notify.helpers import add_patients, assessment, resistance_alert

from .conftest import T0
from .helpers import settings_for


def test_alert_on_two_channels_is_one_alert(engine, tmp_path, smtp_server) -> None:
    settings = settings_for(
        tmp_path, smtp_server.port,
        channels={"teams": {"type": "webhook", "url": "http://127.0.0.1:9/hook"}},
        routes=[{"channel": "email"}, {"channel": "teams", "tiers": ["FAILURE"]}],
        escalation={"after_hours": 4, "address": "oncall@hospital.example"})
    add_patients(engine, ("PT-0001", "thoracic-a"))
    enqueue_for_assessment(engine, assessment(alerts=[resistance_alert("S-101")]), None,
                           "thoracic-a", settings, now=T0)
    rows = ledger_rows(engine)
    assert sorted(r["channel"] for r in rows) == ["email", "email", "teams", "teams"]
    alerts = list_alerts(engine)
    assert len(alerts) == 2 and {a["ref"] for a in alerts} <= {
        r["ref"] for r in rows if r["channel"] == "email"}
    webhook_alert = next(r for r in rows if r["channel"] == "teams" and r["kind"] == "alert")
    result = acknowledge(engine, webhook_alert["ref"], by="Dr. W", now=T0)
    email_alert = next(r for r in rows if r["channel"] == "email" and r["kind"] == "alert")
    assert result.ref == email_alert["ref"] and result.state["state"] == "acknowledged"
    # Only the unacknowledged status change is escalated, once (not once per channel).
    report = escalate_overdue(engine, settings, now=T0 + timedelta(hours=5))
    assert [ref for ref, _m, _a in report.escalated] == [
        next(r["ref"] for r in rows if r["channel"] == "email" and r["kind"] == "status")]
    assert [r["channel"] for r in ledger_rows(engine) if r["kind"] == "escalation"] == [
        "email"]
