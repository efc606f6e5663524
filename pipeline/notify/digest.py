"""The digest: everything new about one patient for one channel in one run, as one message.

Issue #14 item 1: a run that finds three alerts and a status change for a patient sends one
message, not four. The ledger keeps one row per (alert, channel) (what was notified, with
its own reference for acknowledgement); rows enqueued together for one patient and channel
share a ``digest_ref`` and a Message-ID, and are delivered as one :class:`Digest`.

Order inside a digest: highest tier first; within a tier the status change (it carries the
assessment headline) before the alerts, then by rule. The digest's reference is that of its
lead row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TIER_RANK = {"FAILURE": 3, "WARNING": 2, "INFO": 1}


@dataclass(frozen=True)
class DigestItem:
    """One notified alert or status change inside a digest.

    Attributes
    ----------
    ref
        The row's own random reference (acknowledgement quotes it).
    kind
        ``alert`` or ``status``.
    tier
        ``INFO``, ``WARNING`` or ``FAILURE``.
    content
        The JSON snapshot frozen at enqueue (:func:`pipeline.notify.message.notification_content`).
    """

    ref: str
    kind: str
    tier: str
    content: dict[str, Any]


@dataclass(frozen=True)
class Digest:
    """One message of the outbox.

    Attributes
    ----------
    ref
        The message's reference (subject line, ``X-Ctdna-Ref``): the lead item's ref.
    message_id
        Fixed at enqueue; identical on every re-send (and the webhook idempotency key).
    channel
        Configured channel name.
    patient_id
        Pseudonymous patient ID (body only; never in a subject).
    items
        Highest tier first (see the module docstring).
    generated_at
        Time stamp printed in the body (UTC).
    chart_png
        Optional inline trend chart (email only).
    """

    ref: str
    message_id: str
    channel: str
    patient_id: str
    items: tuple[DigestItem, ...]
    generated_at: datetime
    chart_png: bytes | None = None

    @property
    def tier(self) -> str:
        """The highest tier of the digest."""
        return max((i.tier for i in self.items), key=lambda t: TIER_RANK.get(t, 0))

    @property
    def item_refs(self) -> list[str]:
        return [i.ref for i in self.items]

    @property
    def lead(self) -> dict[str, Any]:
        """Content of the lead item (assessment-level fields: headline, therapy, report)."""
        return self.items[0].content


def item_order(tier: str, kind: str, rule_id: str | None) -> tuple[int, int, str]:
    """Sort key: highest tier first, the status change first within a tier, then rule."""
    return (-TIER_RANK.get(tier, 0), 0 if kind == "status" else 1, rule_id or "")


def _content(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)


def digest_from_rows(rows: list[Any], *, message_id: str | None = None,
                     chart_png: bytes | None = None, now: datetime | None = None) -> Digest:
    """The digest of ledger rows that share one ``digest_ref`` (or a single older row).

    Parameters
    ----------
    rows
        Rows (SQLAlchemy rows or objects with the same attributes) of
        ``alert_notifications`` of one digest.
    message_id
        The digest's Message-ID when the rows do not carry one yet.
    chart_png
        Optional trend chart.
    now
        Generation time stamp (UTC); default now.
    """
    ordered = sorted(rows, key=lambda r: (*item_order(r.tier, r.kind, r.rule_id), r.id))
    lead = ordered[0]
    return Digest(
        ref=str(lead.digest_ref or lead.ref),
        message_id=str(message_id or lead.message_id or ""),
        channel=str(lead.channel or "email"),
        patient_id=str(lead.patient_id),
        items=tuple(DigestItem(ref=str(r.ref), kind=str(r.kind), tier=str(r.tier),
                               content=_content(r.content)) for r in ordered),
        generated_at=(now or datetime.now(UTC)).astimezone(UTC),
        chart_png=chart_png,
    )
