"""One digest per patient per run (issue #14 item 1), against a real SMTP server."""

from __future__ import annotations

from pipeline.notify import SmtpTransport, deliver_pending, enqueue_for_assessment, ledger_rows

from .helpers import add_patients, assessment, resistance_alert, smtp_settings, subject_tokens


def _body(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_all_new_alerts_of_a_patient_in_one_message_highest_tier_first(engine, tmp_path,
                                                                       smtp_server):
    add_patients(engine, ("PT-0001", "thoracic-a"))
    settings = smtp_settings(tmp_path, smtp_server.port)
    warn = resistance_alert("S-102", tier="WARNING", rule_id="P4", gene="KRAS",
                            alteration="G12C")
    fail = resistance_alert("S-101", "S-102", rule_id="R1")
    fail2 = resistance_alert("S-102", rule_id="R3", gene="MET", alteration="amplification")
    a = assessment(alerts=[warn, fail, fail2]).model_copy(
        update={"headline": "FAILURE (early-switch review): test headline"})
    enqueue_for_assessment(engine, a, None, "thoracic-a", settings)
    report = deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-1")
    assert len(report.sent) == 1
    (_sender, _rcpts, msg), = smtp_server.handler.messages
    subject = msg["Subject"]
    assert subject == f"[ctDNA surveillance] FAILURE: result requires review – ref {report.sent[0]}"
    assert not [t for t in subject_tokens(a) if t.lower() in subject.lower()]
    body = _body(msg)
    # the headline first, then the FAILURE alerts, then the WARNING one
    head = body.index("Summary: FAILURE (early-switch review): test headline")
    r1, r3, p4 = (body.index(f"== {rule} (") for rule in ("R1", "R3", "P4"))
    assert head < r1 < r3 < p4
    assert "This message covers 3 alerts, highest tier first." in body
    refs = [r["ref"] for r in ledger_rows(engine)]
    assert sorted(msg["X-Ctdna-Items"].split(", ")) == sorted(refs) and len(refs) == 4
    assert all(f"ref {ref}" in body for ref in refs)  # every alert keeps its own reference
    html = msg.get_body(("html",)).get_content()
    assert html.index("test headline") < html.index("R1 (FAILURE)") < html.index("P4 (WARNING)")


def test_next_run_sends_only_what_is_new(engine, tmp_path, smtp_server):
    add_patients(engine, ("PT-0001", "thoracic-a"), ("PT-0002", "thoracic-b"))
    settings = smtp_settings(tmp_path, smtp_server.port)
    transport = SmtpTransport(settings.notify.smtp)
    first = assessment(alerts=[resistance_alert("S-101")])
    enqueue_for_assessment(engine, first, None, "thoracic-a", settings)
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)
    assert len(deliver_pending(engine, settings, transport, "run-1").sent) == 2
    old_refs = {r["ref"] for r in ledger_rows(engine)}

    # next run: the same R1 alert again (already notified) plus a new P4 alert
    new = resistance_alert("S-103", tier="WARNING", rule_id="P4", gene="KRAS",
                           alteration="G12C")
    second = assessment(alerts=[resistance_alert("S-101"), new])
    enqueue_for_assessment(engine, second, None, "thoracic-a", settings)
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)
    report = deliver_pending(engine, settings, transport, "run-2")
    assert len(report.sent) == 1  # PT-0002 unchanged: nothing; PT-0001: one digest
    msg = smtp_server.handler.messages[-1][2]
    body = _body(msg)
    assert "== P4 (WARNING)" in body and "== R1" not in body  # no repeat of a notified alert
    assert msg["Subject"].startswith("[ctDNA surveillance] WARNING: ")
    assert not set(msg["X-Ctdna-Items"].split(", ")) & old_refs
    assert deliver_pending(engine, settings, transport, "run-3").sent == []
    assert len(smtp_server.handler.messages) == 3


def test_status_change_shows_earlier_alerts_once_marked_as_such(engine, tmp_path, smtp_server):
    add_patients(engine, ("PT-0001", "thoracic-a"))
    settings = smtp_settings(tmp_path, smtp_server.port)
    transport = SmtpTransport(settings.notify.smtp)
    warn = resistance_alert("S-101", tier="WARNING", rule_id="P3")
    enqueue_for_assessment(engine, assessment(status="WARNING", alerts=[warn]), None,
                           "thoracic-a", settings)
    deliver_pending(engine, settings, transport, "run-1")
    # the same finding now drives FAILURE: the alert key is unchanged (not re-notified as
    # news), the status change is, and shows the driving alert once, marked "earlier"
    fail = resistance_alert("S-101", tier="FAILURE", rule_id="P3")
    enqueue_for_assessment(engine, assessment(status="FAILURE", alerts=[fail]), None,
                           "thoracic-a", settings)
    assert len(deliver_pending(engine, settings, transport, "run-2").sent) == 1
    body = _body(smtp_server.handler.messages[-1][2])
    assert body.count("== P3 (FAILURE)") == 1
    assert "Notified earlier; repeated here because the status changed." in body
    assert "previously notified: warning" in body


def test_enqueue_items_sends_through_the_same_outbox_to_given_targets(engine, tmp_path,
                                                                      smtp_server):
    """The API an escalation uses: explicit recipients, email only, exactly once."""
    from pipeline.notify import enqueue_items
    from pipeline.notify.message import notification_content, report_location

    add_patients(engine, ("PT-0001", "thoracic-a"))
    settings = smtp_settings(tmp_path, smtp_server.port)
    a = assessment()
    item = {"item_key": "e" * 64, "kind": "alert", "rule_id": "R1", "tier": "FAILURE",
            "content": notification_content(a, kind="alert", tier="FAILURE",
                                            alert=a.alerts[0],
                                            report=report_location(settings, a.patient_id))}
    with engine.begin() as conn:
        created = enqueue_items(conn, "PT-0001", [item], "thoracic-a", settings,
                                channels=["email"],
                                targets=("escalation@hospital.example", "not an address"))
    assert len(created) == 1 and len(created.digests) == 1
    assert any("not an address" in w for w in created.warnings)
    with engine.begin() as conn:
        assert list(enqueue_items(conn, "PT-0001", [item], "thoracic-a", settings,
                                  channels=["email"], targets=("x@hospital.example",))) == []
    transport = SmtpTransport(settings.notify.smtp)
    assert len(deliver_pending(engine, settings, transport, "run-1").sent) == 1
    assert deliver_pending(engine, settings, transport, "run-2").sent == []
    (_sender, rcpts, _msg), = smtp_server.handler.messages
    assert rcpts == ["escalation@hospital.example"]
