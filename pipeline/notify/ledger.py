"""The alert ledger: an outbox over SQLAlchemy Core (SQLite and PostgreSQL).

Two steps, both safe to run concurrently and to repeat:

1. :func:`enqueue_for_assessment` writes one ``alert_notifications`` row per notifiable alert
   and per notifiable status change *and per delivery channel* (issue #14: the ledger is
   keyed by (alert, channel)), in state ``pending``. Rows are keyed by ``alert_key`` (a
   SHA-256 of what the notification is about and, beyond email, of the channel; unique in
   the table), so re-evaluating the same data creates nothing new, and two runs enqueueing
   the same alert at the same time still create one row (``INSERT ... ON CONFLICT DO
   NOTHING``). The rows created for one patient and channel in one call form one *digest*
   (shared ``digest_ref`` and Message-ID): one message per patient per run.
2. :func:`pipeline.notify.outbox.deliver_pending` claims due digests in bulk with a
   compare-and-set ``UPDATE`` (``state -> 'sending'`` only where still claimable; the rows
   this run then holds are its own), sends each digest through its channel, and marks it
   ``sent`` (outcomes are written in few transactions). A transient failure (4xx,
   dropped connection, relay down) marks it ``failed`` with ``attempts + 1`` and a backoff
   (``next_attempt_at``); a permanent one (5xx rejection of sender, recipients or data) or the
   last of ``notify.max_attempts`` attempts marks it ``dead`` (dead letter: never retried,
   reported to ops). The ``Message-ID`` is fixed when the row is enqueued, so every re-send
   of one notification carries the same Message-ID and mail servers can deduplicate it
   (issue #10 item 2).
3. :func:`recover_interrupted` runs at the start of each run: a row left ``sending`` by a
   run that died (its process is gone, or its lease expired) becomes retryable again. That
   crash window (sent but not yet marked) is the only at-least-once case, and its re-send
   carries the same Message-ID (docs/notifications.md).

What is notified (engineering-notes.md section 4.2; the issue #5 policy):

* Alerts of tier WARNING or FAILURE, once per (patient, rule, findings) where the findings
  are the canonical set of (gene, alteration, sample_id). A new draw added to an alert's
  findings is new information and notifies again. INFO alerts are never mailed (they are in
  the report).
* A status change to WARNING or FAILURE (relative to the last notified status of the
  patient), and a recovery from WARNING/FAILURE to OPTIMAL on the same therapy line (tier
  INFO). The status row is keyed by (patient, status, therapy line, draws that set it), so an
  unchanged status does not notify again while WARNING -> OPTIMAL -> WARNING does.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pipeline.assessment import Alert, Assessment
from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.notify.channels import EMAIL
from pipeline.notify.digest import item_order
from pipeline.notify.message import notification_content, sender_domain
from pipeline.notify.message import report_location as _report_location
from pipeline.notify.routing import channels_for, resolve_route
from pipeline.store.models import alert_notifications as T
from pipeline.store.repository import clear_pending

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
#: States of notifications still owed to someone (neither sent nor dead-lettered).
OUTSTANDING = (PENDING, SENDING, FAILED)
NOTIFIED_TIERS = frozenset({"WARNING", "FAILURE"})
DEFAULT_LEASE = timedelta(minutes=15)
#: Patients enqueued per transaction by :func:`enqueue_evaluated`.
ENQUEUE_CHUNK = 200

# Crockford base32 without the ambiguous I, L, O, U: easy to read out over the phone.
_REF_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_MAX_REF_TRIES = 8


def new_ref() -> str:
    """A random, non-derivable alert reference such as ``A7F3-K92Q`` (40 bits, ``secrets``)."""
    chars = "".join(secrets.choice(_REF_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def _digest(parts: list[Any]) -> str:
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def canonical_findings(alert: Alert) -> list[tuple[str, str, str]]:
    """Sorted unique (gene, alteration, sample_id) triples of an alert (None -> ``""``)."""
    return sorted({(f.gene or "", f.alteration or "", f.sample_id) for f in alert.findings})


def alert_key(patient_id: str, rule_id: str, alert: Alert) -> str:
    """SHA-256 (hex) of (patient, rule, canonical findings): the identity of an alert email."""
    return _digest(["alert", patient_id, rule_id, [list(t) for t in canonical_findings(alert)]])


def status_key(patient_id: str, status: str, therapy_line: int | None, draws: list[str]) -> str:
    """SHA-256 (hex) of (patient, status, therapy line, sorted draws that set the status)."""
    return _digest(["status", patient_id, status, therapy_line, sorted(set(draws))])


def channel_key(item_key: str, channel: str) -> str:
    """The ledger's unique ``alert_key`` of an item on a channel: (alert, channel).

    Email keeps the bare item key, so rows written before channels existed still match and
    an upgrade never re-notifies them; every other channel hashes the channel name in.
    """
    return item_key if channel == EMAIL else _digest(["channel", item_key, channel])


class EnqueueResult(list[int]):
    """The ledger row ids created (a ``list[int]``), plus digests and operations warnings.

    Attributes
    ----------
    warnings
        Routing warnings (no PHI) for the caller to log and mail to ops; only reported when
        a row was actually created, so an unchanged patient does not re-warn every night.
    digests
        References of the digests (messages) created: one per patient and channel.
    """

    def __init__(self, ids: list[int] | None = None, warnings: list[str] | None = None,
                 digests: list[str] | None = None) -> None:
        super().__init__(ids or [])
        self.warnings: list[str] = list(warnings or [])
        self.digests: list[str] = list(digests or [])


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _therapy_line(assessment: Assessment) -> int | None:
    return assessment.therapy.line if assessment.therapy is not None else None


def _last_status(conn: Connection, patient_id: str) -> tuple[str | None, int | None]:
    """Status and therapy line of the patient's most recent status notification."""
    row = conn.execute(
        sa.select(T.c.content)
        .where(T.c.patient_id == patient_id, T.c.kind == "status")
        .order_by(T.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, None
    content = row.content if isinstance(row.content, dict) else json.loads(row.content)
    therapy = content.get("therapy") or {}
    return content.get("status"), therapy.get("line")


def _status_change(conn: Connection, assessment: Assessment
                   ) -> tuple[str, str | None, list[Alert], list[str]] | None:
    """(tier, previous status, driving alerts, draws) when the status change is notifiable."""
    prev_status, prev_line = _last_status(conn, assessment.patient_id)
    line = _therapy_line(assessment)
    status = assessment.status
    if status in NOTIFIED_TIERS:
        if prev_status == status and prev_line == line:
            return None
        driving = [a for a in assessment.alerts if a.tier == status]
        draws = sorted({f.sample_id for a in driving for f in a.findings}
                       | {d for a in driving for d in a.draws_used})
        return status, prev_status, driving, draws or sorted(assessment.draws_used)
    # A recovery is notified only on the same line: a new line starts a new episode, and
    # NOT_EVALUABLE is a loss of information, not a recovery (shown in the report only).
    if status == "OPTIMAL" and prev_status in NOTIFIED_TIERS and prev_line == line:
        return "INFO", prev_status, [], sorted(assessment.draws_used)
    return None


def _insert(conn: Connection, values: dict[str, Any]) -> tuple[int, str] | None:
    """Insert one ledger row unless its ``alert_key`` exists; (new id, ref) or ``None``.

    ``ON CONFLICT DO NOTHING`` (SQLite >= 3.24, PostgreSQL) never raises for a concurrent
    duplicate, so the caller's transaction stays usable on PostgreSQL. A conflict on the random
    ``ref`` instead (about 1 in 10^12) is told apart by looking the key up, and retried.
    """
    dialect = conn.dialect.name
    for _ in range(_MAX_REF_TRIES):
        row = dict(values, ref=new_ref())
        if dialect in ("sqlite", "postgresql"):
            insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(T)
            new_id = conn.execute(
                insert.values(**row).on_conflict_do_nothing().returning(T.c.id)
            ).scalar_one_or_none()
        else:
            try:
                with conn.begin_nested():
                    pk = conn.execute(sa.insert(T).values(**row)).inserted_primary_key
                    new_id = pk[0] if pk is not None else None
            except IntegrityError:
                new_id = None
        if new_id is not None:
            return int(new_id), str(row["ref"])
        exists = conn.execute(
            sa.select(T.c.id).where(T.c.alert_key == values["alert_key"])
        ).first()
        if exists is not None:
            return None
    raise StoreError("could not allocate a unique alert reference; check the ledger table")


def enqueue_for_assessment(
    conn_or_engine: Connection | Engine,
    assessment: Assessment,
    assessment_id: int | None,
    care_team: str | None,
    settings: Settings,
    *,
    report_path: str | Path | None = None,
    report_location: str | Path | None = None,
    now: datetime | None = None,
) -> EnqueueResult:
    """Create pending ledger rows for what ``assessment`` must notify.

    Parameters
    ----------
    conn_or_engine
        An engine (one transaction is opened) or a connection (the caller's transaction is
        used, so the ledger rows commit together with e.g. the assessment row).
    assessment
        The patient's assessment.
    assessment_id
        ``assessments.id`` of the stored assessment, or ``None``.
    care_team
        The patient's care team (routing key); ``None``/unknown routes to the fallback.
    settings
        Resolved settings (routing, report location).
    report_path
        The patient's report file, when known (see :func:`pipeline.notify.message.report_location`).
    report_location
        Alias of ``report_path`` (the name the flows use); ``report_path`` wins when both are set.
    now
        Creation time stamp (UTC); default now.

    Returns
    -------
    EnqueueResult
        The ids of the rows created (empty when everything was already in the ledger), with
        ``warnings`` for operations.

    Raises
    ------
    ConfigError
        The fallback address is unusable.
    StoreError
        No unique reference could be allocated.
    """
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.begin() as conn:
            return enqueue_for_assessment(conn, assessment, assessment_id, care_team, settings,
                                          report_path=report_path,
                                          report_location=report_location, now=now)
    conn = conn_or_engine
    report = _report_location(settings, assessment.patient_id,
                              report_path if report_path is not None else report_location)
    return enqueue_items(conn, assessment.patient_id, _items(conn, assessment, report),
                         care_team, settings, assessment_id=assessment_id, now=now)


def enqueue_items(conn: Connection, patient_id: str, items: list[dict[str, Any]],
                  care_team: str | None, settings: Settings, *,
                  assessment_id: int | None = None, channels: list[str] | None = None,
                  targets: tuple[str, ...] | None = None,
                  now: datetime | None = None) -> EnqueueResult:
    """Put notification items of one patient into the outbox: one digest per channel.

    The building block of :func:`enqueue_for_assessment`, public for other senders through
    the same outbox (e.g. escalation of an unacknowledged alert, issue #14 item 2): the rows
    get the ledger's guarantees (unique per (item, channel), fixed Message-ID, retries with
    backoff, dead letter, ops notice, exactly-once delivery).

    Parameters
    ----------
    conn
        The caller's connection (its transaction holds the rows).
    patient_id
        Pseudonymous patient ID (body only, never a subject).
    items
        Dicts with ``item_key`` (a stable SHA-256 hex identity: the same key is never
        enqueued twice on a channel), ``kind`` (``alert``/``status``), ``rule_id``, ``tier``
        and ``content`` (a :func:`pipeline.notify.message.notification_content` snapshot).
    care_team
        Routing key; ``None``/unknown routes email to the fallback address.
    settings
        Resolved settings (``notify.routes``, ``care_teams``).
    assessment_id
        ``assessments.id`` the items come from, or ``None``.
    channels
        Channel names to use instead of ``notify.routes`` (e.g. ``["email"]``).
    targets
        Email recipients to use instead of the care team's list (e.g. an escalation list);
        validated like any address.
    now
        Creation time stamp (UTC); default now.

    Returns
    -------
    EnqueueResult
        Row ids created, digest refs, PHI-free routing warnings.
    """
    ordered = sorted(items, key=lambda i: item_order(i["tier"], i["kind"], i["rule_id"]))
    by_channel: dict[str, list[dict[str, Any]]] = {}
    warnings: list[str] = []
    for item in ordered:
        names, warning = (channels, None) if channels else channels_for(
            care_team, item["tier"], settings)
        if warning and warning not in warnings:
            warnings.append(warning)
        for name in names:
            by_channel.setdefault(name, []).append(item)
    common = {"patient_id": patient_id, "assessment_id": assessment_id,
              "state": PENDING, "attempts": 0, "created_at": _utc(now)}
    domain = sender_domain(settings.notify.mail_from)
    created: list[int] = []
    digests: list[str] = []
    for channel, channel_items in by_channel.items():
        route = resolve_route(channel, care_team, settings, targets=targets)
        # One Message-ID per digest, fixed at enqueue: every re-send of this message carries
        # it (issue #10 item 2), and it is the webhook's idempotency key.
        message_id = make_msgid(domain=domain)
        new_rows = [new for item in channel_items if (new := _insert(conn, dict(
            common, **item, channel=channel, alert_key=channel_key(item["item_key"], channel),
            recipients=list(route.targets), care_team=route.care_team,
            message_id=message_id))) is not None]
        if not new_rows:
            continue
        # The digest (one message per patient, channel and run) is named by its lead row.
        conn.execute(sa.update(T).where(T.c.id.in_([i for i, _ in new_rows]))
                     .values(digest_ref=new_rows[0][1]))
        created.extend(i for i, _ in new_rows)
        digests.append(new_rows[0][1])
        warnings.extend(w for w in route.warnings if w not in warnings)
    return EnqueueResult(created, warnings if created else [], digests)


def _items(conn: Connection, assessment: Assessment, report: dict[str, str | None]
           ) -> list[dict[str, Any]]:
    """What ``assessment`` notifies, channel-independent: alerts and a status change."""
    items: list[dict[str, Any]] = []
    for alert in assessment.alerts:
        if alert.tier not in NOTIFIED_TIERS:
            continue
        items.append({
            "item_key": alert_key(assessment.patient_id, alert.rule_id, alert),
            "kind": "alert", "rule_id": alert.rule_id, "tier": alert.tier,
            "content": notification_content(assessment, kind="alert", tier=alert.tier,
                                            alert=alert, report=report),
        })
    change = _status_change(conn, assessment)
    if change is not None:
        tier, previous, driving, draws = change
        items.append({
            "item_key": status_key(assessment.patient_id, assessment.status,
                                   _therapy_line(assessment), draws),
            "kind": "status", "rule_id": None, "tier": tier,
            "content": notification_content(assessment, kind="status", tier=tier,
                                            driving_alerts=driving, previous_status=previous,
                                            report=report),
        })
    return items


def enqueue_evaluated(
    engine: Engine,
    results: list[Any],
    settings: Settings,
    report_locations: dict[str, str] | None = None,
) -> EnqueueResult:
    """Enqueue each evaluated patient's notifications and clear its work-queue mark.

    The same transaction holds both (one per chunk of :data:`ENQUEUE_CHUNK` patients), so a
    crash leaves a patient either marked (and re-evaluated by the next run; the ledger's
    unique ``alert_key`` makes that idempotent) or enqueued and unmarked -- never unmarked
    without its alerts (issue #10 item 1).

    Parameters
    ----------
    engine
        The store's engine.
    results
        :class:`pipeline.service.EvaluationResult` of each patient (``read_at`` set).
    settings
        Resolved settings.
    report_locations
        Patient -> report path or URL for the email link.

    Returns
    -------
    EnqueueResult
        Ids of the rows created and routing warnings (PHI-free).
    """
    locations = report_locations or {}
    total = EnqueueResult()
    for start in range(0, len(results), ENQUEUE_CHUNK):
        # A chunk of patients per transaction (issue #11 item 3: one commit per patient was
        # one fsync per patient); still atomic per patient, as a crash rolls the chunk back
        # with its queue marks, and the next run enqueues it again.
        with engine.begin() as conn:
            for result in results[start:start + ENQUEUE_CHUNK]:
                patient_id = result.assessment.patient_id
                created = enqueue_for_assessment(
                    conn, result.assessment, result.assessment_id, result.care_team,
                    settings, report_location=locations.get(patient_id))
                if result.read_at is not None:
                    clear_pending(conn, patient_id, result.read_at)
                total.extend(created)
                total.digests.extend(created.digests)
                total.warnings.extend(w for w in created.warnings if w not in total.warnings)
    return total


def ledger_rows(conn_or_engine: Connection | Engine, patient_id: str | None = None
                ) -> list[dict[str, Any]]:
    """Ledger rows (audit view), oldest first, optionally for one patient."""
    stmt = sa.select(T).order_by(T.c.id)
    if patient_id is not None:
        stmt = stmt.where(T.c.patient_id == patient_id)
    if isinstance(conn_or_engine, Engine):
        with conn_or_engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]
    return [dict(r._mapping) for r in conn_or_engine.execute(stmt)]


_MOVED = frozenset({"DeliveryReport", "claimer_id", "deliver_pending", "outstanding_count",
                    "recover_interrupted"})


def __getattr__(name: str) -> Any:
    # Delivery moved to pipeline.notify.outbox (issue #14); the old import path keeps working
    # (lazily: outbox imports this module).
    if name in _MOVED:
        from pipeline.notify import outbox

        return getattr(outbox, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
