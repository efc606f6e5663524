"""SQL of alert acknowledgement and escalation (issue #14 item 2), over SQLAlchemy Core.

The ledger (``alert_notifications``, owned by :mod:`pipeline.notify.ledger`) says what was
notified and whether the message went out (one row per alert and channel; an alert's state
hangs on its first row, and a reference of any of its rows names it); the append-only
``alert_events`` table says what happened afterwards. :func:`alert_states` derives every
alert's current state from both in one ``SELECT`` (first event of each kind per alert,
pivoted), so there is no state column to keep in step and nothing is ever updated.

State of an alert, first match wins:

==============  ==========================================================================
closed          a ``closed`` event (``ctdna ack --close``): nothing further to follow up
acknowledged    an ``acknowledged`` event (``ctdna ack`` or the signed link)
escalated       an ``escalated`` event: a FAILURE not acknowledged in time
delivered       a ``delivered`` event: the acknowledgement link was opened (the message
                reached a mailbox; mail scanners opening links count, acknowledging does not)
sent            the ledger row is ``sent`` (the relay or channel accepted it)
undeliverable   the ledger row is ``dead`` (dead letter)
queued          the ledger row is ``pending``/``sending``/``failed`` (not yet accepted)
==============  ==========================================================================

An alert is *open* while it needs a human: tier WARNING or FAILURE and neither acknowledged
nor closed. INFO notifications (recoveries) are listed with their state but are never open.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from pipeline.store.models import alert_events as E
from pipeline.store.models import alert_notifications as T

DELIVERED, ACKNOWLEDGED, ESCALATED, CLOSED = "delivered", "acknowledged", "escalated", "closed"
EVENTS = (DELIVERED, ACKNOWLEDGED, ESCALATED, CLOSED)
#: Ledger kinds that are alerts (escalation messages are about alerts, not alerts).
ALERT_KINDS = ("alert", "status")
#: Tiers that need acknowledgement.
ACTIONABLE_TIERS = ("WARNING", "FAILURE")
STATES = ("closed", "acknowledged", "escalated", "delivered", "sent", "undeliverable", "queued")
#: Columns of :func:`alert_states` rows, in order.
STATE_COLUMNS = (
    "ref", "patient_id", "care_team", "kind", "rule_id", "tier", "state", "ledger_state",
    "created_at", "sent_at", "delivered_at", "acknowledged_at", "acknowledged_by",
    "acknowledgement_note", "escalated_at", "escalation_note", "closed_at", "closed_by",
    "recipients",
)
_TIMES = ("created_at", "sent_at", "delivered_at", "acknowledged_at", "escalated_at",
          "closed_at")


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (SQLite returns naive UTC values)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _first_events() -> sa.Subquery:
    """One row per alert: time, actor and note of the first event of each kind."""
    ranked = sa.select(
        E.c.alert_ref, E.c.event, E.c.at, E.c.actor, E.c.note,
        sa.func.row_number().over(partition_by=(E.c.alert_ref, E.c.event),
                                  order_by=(E.c.at, E.c.id)).label("rn"),
    ).subquery("ranked")
    first = sa.select(ranked).where(ranked.c.rn == 1).subquery("first")

    def pick(column: sa.ColumnElement[Any], event: str, label: str) -> sa.Label[Any]:
        return sa.func.max(sa.case((first.c.event == event, column))).label(label)

    return sa.select(
        first.c.alert_ref,
        pick(first.c.at, DELIVERED, "delivered_at"),
        pick(first.c.at, ACKNOWLEDGED, "acknowledged_at"),
        pick(first.c.actor, ACKNOWLEDGED, "acknowledged_by"),
        pick(first.c.note, ACKNOWLEDGED, "acknowledgement_note"),
        pick(first.c.at, ESCALATED, "escalated_at"),
        pick(first.c.note, ESCALATED, "escalation_note"),
        pick(first.c.at, CLOSED, "closed_at"),
        pick(first.c.actor, CLOSED, "closed_by"),
    ).group_by(first.c.alert_ref).subquery("ev")


def _state_select() -> tuple[sa.Select[Any], sa.ColumnElement[str], sa.Subquery]:
    """The state query (unfiltered), its state expression and the events subquery."""
    ev = _first_events()
    state = sa.case(
        (ev.c.closed_at.is_not(None), "closed"),
        (ev.c.acknowledged_at.is_not(None), "acknowledged"),
        (ev.c.escalated_at.is_not(None), "escalated"),
        (ev.c.delivered_at.is_not(None), "delivered"),
        (T.c.state == "sent", "sent"),
        (T.c.state == "dead", "undeliverable"),
        else_="queued",
    )
    stmt = (
        sa.select(
            T.c.ref, T.c.patient_id, T.c.care_team, T.c.kind, T.c.rule_id, T.c.tier,
            state.label("state"), T.c.state.label("ledger_state"), T.c.created_at,
            T.c.sent_at, ev.c.delivered_at, ev.c.acknowledged_at, ev.c.acknowledged_by,
            ev.c.acknowledgement_note, ev.c.escalated_at, ev.c.escalation_note,
            ev.c.closed_at, ev.c.closed_by, T.c.recipients,
        )
        .select_from(T.outerjoin(ev, ev.c.alert_ref == T.c.ref))
        .where(T.c.kind.in_(ALERT_KINDS), _canonical())
    )
    return stmt, state, ev


def _canonical() -> sa.ColumnElement[bool]:
    """Only the first ledger row of each alert: the ledger holds one row per (alert,
    channel), sharing ``item_key``; the alert's state and events hang on the first."""
    first = sa.select(sa.func.min(T.c.id)).group_by(
        sa.func.coalesce(T.c.item_key, T.c.alert_key))
    return T.c.id.in_(first.scalar_subquery())


