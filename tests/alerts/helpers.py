"""Helpers of the acknowledgement tests: a patient's alerts enqueued and really delivered."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from pipeline.config import Settings
from pipeline.notify import SmtpTransport, deliver_pending, enqueue_for_assessment
from pipeline.notify.ledger import DeliveryReport
from tests.notify.helpers import add_patients, assessment, resistance_alert, smtp_settings

ACK_BASE = "https://ctdna.lab.example/ack"


def settings_for(tmp_path: Path, port: int, **notify: Any) -> Settings:
    """Real settings (through the YAML loader) with SMTP on ``port`` and ack links on."""
    notify.setdefault("ack", {"base_url": ACK_BASE, "link_valid_hours": 48})
    return smtp_settings(tmp_path, port, **notify)


def notify_patient(engine: sa.Engine, settings: Settings, at: datetime, *,
                   patient_id: str = "PT-0001", team: str | None = "thoracic-a",
                   tier: str = "FAILURE", add: bool = True) -> DeliveryReport:
    """Enqueue one patient's alert + status change at ``at`` and deliver them over SMTP."""
    if add:
        add_patients(engine, (patient_id, team))
    enqueue_for_assessment(
        engine, assessment(patient_id=patient_id, status=tier,
                           alerts=[resistance_alert("S-101", tier=tier)]),
        None, team, settings, now=at)
    return deliver_pending(engine, settings, SmtpTransport(settings.notify.smtp), "run-1",
                           now=at)
