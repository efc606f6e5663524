"""Helpers of the notification tests (imported by conftest and the test modules)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from aiosmtpd.controller import Controller

from pipeline.assessment import Alert, Assessment, Finding, Therapy, TherapyOption
from pipeline.config import Settings, load_settings
from pipeline.store.models import patients

TEAMS = {
    "thoracic-a": ["thoracic-a@hospital.example", "onc-nurse-a@hospital.example"],
    "thoracic-b": ["thoracic-b@hospital.example"],
}
FALLBACK = "lab-fallback@lab.example"
OPS = "lab-ops@lab.example"


def add_patients(engine: sa.Engine, *rows: tuple[str, str | None]) -> None:
    """Insert ``(patient_id, care_team)`` rows into the real ``patients`` table."""
    with engine.begin() as conn:
        conn.execute(sa.insert(patients), [
            {"patient_id": pid, "care_team": team, "created_at": datetime.now(UTC)}
            for pid, team in rows
        ])


def make_settings(tmp_path: Path, **notify: Any) -> Settings:
    """Settings loaded through the real loader from a lab override YAML file."""
    config: dict[str, Any] = {
        "care_teams": TEAMS,
        "notify": {
            "mail_from": "ctdna@lab.example",
            "fallback_address": FALLBACK,
            "ops_address": OPS,
            "outbox": str(tmp_path / "outbox"),
            **notify,
        },
        "paths": {"reports": str(tmp_path / "reports")},
    }
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_settings(path, env={})


@dataclass
class Recorder:
    """aiosmtpd handler that records envelopes, or answers with a fixed failure code."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    fail_with: str | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.fail_with:
            return self.fail_with
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """A real aiosmtpd server on 127.0.0.1 that can be stopped and started again.

    An aiosmtpd ``Controller`` cannot be restarted (its event loop is closed on stop), so a
    restart builds a new controller on the same port with the same recording handler.
    """

    def __init__(self) -> None:
        self.handler = Recorder()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        try:
            controller.start()
        except BaseException:
            # aiosmtpd docs: stop() must still be called when start() failed
            controller.stop(no_assert=True)
            raise
        self.controller = controller

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop(no_assert=True)
            self.controller = None


def smtp_settings(tmp_path: Path, port: int, **notify: Any) -> Settings:
    return make_settings(
        tmp_path,
        report_base_url="https://lis.example/ctdna/",
        smtp={"host": "127.0.0.1", "port": port, "tls": "none", "timeout_seconds": 5},
        **notify,
    )


# --- assessments built directly from the pipeline.assessment models -------------------------

THERAPY = Therapy(drug="alectinib", start_date=date(2025, 2, 3), line=1)


def resistance_alert(*sample_ids: str, tier: str = "FAILURE", rule_id: str = "R1",
                     gene: str = "ALK", alteration: str = "G1202R") -> Alert:
    findings = [
        Finding(gene=gene, alteration=alteration, sample_id=sid,
                collection_date=date(2025, 6, 2 + 7 * i), vaf=0.011 + 0.002 * i,
                lod_vaf=0.005, alt_reads=22, depth=2000)
        for i, sid in enumerate(sample_ids)
    ]
    return Alert(
        rule_id=rule_id, tier=tier,  # type: ignore[arg-type]
        title="Known ALK resistance mutation detected",
        findings=findings,
        suggested_actions=["Confirm with a repeat draw in 2-4 weeks",
                           "Discuss early-switch review at the tumour board"],
        therapy_options=[
            TherapyOption(name="lorlatinib", kind="approved", reference="PMID:30413378",
                          evidence_level="A"),
            TherapyOption(name="gilteritinib combination", kind="trial",
                          reference="NCT00000000 <check>", verified=False),
        ],
        evidence=["Shaw 2019 (lorlatinib after 2G ALK TKI)"],
        evidence_strength="direct",
        unverified_knowledge=True,
        confirmed=len(sample_ids) > 1,
        draws_used=list(sample_ids),
    )


def info_alert() -> Alert:
    return Alert(rule_id="C1", tier="INFO", title="Next draw due",
                 findings=[], suggested_actions=["Schedule the next draw"], evidence=["cadence"])


def assessment(patient_id: str = "PT-0001", status: str = "FAILURE",
               alerts: list[Alert] | None = None, draws: list[str] | None = None,
               therapy: Therapy | None = THERAPY, as_of: date = date(2025, 7, 1)) -> Assessment:
    alerts = [resistance_alert("S-101")] if alerts is None else alerts
    draws = draws or sorted({f.sample_id for a in alerts for f in a.findings} | {"S-100"})
    return Assessment(
        patient_id=patient_id, as_of=as_of, therapy=therapy,
        status=status,  # type: ignore[arg-type]
        alerts=alerts, config_version="2026.11.0+abc123def456", kb_version="kb-2026.1",
        pipeline_version="0.1.0", draws_used=draws, status_reason="test status reason",
    )


def subject_tokens(a: Assessment) -> set[str]:
    """The PHI / clinical deny-list of an assessment for subject-line assertions."""
    tokens = {a.patient_id, "progression"}
    if a.therapy:
        tokens.add(a.therapy.drug)
    for alert in a.alerts:
        for f in alert.findings:
            tokens.update(x for x in (f.gene, f.alteration, f.sample_id) if x)
        tokens.update(o.name for o in alert.therapy_options)
    return tokens
