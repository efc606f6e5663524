"""Escalation of unacknowledged FAILURE alerts (issue #14 item 2).

A FAILURE alert ("early-switch review by a clinician is advised") that nobody has
acknowledged within ``notify.escalation`` hours of being sent (or of being raised, when it
could not be sent) is escalated once: a message to the care team's escalation address is
enqueued in the alert ledger (delivered like any alert, by the run's delivery step) and an
``escalated`` event is recorded, in one transaction.

Exactly once: the ledger item is keyed by ``escalation:<alert ref>`` (unique), so of two
runs escalating the same alert concurrently only one creates the row and records the event;
the other finds the key taken and does nothing. An escalated alert stays open until someone
acknowledges it (the escalation message's own reference acknowledges the alert too).

The clock is injected (``now``) so tests and re-runs are deterministic.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from pipeline.config import Settings
from pipeline.notify.ledger import enqueue_items
from pipeline.notify.routing import address_problem
from pipeline.store import alerts as sql

KIND = "escalation"


@dataclass
class EscalationReport:
    """What one :func:`escalate_overdue` call did (PHI-free: references and teams only).

    Attributes
    ----------
    escalated
        (alert ref, escalation message ref, address) of each alert escalated now.
    warnings
        Problems for the ops summary (an unusable escalation address, fallback used).
    """

    escalated: list[tuple[str, str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """One line per escalation, then the warnings."""
        lines = [f"alert {ref} escalated to {address} (message ref {message})"
                 for ref, message, address in self.escalated]
        return lines + self.warnings


def _address(settings: Settings, care_team: str | None, configured: str | None,
             warnings: list[str]) -> str:
    """The escalation address, or the fallback address with a warning when unusable."""
    fallback = settings.notify.fallback_address
    if not configured:
        return fallback
    problem = address_problem(configured, settings.notify.allowed_domains)
    if problem is None:
        return configured.strip()
    warning = (f"escalation address {configured!r} of care team {care_team!r} skipped "
               f"({problem}); escalated to the fallback address")
    if warning not in warnings:
        warnings.append(warning)
    return fallback


def escalation_key(alert_ref: str) -> str:
    """The ledger identity of an alert's escalation: one per alert, ever."""
    return hashlib.sha256(f"escalation:{alert_ref}".encode()).hexdigest()


def escalation_content(row: dict[str, Any], hours: float, address: str) -> dict[str, Any]:
    """The ledger ``content`` of the escalation message: the alert's own snapshot, headed by
    why it is escalated (rendered by the normal alert template: the headline leads)."""
    content = copy.deepcopy(row["content"]) if isinstance(row["content"], dict) else {}
    start = row["sent_at"] or row["created_at"]
    sent = "sent" if row["sent_at"] else "raised (never delivered)"
    why = (f"ESCALATION: not acknowledged within {hours:g} h. This {row['tier']} alert "
           f"(ref {row['ref']}) was {sent} to care team {row['care_team'] or '(none)'} on "
           f"{start:%Y-%m-%d %H:%M} UTC and nobody has acknowledged it.")
    headline = content.get("headline")
    content["headline"] = f"{why} {headline}" if headline else why
    content["escalation"] = {
        "alert_ref": row["ref"], "after_hours": hours, "since": start.isoformat(),
        "care_team": row["care_team"], "to": address,
        "original_recipients": list(row["recipients"] or []),
    }
    return content


def escalate_overdue(engine: Engine, settings: Settings, *,
                     now: datetime | None = None) -> EscalationReport:
    """Escalate every FAILURE alert overdue for acknowledgement, once each.

    Parameters
    ----------
    engine
        The store's engine.
    settings
        ``notify.escalation`` (hours and address per care team), ``notify.fallback_address``
        and ``notify.allowed_domains`` are read.
    now
        The clock (UTC); default now. Injected by tests.

    Returns
    -------
    EscalationReport
    """
    report = EscalationReport()
    rules = settings.notify.escalation
    if not rules.enabled:
        return report
    at = (now or datetime.now(UTC)).astimezone(UTC)
    shortest = min([rules.after_hours] + [t.after_hours for t in rules.teams.values()
                                          if t.after_hours])
    with engine.connect() as conn:
        candidates = sql.escalation_candidates(conn, at - timedelta(hours=shortest))
    for row in candidates:
        hours, configured = rules.rule_for(row["care_team"])
        start = row["sent_at"] or row["created_at"]
        if start > at - timedelta(hours=hours):
            continue  # this team allows longer
        address = _address(settings, row["care_team"], configured, report.warnings)
        item = {"item_key": escalation_key(row["ref"]), "kind": KIND,
                "rule_id": row["rule_id"], "tier": row["tier"],
                "content": escalation_content(row, hours, address)}
        with engine.begin() as conn:
            created = enqueue_items(conn, row["patient_id"], [item], row["care_team"],
                                    settings, assessment_id=row["assessment_id"],
                                    channels=["email"], targets=(address,), now=at)
            if not created.digests:
                continue  # another run escalated it first
            message_ref = created.digests[0]
            sql.record_event(conn, row["ref"], sql.ESCALATED, at=at, via="run",
                             note=f"escalated to {address} after {hours:g} h "
                                  f"(message ref {message_ref})",
                             detail={"message_ref": message_ref, "to": address,
                                     "after_hours": hours})
        report.escalated.append((row["ref"], message_ref, address))
    return report
