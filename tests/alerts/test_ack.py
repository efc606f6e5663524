"""Alert state and acknowledgement by ``ctdna ack`` (issue #14 item 2), SQLite and PostgreSQL.

Real store, real SMTP server (aiosmtpd on 127.0.0.1), the real ``ctdna`` command in a
subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline.alerts.ack import acknowledge, list_alerts
from pipeline.errors import InputError, NotFoundError
from pipeline.store import alerts as sql
from pipeline.store.models import alert_events

from .conftest import T0
from .helpers import notify_patient, settings_for

CTDNA = [sys.executable, "-m", "pipeline.cli"]


def ctdna(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CTDNA_DB_URL": db, "CTDNA_PROGRESS": "none"}
    env.pop("CTDNA_DEBUG", None)
    return subprocess.run([*CTDNA, *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _by_ref(engine: sa.Engine) -> dict[str, dict]:
    return {r["ref"]: r for r in list_alerts(engine, now=T0 + timedelta(hours=3))}


def test_states_follow_the_ledger_and_the_events(engine, tmp_path, smtp_server) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    report = notify_patient(engine, settings, T0)
    # Two ledger rows (an alert and a status change): one message each, or one digest.
    assert report.sent and smtp_server.handler.messages
    rows = _by_ref(engine)
    assert {r["kind"] for r in rows.values()} == {"alert", "status"}
    assert {r["state"] for r in rows.values()} == {"sent"}
    assert all(r["open"] and r["age_hours"] == 3.0 and r["care_team"] == "thoracic-a"
               for r in rows.values())
    alert_ref = next(ref for ref, r in rows.items() if r["kind"] == "alert")

    result = acknowledge(engine, alert_ref.lower(), by="Dr. A. Example",
                         note="repeat draw booked", now=T0 + timedelta(hours=1))
    assert result.ref == alert_ref and result.already is None
    state = result.state
    assert (state["state"], state["acknowledged_by"], state["acknowledgement_note"]) == (
        "acknowledged", "Dr. A. Example", "repeat draw booked")
    assert state["acknowledged_at"] == T0 + timedelta(hours=1)

    # A second clinician: recorded (append-only), the state keeps the first acknowledgement.
    again = acknowledge(engine, alert_ref, by="Dr. B", now=T0 + timedelta(hours=2))
    assert again.already is not None and again.state["acknowledged_by"] == "Dr. A. Example"
    closed = acknowledge(engine, alert_ref, by="Dr. B", close=True, now=T0 + timedelta(hours=2))
    assert closed.state["state"] == "closed" and closed.state["closed_by"] == "Dr. B"
    with engine.connect() as conn:
        events = [r.event for r in conn.execute(sa.select(alert_events.c.event)
                                                .order_by(alert_events.c.id))]
        counts = sql.open_alert_counts(conn)
    assert events == ["acknowledged", "acknowledged", "acknowledged", "closed"]
    assert counts == {"PT-0001": 1}  # the status change is still open

    open_rows = list_alerts(engine, open_only=True)
    assert [r["kind"] for r in open_rows] == ["status"]


def test_bad_input_is_refused_without_storing(engine, tmp_path, smtp_server) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    notify_patient(engine, settings, T0)
    with pytest.raises(NotFoundError, match="not an alert reference"):
        acknowledge(engine, "PT-0001", by="x")
    with pytest.raises(NotFoundError, match="unknown alert 0000-0000"):
        acknowledge(engine, "0000-0000", by="x")
    ref = next(iter(_by_ref(engine)))
    with pytest.raises(InputError, match="who acknowledges"):
        acknowledge(engine, ref, by="   ")
    with pytest.raises(InputError, match="longer than 2000"):
        acknowledge(engine, ref, by="x", note="n" * 2001)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_events)).scalar() == 0


def test_ctdna_ack_and_alerts_commands(engine, db_url, tmp_path, smtp_server) -> None:
    settings = settings_for(tmp_path, smtp_server.port)
    notify_patient(engine, settings, T0)
    listed = ctdna("alerts", "--json", db=db_url)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert len(data) == 2 and {d["state"] for d in data} == {"sent"}
    assert set(data[0]) == {"ref", "patient_id", "care_team", "kind", "rule_id", "tier",
                            "state", "open", "ledger_state", "created_at", "age_hours",
                            "sent_at", "delivered_at", "acknowledged_at", "acknowledged_by",
                            "acknowledgement_note", "escalated_at", "escalation_note",
                            "closed_at", "closed_by"}
    ref = next(d["ref"] for d in data if d["kind"] == "alert")

    done = ctdna("ack", ref, "--by", "Dr. A. Example", "--note", "seen", db=db_url)
    assert done.returncode == 0, done.stderr
    assert f"alert {ref} acknowledged: acknowledged by Dr. A. Example" in done.stdout

    plain = ctdna("alerts", "--open", "--patient", "PT-0001", db=db_url)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert lines[0].split("\t") == ["ref", "state", "tier", "rule", "age", "team",
                                    "patient_id", "acknowledged"]
    assert len(lines) == 2 and ref not in plain.stdout and "\tstatus\t" in lines[1]

    for bad in ("NOPE", "0000-0000"):
        refused = ctdna("ack", bad, "--by", "x", db=db_url)
        assert refused.returncode == 2 and refused.stdout == ""
        assert len(refused.stderr.strip().splitlines()) == 1
        assert refused.stderr.startswith("ctdna: error: field ALERT_ID: ")
    unknown_patient = ctdna("alerts", "--patient", "PT-9999", db=db_url)
    assert unknown_patient.returncode == 2 and "unknown patient" in unknown_patient.stderr
