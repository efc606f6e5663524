"""Acknowledging alerts: by ``ctdna ack`` and by the signed link (issue #14 item 2).

Use cases shared by the CLI and the HTTP endpoint (:mod:`pipeline.alerts.server`); SQL is in
:mod:`pipeline.store.alerts`. Every acknowledgement is an appended ``alert_events`` row:
a second acknowledgement of the same alert (another clinician) is recorded too, and the
alert's state names the first one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from pipeline.alerts.signing import LinkClaims, ack_secret, verify_token
from pipeline.config import Settings
from pipeline.errors import AckLinkError, InputError, NotFoundError
from pipeline.store import alerts as sql

#: The ledger's reference format: 8 Crockford base32 characters as ``XXXX-XXXX``.
REF_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
MAX_NAME = 256
MAX_NOTE = 2000


@dataclass(frozen=True)
class AckResult:
    """The outcome of an acknowledgement.

    Attributes
    ----------
    ref
        The alert acknowledged (an escalation message's ref resolves to its alert).
    state
        The alert's state afterwards (:func:`pipeline.store.alerts.alert_states` row).
    already
        The state row before, when the alert had already been acknowledged or closed.
    """

    ref: str
    state: dict[str, Any]
    already: dict[str, Any] | None = None


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def normalise_ref(alert_id: str) -> str:
    """``alert_id`` in the ledger's spelling (upper case, trimmed).

    Raises
    ------
    NotFoundError
        Not shaped like an alert reference (``A7F3-K92Q``).
    """
    ref = alert_id.strip().upper()
    if not REF_PATTERN.match(ref):
        raise NotFoundError(f"{alert_id!r} is not an alert reference (like A7F3-K92Q, in "
                            "the email subject and `ctdna alerts`)", field="ALERT_ID")
    return ref


def resolve_alert(conn: Any, alert_id: str) -> str:
    """The alert reference ``alert_id`` stands for (an escalation message -> its alert).

    Raises
    ------
    NotFoundError
        Malformed or not in this store.
    """
    ref = normalise_ref(alert_id)
    row = sql.ledger_row(conn, ref)
    if row is None:
        raise NotFoundError(f"unknown alert {ref} (not in this store; check --db)",
                            field="ALERT_ID")
    if row["kind"] == "escalation":
        content = row["content"] if isinstance(row["content"], dict) else {}
        original = (content.get("escalation") or {}).get("alert_ref")
        if original:
            return str(original)
    if row["kind"] not in sql.ALERT_KINDS:
        raise NotFoundError(f"{ref} is not an alert (a {row['kind']} message)",
                            field="ALERT_ID")
    # The same alert on another channel (webhook) has its own ref: one alert, one state.
    return sql.canonical_ref(conn, ref) or ref


def _clean(text: str | None, limit: int, option: str) -> str | None:
    if text is None:
        return None
    value = " ".join(text.split())
    if len(value) > limit:
        raise InputError(f"longer than {limit} characters", field=option)
    return value or None


def acknowledge(engine: Engine, alert_id: str, *, by: str, note: str | None = None,
                close: bool = False, via: str = "cli", now: datetime | None = None,
                token_nonce: str | None = None) -> AckResult:
    """Record that ``by`` acknowledged the alert (and, with ``close``, closed it).

    Parameters
    ----------
    engine
        The store's engine.
    alert_id
        The alert reference (case-insensitive); an escalation message's reference
        acknowledges the escalated alert.
    by
        Who acknowledges (a name or role; required, at most 256 characters).
    note
        Optional free text (at most 2000 characters), e.g. "repeat draw booked".
    close
        Also close the alert: nothing further to follow up.
    via
        ``cli`` or ``link``.
    now
        Time stamp (UTC); default now.
    token_nonce
        The signed link's nonce (``via="link"``): the acknowledgement is refused when the
        link was already used.

    Raises
    ------
    NotFoundError
        Unknown or malformed reference (exit 2 at the CLI).
    InputError
        Empty ``by``, or ``by``/``note`` too long.
    AckLinkError
        ``reused``: the link's nonce was already used.
    """
    who = _clean(by, MAX_NAME, "--by")
    if not who:
        raise InputError("say who acknowledges (a name or role)", field="--by")
    text = _clean(note, MAX_NOTE, "--note")
    at = _now(now)
    with engine.begin() as conn:
        ref = resolve_alert(conn, alert_id)
        before = sql.alert_states(conn, refs=[ref])[0]
        new_id = sql.record_event(conn, ref, sql.ACKNOWLEDGED, at=at, via=via, actor=who,
                                  note=text, token_nonce=token_nonce)
        if new_id is None:
            raise AckLinkError("this acknowledgement link was already used", reason="reused")
        if close:
            sql.record_event(conn, ref, sql.CLOSED, at=at, via=via, actor=who, note=text)
        after = sql.alert_states(conn, refs=[ref])[0]
    already = before if before["state"] in ("acknowledged", "closed") else None
    return AckResult(ref=ref, state=after, already=already)


@dataclass(frozen=True)
class LinkView:
    """A verified, unused link and the alert it acknowledges (for the confirmation page)."""

    claims: LinkClaims
    alert: dict[str, Any]


def _verified(engine: Engine, token: str, settings: Settings, at: datetime
              ) -> tuple[LinkClaims, dict[str, Any]]:
    claims = verify_token(token, ack_secret(settings), now=at)
    with engine.connect() as conn:
        used = sql.nonce_event(conn, claims.nonce)
        if used is not None:
            raise AckLinkError(
                f"this link was already used (alert {claims.alert_ref} acknowledged by "
                f"{used['actor']} on {used['at']:%Y-%m-%d %H:%M} UTC)", reason="reused")
        try:
            ref = resolve_alert(conn, claims.alert_ref)
        except NotFoundError:
            ref = None
        rows = sql.alert_states(conn, refs=[ref]) if ref is not None else []
    if not rows:
        raise AckLinkError(f"alert {claims.alert_ref} is not known to this server",
                           reason="unknown")
    return claims, rows[0]


def open_link(engine: Engine, token: str, settings: Settings, *,
              now: datetime | None = None) -> LinkView:
    """GET of a link: verify it and record that the message was delivered (first time).

    Opening does not acknowledge (mail scanners open links); the page asks to confirm.

    Raises
    ------
    AckLinkError
        Forged, expired, reused or unknown alert.
    """
    at = _now(now)
    claims, alert = _verified(engine, token, settings, at)
    if alert["delivered_at"] is None:
        with engine.begin() as conn:
            sql.record_event(conn, alert["ref"], sql.DELIVERED, at=at, via="link",
                             actor=claims.recipient)
        if alert["state"] in ("sent", "queued", "undeliverable"):
            alert = dict(alert, state=sql.DELIVERED, delivered_at=at)
    return LinkView(claims=claims, alert=alert)


def confirm_link(engine: Engine, token: str, settings: Settings, *, name: str | None = None,
                 note: str | None = None, now: datetime | None = None) -> AckResult:
    """POST of a link: record the acknowledgement (once per link).

    ``name`` is who acknowledges as typed on the page; empty means the link's recipient.

    Raises
    ------
    AckLinkError
        Forged, expired, reused (also when two POSTs of one link race) or unknown alert.
    InputError
        Name or note too long.
    """
    at = _now(now)
    claims, _alert = _verified(engine, token, settings, at)
    who = _clean(name, MAX_NAME, "name") or claims.recipient
    return acknowledge(engine, claims.alert_ref, by=who, note=note, via="link", now=at,
                       token_nonce=claims.nonce)


def list_alerts(engine: Engine, *, patient_id: str | None = None, open_only: bool = False,
                now: datetime | None = None) -> list[dict[str, Any]]:
    """Alerts with state, tier, rule, team and age (hours), oldest first."""
    at = _now(now)
    with engine.connect() as conn:
        rows = sql.alert_states(conn, patient_id=patient_id, open_only=open_only)
    for row in rows:
        created = row["created_at"]
        row["age_hours"] = round((at - created).total_seconds() / 3600, 1) if created else None
        row["open"] = row["tier"] in sql.ACTIONABLE_TIERS and row["state"] not in (
            "acknowledged", "closed")
    return rows