def canonical_ref(conn: Connection, ref: str) -> str | None:
    """The reference of the alert whose ledger row (on any channel) has reference ``ref``."""
    item = sa.select(sa.func.coalesce(T.c.item_key, T.c.alert_key)).where(T.c.ref == ref)
    row = conn.execute(
        sa.select(T.c.ref).where(sa.func.coalesce(T.c.item_key, T.c.alert_key)
                                 == item.scalar_subquery())
        .order_by(T.c.id).limit(1)).first()
    return str(row.ref) if row is not None else None


def _open(state: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    return sa.and_(T.c.tier.in_(ACTIONABLE_TIERS), state.not_in(("acknowledged", "closed")))


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    for name in _TIMES:
        row[name] = utc(row[name])
    return row


def alert_states(conn: Connection, *, patient_id: str | None = None, open_only: bool = False,
                 refs: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every notified alert with its current state (one query), oldest first.

    Parameters
    ----------
    conn
        A connection to the store.
    patient_id
        Only this patient's alerts.
    open_only
        Only alerts that need a human (WARNING/FAILURE, neither acknowledged nor closed).
    refs
        Only these alert references.

    Returns
    -------
    list of dict
        Keys :data:`STATE_COLUMNS`; times are aware UTC datetimes.
    """
    stmt, state, _ev = _state_select()
    if patient_id is not None:
        stmt = stmt.where(T.c.patient_id == patient_id)
    if open_only:
        stmt = stmt.where(_open(state))
    if refs is not None:
        stmt = stmt.where(T.c.ref.in_(list(refs)))
    return [_row(r._mapping) for r in conn.execute(stmt.order_by(T.c.created_at, T.c.id))]


def open_alert_counts(conn: Connection, patient_ids: Iterable[str] | None = None
                      ) -> dict[str, int]:
    """Patient -> number of open alerts (patients without any are absent).

    The cohort report's ``open_alerts`` sort key (unacknowledged alerts first, issue #14).
    """
    ev = _first_events()
    state_open = sa.and_(T.c.tier.in_(ACTIONABLE_TIERS), ev.c.acknowledged_at.is_(None),
                         ev.c.closed_at.is_(None))
    stmt = (
        sa.select(T.c.patient_id, sa.func.count().label("n"))
        .select_from(T.outerjoin(ev, ev.c.alert_ref == T.c.ref))
        .where(T.c.kind.in_(ALERT_KINDS), state_open, _canonical())
        .group_by(T.c.patient_id)
    )
    if patient_ids is not None:
        stmt = stmt.where(T.c.patient_id.in_(list(patient_ids)))
    return {str(r.patient_id): int(r.n) for r in conn.execute(stmt)}


def escalation_candidates(conn: Connection, cutoff: datetime) -> list[dict[str, Any]]:
    """FAILURE alerts sent (or, never sent, raised) at or before ``cutoff`` and since then
    neither acknowledged, closed nor escalated; with the ledger ``content`` and ids."""
    stmt, _state, ev = _state_select()
    stmt = stmt.add_columns(T.c.content, T.c.assessment_id, T.c.alert_key).where(
        T.c.tier == "FAILURE",
        ev.c.acknowledged_at.is_(None), ev.c.closed_at.is_(None), ev.c.escalated_at.is_(None),
        sa.func.coalesce(T.c.sent_at, T.c.created_at) <= cutoff,
    )
    return [_row(r._mapping) for r in conn.execute(stmt.order_by(T.c.id))]


def ledger_row(conn: Connection, ref: str) -> dict[str, Any] | None:
    """The ledger row with reference ``ref`` (any kind), or ``None``."""
    row = conn.execute(sa.select(T).where(T.c.ref == ref)).first()
    return dict(row._mapping) if row is not None else None


def record_event(conn: Connection, alert_ref: str, event: str, *, at: datetime, via: str,
                 actor: str | None = None, note: str | None = None,
                 token_nonce: str | None = None, detail: dict[str, Any] | None = None
                 ) -> int | None:
    """Append one event; its id, or ``None`` when ``token_nonce`` was already used.

    ``ON CONFLICT DO NOTHING`` on the unique nonce makes a reused link lose cleanly, even
    when two requests with the same link race (the loser's transaction stays usable).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown alert event {event!r}")
    values = {"alert_ref": alert_ref, "event": event, "at": at, "via": via, "actor": actor,
              "note": note, "token_nonce": token_nonce, "detail": detail}
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(E)
        new_id = conn.execute(
            insert.values(**values).on_conflict_do_nothing().returning(E.c.id)
        ).scalar_one_or_none()
        return int(new_id) if new_id is not None else None
    if token_nonce is not None and nonce_event(conn, token_nonce) is not None:
        return None
    pk = conn.execute(sa.insert(E).values(**values)).inserted_primary_key
    return int(pk[0]) if pk is not None else None


def nonce_event(conn: Connection, token_nonce: str) -> dict[str, Any] | None:
    """The event that used link nonce ``token_nonce``, or ``None`` (link unused)."""
    row = conn.execute(sa.select(E).where(E.c.token_nonce == token_nonce)).first()
    if row is None:
        return None
    data = dict(row._mapping)
    data["at"] = utc(data["at"])
    return data


def has_event(conn: Connection, alert_ref: str, event: str) -> bool:
    """True when ``alert_ref`` has at least one ``event``."""
    return conn.execute(
        sa.select(E.c.id).where(E.c.alert_ref == alert_ref, E.c.event == event).limit(1)
    ).first() is not None


def alert_event_rows(conn: Connection, alert_ref: str) -> list[dict[str, Any]]:
    """Every event of one alert, oldest first (the audit trail ``ctdna alerts --json`` shows)."""
    rows = conn.execute(sa.select(E).where(E.c.alert_ref == alert_ref)
                        .order_by(E.c.at, E.c.id))
    out = []
    for r in rows:
        data = dict(r._mapping)
        data["at"] = utc(data["at"])
        out.append(data)
    return out
