"""Outbox delivery semantics against a real faulty SMTP sink (issue #10 item 2)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.notify import (
    SmtpTransport,
    deliver_pending,
    enqueue_for_assessment,
    ledger_rows,
    outstanding_count,
    recover_interrupted,
)
from pipeline.notify.ledger import DEAD, FAILED, PENDING, SENDING, SENT
from pipeline.store.models import alert_notifications
from tests.faults.smtp_sink import FaultyHandler, FaultySink

from .helpers import add_patients, assessment, smtp_settings


def _setup(engine: sa.Engine, tmp_path: Path, sink: FaultySink, **notify: object):
    settings = smtp_settings(tmp_path, sink.port, **notify)
    add_patients(engine, ("PT-0001", "thoracic-a"))
    enqueue_for_assessment(engine, assessment(patient_id="PT-0001"), None, "thoracic-a",
                           settings)
    return settings, SmtpTransport(settings.notify.smtp)


def _states(engine: sa.Engine) -> list[str]:
    return sorted(r["state"] for r in ledger_rows(engine))


def _messages(engine: sa.Engine) -> int:
    """Number of digests (messages) in the ledger; rows of one digest move together."""
    return len({r["digest_ref"] for r in ledger_rows(engine)})


def test_message_id_is_fixed_at_enqueue(engine, tmp_path, sink) -> None:
    settings, transport = _setup(engine, tmp_path, sink)
    ids = {r["ref"]: r["message_id"] for r in ledger_rows(engine)}
    assert ids and all(mid and mid.startswith("<") and mid.endswith("@lab.example>")
                       for mid in ids.values())
    deliver_pending(engine, settings, transport, "run-1")
    assert {ref: mids for ref, mids in sink.by_ref().items()} == {
        ref: {mid} for ref, mid in ids.items()}


@pytest.mark.parametrize("fault", ["store-then-500", "store-then-drop"])
def test_relay_that_stores_then_fails_gets_one_resend_with_the_same_message_id(
        engine, tmp_path, sink, fault) -> None:
    settings, transport = _setup(engine, tmp_path, sink, retry_backoff_minutes=[0])
    rows, n = len(ledger_rows(engine)), _messages(engine)
    sink.handler.script = [fault] * n
    first = deliver_pending(engine, settings, transport, "run-1")
    assert first.sent == [] and first.dead == [] and first.failed
    runs = 1
    while outstanding_count(engine) and runs < 2 * n + 2:  # a drop stops the run (relay down)
        deliver_pending(engine, settings, transport, f"run-{runs}")
        runs += 1
    assert _states(engine) == [SENT] * rows
    stored = sink.by_ref()
    assert len(stored) == rows and all(len(mids) == 1 for mids in stored.values())
    assert len(sink.handler.stored) == 2 * n  # each stored twice, under one Message-ID


def test_permanent_554_goes_to_the_dead_letter_and_is_not_retried(engine, tmp_path,
                                                                   sink) -> None:
    settings, transport = _setup(engine, tmp_path, sink, retry_backoff_minutes=[0])
    rows, n = len(ledger_rows(engine)), _messages(engine)
    sink.handler.default = "554"
    report = deliver_pending(engine, settings, transport, "run-1")
    assert len(report.dead) == n and report.failed == [] and report.sent == []
    assert "554" in report.dead[0][1] and "DEAD LETTER" in report.ops_summary()
    assert _states(engine) == [DEAD] * rows and outstanding_count(engine) == 0
    sink.handler.default = "ok"
    assert deliver_pending(engine, settings, transport, "run-2").sent == []
    assert sink.handler.stored == []


def test_transient_failures_are_bounded_then_dead_lettered(engine, tmp_path, sink) -> None:
    settings, transport = _setup(engine, tmp_path, sink, retry_backoff_minutes=[0],
                                 max_attempts=3)
    rows, n = len(ledger_rows(engine)), _messages(engine)
    sink.handler.default = "451"
    for run in range(2):
        report = deliver_pending(engine, settings, transport, f"run-{run}")
        assert len(report.failed) == n and report.dead == []
    report = deliver_pending(engine, settings, transport, "run-last")
    assert len(report.dead) == n
    assert {r["attempts"] for r in ledger_rows(engine)} == {3}
    assert _states(engine) == [DEAD] * rows


def test_backoff_defers_a_failed_row_until_due(engine, tmp_path, sink) -> None:
    settings, transport = _setup(engine, tmp_path, sink, retry_backoff_minutes=[30])
    t0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    sink.handler.script = ["451"] * 10
    deliver_pending(engine, settings, transport, "run-1", now=t0)
    rows = ledger_rows(engine)
    due = {r["next_attempt_at"].replace(tzinfo=UTC) if r["next_attempt_at"].tzinfo is None
           else r["next_attempt_at"] for r in rows}
    assert due == {t0 + timedelta(minutes=30)}
    sink.handler.script = []
    assert deliver_pending(engine, settings, transport, "run-2",
                           now=t0 + timedelta(minutes=29)).sent == []
    assert len(deliver_pending(engine, settings, transport, "run-3",
                               now=t0 + timedelta(minutes=31)).sent) == _messages(engine)


def test_connection_refused_leaves_everything_outstanding(engine, tmp_path, sink) -> None:
    settings, transport = _setup(engine, tmp_path, sink)
    add_patients(engine, ("PT-0002", "thoracic-b"))
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)
    n = _messages(engine)
    assert n == 2
    sink.refuse()
    report = deliver_pending(engine, settings, transport, "run-1")
    assert report.aborted and len(report.failed) == 1 and report.deferred == n - 1
    assert outstanding_count(engine) == n


def test_sending_row_of_a_dead_process_is_recovered_at_once(engine, tmp_path, sink) -> None:
    settings, transport = _setup(engine, tmp_path, sink)
    add_patients(engine, ("PT-0002", "thoracic-b"))
    enqueue_for_assessment(engine, assessment(patient_id="PT-0002"), None, "thoracic-b",
                           settings)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    with engine.begin() as conn:
        conn.execute(sa.update(alert_notifications).values(
            state=SENDING, claimed_by=f"run-x@{socket.gethostname()}:{dead.pid}",
            claimed_at=datetime.now(UTC)))
    alive_claim = f"run-y@{socket.gethostname()}:{__import__('os').getpid()}"
    first_digest = ledger_rows(engine)[0]["digest_ref"]
    with engine.begin() as conn:
        conn.execute(sa.update(alert_notifications)
                     .where(alert_notifications.c.digest_ref == first_digest)
                     .values(claimed_by=alive_claim))
    recovered = recover_interrupted(engine)
    n = _messages(engine)
    assert len(recovered) == n - 1  # the live claimer keeps its digest
    states = {r["claimed_by"]: r["state"] for r in ledger_rows(engine)}
    assert states[alive_claim] == SENDING
    # after the lease even a live claimer's row is recovered
    later = datetime.now(UTC) + timedelta(hours=1)
    assert len(recover_interrupted(engine, later)) == 1
    assert set(_states(engine)) == {FAILED}
    assert len(deliver_pending(engine, settings, transport, "run-2").sent) == n
    assert set(_states(engine)) == {SENT}
    assert PENDING not in _states(engine)


def test_faulty_handler_script_order() -> None:
    handler = FaultyHandler(script=["451", "ok"], default="554")
    assert [handler._next() for _ in range(3)] == ["451", "ok", "554"]
