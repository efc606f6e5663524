"""Channels as plugins (issue #14 item 3): routing per team and tier, the ledger keyed by
(alert, channel), and webhook delivery exactly once against a real HTTP receiver on
127.0.0.1 (and a real SMTP server for the email channel alongside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.notify import SmtpTransport, deliver_pending, enqueue_for_assessment, ledger_rows
from pipeline.notify.ledger import DEAD, SENT

from .helpers import add_patients, assessment, resistance_alert, smtp_settings, subject_tokens
from .webhook_receiver import WebhookReceiver


def _settings(tmp_path: Path, smtp_port: int, url: str, **notify: object):
    return smtp_settings(
        tmp_path, smtp_port,
        channels={"thoracic-chat": {"type": "webhook", "url": url, "timeout_seconds": 5}},
        routes=[{"channel": "email"},
                {"channel": "thoracic-chat", "care_teams": ["thoracic-a"],
                 "tiers": ["FAILURE"]}],
        **notify)


@pytest.fixture
def patients(engine):
    add_patients(engine, ("PT-0001", "thoracic-a"), ("PT-0002", "thoracic-b"))


def _enqueue_both(engine, settings):
    enqueue_for_assessment(engine, assessment(patient_id="PT-0001"), None, "thoracic-a",
                           settings)
    # thoracic-b has no webhook route: email only
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)


def test_routes_per_team_and_tier_key_the_ledger_by_alert_and_channel(
        engine, tmp_path, smtp_server, webhook, patients):
    settings = _settings(tmp_path, smtp_server.port, webhook.url)
    warn = resistance_alert("S-102", tier="WARNING", rule_id="P4", gene="KRAS",
                            alteration="G12C")
    a = assessment(patient_id="PT-0001", alerts=[resistance_alert("S-101"), warn])
    created = enqueue_for_assessment(engine, a, None, "thoracic-a", settings)
    rows = ledger_rows(engine)
    by_channel = {}
    for r in rows:
        by_channel.setdefault(r["channel"], []).append((r["kind"], r["tier"]))
    # email carries everything; the webhook only the FAILURE tier (status + R1)
    assert sorted(by_channel["email"]) == [("alert", "FAILURE"), ("alert", "WARNING"),
                                           ("status", "FAILURE")]
    assert sorted(by_channel["thoracic-chat"]) == [("alert", "FAILURE"), ("status", "FAILURE")]
    assert len(created.digests) == 2  # one digest per channel for this patient
    # one item identity, two ledger keys: (alert, email) and (alert, webhook)
    fail = [r for r in rows if r["rule_id"] == "R1"]
    assert len({r["item_key"] for r in fail}) == 1 and len({r["alert_key"] for r in fail}) == 2
    assert {tuple(r["recipients"]) for r in rows if r["channel"] == "thoracic-chat"} == {()}
    # the same evaluation again: nothing new on any channel
    assert list(enqueue_for_assessment(engine, a, None, "thoracic-a", settings)) == []


def test_webhook_delivered_exactly_once_with_phi_free_json(engine, tmp_path, smtp_server,
                                                          webhook, patients):
    settings = _settings(tmp_path, smtp_server.port, webhook.url)
    _enqueue_both(engine, settings)
    transport = SmtpTransport(settings.notify.smtp)
    report = deliver_pending(engine, settings, transport, "run-1")
    assert len(report.sent) == 3 and report.failed == []  # 2 email digests + 1 webhook
    assert len(smtp_server.handler.messages) == 2
    assert len(webhook.received) == 1
    hook = webhook.received[0]
    rows = [r for r in ledger_rows(engine) if r["channel"] == "thoracic-chat"]
    assert {r["state"] for r in rows} == {SENT} and {r["transport"] for r in rows} == {"webhook"}
    assert {r["receipt"] for r in rows} == {"HTTP 200"}
    assert hook.headers["Idempotency-Key"] == rows[0]["message_id"]
    body = hook.body
    assert body["ctdna"]["ref"] == rows[0]["digest_ref"] == hook.headers["X-Ctdna-Ref"]
    assert body["ctdna"]["tier"] == "FAILURE"
    assert {a["ref"] for a in body["ctdna"]["alerts"]} <= {r["ref"] for r in rows}
    assert body["ctdna"]["status"]["status"] == "FAILURE"
    # the report URL is dropped when it carries the patient ID (ctdna's own report names
    # are patient-<hash>.html; this test's reports are named after the raw ID)
    assert body["ctdna"]["report_url"] is None
    assert body["text"].startswith("**[ctDNA surveillance] FAILURE: result requires review")
    # no patient identifier, draw, gene or drug anywhere in what left for the chat channel
    raw = str(body)
    assert "PT-0001" not in raw and "patient_id" not in body["ctdna"]
    assert "S-101" not in raw and "alectinib" not in raw
    assert "ALK" not in raw and "G1202R" not in raw  # no titles/headline by default
    # later runs send nothing again, on either channel
    assert deliver_pending(engine, settings, transport, "run-2").sent == []
    assert len(webhook.received) == 1 and len(smtp_server.handler.messages) == 2


def test_receiver_that_fails_then_recovers_gets_it_once_more_same_key(
        engine, tmp_path, smtp_server, webhook, patients):
    settings = _settings(tmp_path, smtp_server.port, webhook.url, retry_backoff_minutes=[0])
    _enqueue_both(engine, settings)
    transport = SmtpTransport(settings.notify.smtp)
    webhook.script = [503]
    first = deliver_pending(engine, settings, transport, "run-1")
    assert len(first.sent) == 2 and len(first.failed) == 1  # emails went, webhook 503
    assert "HTTP 503" in first.failed[0][1] and not first.aborted
    second = deliver_pending(engine, settings, transport, "run-2")
    assert len(second.sent) == 1 and second.failed == []
    third = deliver_pending(engine, settings, transport, "run-3")
    assert third.sent == []
    keys = [r.headers["Idempotency-Key"] for r in webhook.received]
    assert len(keys) == 2 and len(set(keys)) == 1  # the retry is recognisably the same
    assert len(webhook.accepted()) == 1
    assert {r["state"] for r in ledger_rows(engine)} == {SENT}


def test_receiver_down_defers_the_webhook_and_email_carries_on(engine, tmp_path, smtp_server,
                                                               patients):
    down = WebhookReceiver().start()
    url = down.url
    down.stop()  # nothing listens on that port: connection refused
    settings = _settings(tmp_path, smtp_server.port, url, retry_backoff_minutes=[0])
    _enqueue_both(engine, settings)
    report = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-1")
    assert report.aborted and len(report.failed) == 1 and len(report.sent) == 2
    assert "webhook thoracic-chat" in report.failed[0][1] and url not in report.ops_summary()
    hook_rows = [r for r in ledger_rows(engine) if r["channel"] == "thoracic-chat"]
    assert {r["state"] for r in hook_rows} == {"failed"}
    receiver = WebhookReceiver()
    receiver.start()
    try:
        settings = _settings(tmp_path, smtp_server.port, receiver.url,
                             retry_backoff_minutes=[0])
        again = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-2")
        assert len(again.sent) == 1 and len(receiver.accepted()) == 1
    finally:
        receiver.stop()


def test_gone_endpoint_is_a_dead_letter(engine, tmp_path, smtp_server, webhook, patients):
    settings = _settings(tmp_path, smtp_server.port, webhook.url)
    _enqueue_both(engine, settings)
    webhook.default = 404
    report = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-1")
    assert len(report.dead) == 1 and "HTTP 404" in report.dead[0][1]
    assert {r["state"] for r in ledger_rows(engine) if r["channel"] == "thoracic-chat"} == {DEAD}


def test_email_subject_of_a_routed_digest_is_phi_free(engine, tmp_path, smtp_server, webhook,
                                                      patients):
    settings = _settings(tmp_path, smtp_server.port, webhook.url)
    a = assessment(patient_id="PT-0001")
    enqueue_for_assessment(engine, a, None, "thoracic-a", settings)
    deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-1")
    subject = smtp_server.handler.messages[0][2]["Subject"]
    assert subject.startswith("[ctDNA surveillance] FAILURE: ")
    assert not [t for t in subject_tokens(a) if t.lower() in subject.lower()]


@pytest.mark.parametrize(("channels", "routes", "field"), [
    ({"chat": {"type": "webhook", "url": "https://x.example/h", "colour": "red"}}, None,
     "notify"),
    ({"chat": {"type": "pager", "url": "https://x.example/h"}}, None, "notify"),
    ({"chat": {"type": "webhook"}}, None, "notify"),
    ({}, [{"channel": "chat"}], "notify"),
    ({}, [{"channel": "email", "care_teams": ["nope"]}], ""),
    ({}, [{"channel": "email", "tiers": ["CRITICAL"]}], "notify.routes"),
    ({"email": {"type": "webhook", "url": "https://x.example/h"}}, None, "notify"),
])
def test_channel_and_route_config_is_validated(tmp_path, channels, routes, field):
    notify = {"channels": channels}
    if routes is not None:
        notify["routes"] = routes
    with pytest.raises(ConfigError) as info:
        smtp_settings(tmp_path, 25, **notify)
    assert field in (info.value.field or "")


def test_webhook_url_from_environment(tmp_path, monkeypatch, webhook):
    from pipeline.notify import channels_from_settings

    settings = smtp_settings(tmp_path, 25, channels={
        "chat": {"type": "webhook", "url_env": "CTDNA_TEST_HOOK"}})
    channel = channels_from_settings(settings)["chat"]
    monkeypatch.delenv("CTDNA_TEST_HOOK", raising=False)
    with pytest.raises(ConfigError, match="CTDNA_TEST_HOOK"):
        channel.url()  # type: ignore[attr-defined]
    monkeypatch.setenv("CTDNA_TEST_HOOK", webhook.url)
    assert channel.url() == webhook.url  # type: ignore[attr-defined]


def test_summary_and_patient_id_only_when_configured(engine, tmp_path, smtp_server, webhook,
                                                    patients):
    settings = smtp_settings(
        tmp_path, smtp_server.port,
        channels={"chat": {"type": "webhook", "url": webhook.url, "include_summary": True,
                           "include_patient_id": True}},
        routes=[{"channel": "chat"}])
    a = assessment(patient_id="PT-0001").model_copy(update={"headline": "FAILURE: ALK G1202R"})
    enqueue_for_assessment(engine, a, None, "thoracic-a", settings,
                           report_location=str(tmp_path / "patient-0123abcd.html"))
    deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-1")
    assert smtp_server.handler.messages == []  # routes: the chat only
    body = webhook.received[0].body
    assert body["ctdna"]["headline"] == "FAILURE: ALK G1202R" and "G1202R" in body["text"]
    assert body["ctdna"]["alerts"][0]["title"] == "Known ALK resistance mutation detected"
    assert body["ctdna"]["patient_id"] == "PT-0001"
    assert body["ctdna"]["report_url"] == "https://lis.example/ctdna/patient-0123abcd.html"
