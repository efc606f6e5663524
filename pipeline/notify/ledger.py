"""The alert ledger: an outbox over SQLAlchemy Core (SQLite and PostgreSQL).

Two steps, both safe to run concurrently and to repeat:

1. :func:`enqueue_for_assessment` writes one ``alert_notifications`` row per notifiable alert
   and per notifiable status change, in state ``pending``. Rows are keyed by ``alert_key`` (a
   SHA-256 of what the notification is about, unique in the table), so re-evaluating the same
   data creates nothing new, and two runs enqueueing the same alert at the same time still
   create one row (``INSERT ... ON CONFLICT DO NOTHING``).
2. :func:`deliver_pending` claims each due ``pending``/``failed`` row with a compare-and-set
   ``UPDATE`` (``state -> 'sending'`` only if the row is still claimable; ``rowcount == 1``
   means this run owns it), sends it, and marks it ``sent``. A transient failure (4xx,
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
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
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
from pipeline.errors import DeliveryError, StoreError
from pipeline.faults import fault_point
from pipeline.notify.message import build_email, notification_content, sender_domain
from pipeline.notify.message import report_location as _report_location
from pipeline.notify.routing import resolve_recipients
from pipeline.notify.transport import (
    PermanentDeliveryError,
    Transport,
    TransportUnavailableError,
)
from pipeline.progress import Progress, tracked
from pipeline.store.models import alert_notifications as T
from pipeline.store.repository import clear_pending

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
#: States of notifications still owed to someone (neither sent nor dead-lettered).
OUTSTANDING = (PENDING, SENDING, FAILED)
NOTIFIED_TIERS = frozenset({"WARNING", "FAILURE"})
DEFAULT_LEASE = timedelta(minutes=15)

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


class EnqueueResult(list[int]):
    """The ledger row ids created (a ``list[int]``), plus operations warnings.

    Attributes
    ----------
    warnings
        Routing warnings (no PHI) for the caller to log and mail to ops; only reported when
        a row was actually created, so an unchanged patient does not re-warn every night.
    """

    def __init__(self, ids: list[int] | None = None, warnings: list[str] | None = None) -> None:
        super().__init__(ids or [])
        self.warnings: list[str] = list(warnings or [])


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


def _insert(conn: Connection, values: dict[str, Any]) -> int | None:
    """Insert one ledger row unless its ``alert_key`` exists; the new id or ``None``.

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
            return int(new_id)
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
    created_at = _utc(now)
    route = resolve_recipients(care_team, settings)
    report = _report_location(settings, assessment.patient_id,
                              report_path if report_path is not None else report_location)
    domain = sender_domain(settings.notify.mail_from)
    common = {
        "patient_id": assessment.patient_id,
        "assessment_id": assessment_id,
        "recipients": list(route.recipients),
        "care_team": route.care_team,
        "state": PENDING,
        "attempts": 0,
        "created_at": created_at,
    }
    rows: list[dict[str, Any]] = []
    for alert in assessment.alerts:
        if alert.tier not in NOTIFIED_TIERS:
            continue
        rows.append(dict(
            common,
            alert_key=alert_key(assessment.patient_id, alert.rule_id, alert),
            kind="alert",
            rule_id=alert.rule_id,
            tier=alert.tier,
            content=notification_content(assessment, kind="alert", tier=alert.tier,
                                         alert=alert, report=report),
        ))
    change = _status_change(conn, assessment)
    if change is not None:
        tier, previous, driving, draws = change
        rows.append(dict(
            common,
            alert_key=status_key(assessment.patient_id, assessment.status,
                                 _therapy_line(assessment), draws),
            kind="status",
            rule_id=None,
            tier=tier,
            content=notification_content(assessment, kind="status", tier=tier,
                                         driving_alerts=driving, previous_status=previous,
                                         report=report),
        ))
    for row in rows:
        # Fixed at enqueue: a re-send is recognisably the same message (issue #10 item 2).
        row["message_id"] = make_msgid(domain=domain)
    created = [new_id for row in rows if (new_id := _insert(conn, row)) is not None]
    return EnqueueResult(created, list(route.warnings) if created else [])


def enqueue_evaluated(
    engine: Engine,
    results: list[Any],
    settings: Settings,
    report_locations: dict[str, str] | None = None,
) -> EnqueueResult:
    """Enqueue each evaluated patient's notifications and clear its work-queue mark.

    One transaction per patient holds both, so a crash leaves a patient either marked (and
    re-evaluated by the next run; the ledger's unique ``alert_key`` makes that idempotent)
    or enqueued and unmarked -- never unmarked without its alerts (issue #10 item 1).

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
    for result in results:
        patient_id = result.assessment.patient_id
        with engine.begin() as conn:
            created = enqueue_for_assessment(
                conn, result.assessment, result.assessment_id, result.care_team, settings,
                report_location=locations.get(patient_id))
            if result.read_at is not None:
                clear_pending(conn, patient_id, result.read_at)
        total.extend(created)
        total.warnings.extend(w for w in created.warnings if w not in total.warnings)
    return total


@dataclass
class DeliveryReport:
    """What one :func:`deliver_pending` run did (no PHI: references and counts only).

    Attributes
    ----------
    run_id
        The run that delivered.
    sent
        References of the notifications sent.
    failed
        (reference, error) of notifications that failed and stay retryable (backoff).
    dead
        (reference, error) of notifications moved to the dead letter in this run: a
        permanent rejection, or ``notify.max_attempts`` attempts used up. Never retried.
    skipped
        Rows another run claimed first.
    deferred
        Rows left for a later run by this call (rate limit reached or relay unavailable).
    aborted
        True when the relay was unavailable and the run stopped trying.
    warnings
        Partial recipient refusals and other non-fatal problems.
    """

    run_id: str
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    deferred: int = 0
    aborted: bool = False
    warnings: list[str] = field(default_factory=list)

    def ops_summary(self) -> str:
        """A PHI-free text for the ops mailbox."""
        lines = [
            f"Notification run {self.run_id}: {len(self.sent)} sent, {len(self.failed)} failed, "
            f"{len(self.dead)} dead-lettered, {self.deferred} deferred, {self.skipped} claimed "
            "by another run.",
        ]
        if self.aborted:
            lines.append("The mail relay was unavailable; the remaining alerts stay pending.")
        lines.extend(f"ref {ref}: {error}" for ref, error in self.failed)
        lines.extend(f"ref {ref}: DEAD LETTER (not retried): {error}" for ref, error in self.dead)
        lines.extend(self.warnings)
        return "\n".join(lines)


def claimer_id(run_id: str) -> str:
    """``run@host:pid`` for ``claimed_by``: lets the next run see that a claimer died."""
    tail = f":{os.getpid()}"
    head = f"{run_id}@{socket.gethostname()}"
    return head[: 64 - len(tail)] + tail


def _claimer_dead(claimed_by: str | None) -> bool:
    """True when ``claimed_by`` names a process of this host that no longer exists."""
    if not claimed_by or "@" not in claimed_by or ":" not in claimed_by:
        return False
    host_pid = claimed_by.rsplit("@", 1)[1]
    host, _, pid_text = host_pid.rpartition(":")
    if not pid_text.isdigit() or not socket.gethostname().startswith(host):
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover_interrupted(engine: Engine, now: datetime | None = None, *,
                        lease: timedelta = DEFAULT_LEASE) -> list[str]:
    """Make rows left ``sending`` by a dead run retryable again; returns their references.

    A row is recovered when its claimer's process (same host) is gone, or when its lease has
    expired. The interrupted attempt may have reached the relay; the re-send carries the same
    Message-ID, so the recipient's mail server can recognise it.
    """
    at = _utc(now)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T.c.id, T.c.ref, T.c.claimed_by, T.c.claimed_at)
                            .where(T.c.state == SENDING)).all()
    recovered: list[str] = []
    for row in rows:
        claimed_at = _utc(row.claimed_at) if row.claimed_at is not None else None
        expired = claimed_at is None or claimed_at < at - lease
        if not (expired or _claimer_dead(row.claimed_by)):
            continue
        with engine.begin() as conn:
            done = conn.execute(
                sa.update(T).where(T.c.id == row.id, T.c.state == SENDING,
                                   T.c.claimed_by == row.claimed_by)
                .values(state=FAILED, attempts=T.c.attempts + 1, claimed_by=None,
                        claimed_at=None, next_attempt_at=None,
                        last_error="interrupted while sending (run died); re-sent with the "
                                   "same Message-ID")
            ).rowcount
        if done == 1:
            recovered.append(row.ref)
    return recovered


def outstanding_count(engine: Engine) -> int:
    """Notifications awaiting a (re)try: ``pending`` or ``failed`` (the run's "deferred").

    Rows ``sending`` belong to the run that claimed them (a concurrent run, or a crashed
    one recovered by the next run's :func:`recover_interrupted`), so they are not counted.
    """
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(T)
                                .where(T.c.state.in_([PENDING, FAILED]))).scalar_one())


def _claimable(at: datetime, cutoff: datetime) -> sa.ColumnElement[bool]:
    due = sa.or_(T.c.next_attempt_at.is_(None), T.c.next_attempt_at <= at)
    return sa.or_(
        sa.and_(T.c.state.in_([PENDING, FAILED]), due),
        sa.and_(T.c.state == SENDING, T.c.claimed_at < cutoff),
    )


def _claim(engine: Engine, row_id: int, claimer: str, at: datetime, cutoff: datetime) -> bool:
    """Compare-and-set ``-> sending``; True when this run now owns the row."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(T)
            .where(T.c.id == row_id, _claimable(at, cutoff))
            .values(state=SENDING, claimed_by=claimer, claimed_at=at)
        )
        return result.rowcount == 1


def _finish(engine: Engine, row_id: int, claimer: str, values: dict[str, Any]) -> bool:
    """Move an owned ``sending`` row on; False when the claim was lost (lease expired)."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(T)
            .where(T.c.id == row_id, T.c.state == SENDING, T.c.claimed_by == claimer)
            .values(**values)
        )
        return result.rowcount == 1


def _fail(engine: Engine, row: Any, claimer: str, error: str, settings: Settings,
          at: datetime, *, permanent: bool) -> bool:
    """Record a failed attempt: ``dead`` when permanent or out of attempts, else backoff.

    Returns True when the row went to the dead letter.
    """
    attempt = int(row.attempts or 0) + 1
    dead = permanent or attempt >= settings.notify.max_attempts
    backoff = settings.notify.retry_backoff_minutes
    wait = backoff[min(attempt - 1, len(backoff) - 1)] if backoff else 0.0
    _finish(engine, row.id, claimer, {
        "state": DEAD if dead else FAILED, "attempts": T.c.attempts + 1,
        "last_error": error[:2000], "claimed_by": None, "claimed_at": None,
        "next_attempt_at": None if dead else at + timedelta(minutes=wait),
    })
    return dead


def _with_message_id(engine: Engine, row: Any, claimer: str, settings: Settings) -> str:
    """The row's Message-ID; rows enqueued before migration 0002 get one now, stored."""
    if row.message_id:
        return str(row.message_id)
    message_id = make_msgid(domain=sender_domain(settings.notify.mail_from))
    _finish(engine, row.id, claimer, {"message_id": message_id})
    return message_id


def deliver_pending(
    engine: Engine,
    settings: Settings,
    transport: Transport,
    run_id: str,
    now: datetime | None = None,
    *,
    lease: timedelta = DEFAULT_LEASE,
    chart_for: Callable[[str], bytes | None] | None = None,
    progress: Progress | None = None,
) -> DeliveryReport:
    """Send every due ledger row, at most ``notify.max_emails_per_run`` of them.

    Parameters
    ----------
    engine
        The store's engine (each claim and each outcome is its own short transaction, so no
        database lock is held while talking to the relay).
    settings
        Resolved settings (``notify.max_attempts``, ``notify.retry_backoff_minutes``).
    transport
        :class:`~pipeline.notify.transport.SmtpTransport` or ``EmlOutboxTransport``.
    run_id
        Identifies this run in ``claimed_by`` (with host and process id; no PHI).
    now
        Fixed clock for claims, lease, backoff and time stamps (UTC); default the current time.
    lease
        A row left ``sending`` longer than this (a crashed run) may be claimed again.
    chart_for
        Optional ``patient_id -> PNG bytes`` for an inline trend chart; ``None`` means no
        chart.
    progress
        Optional progress reporter (:mod:`pipeline.progress`), counted in emails.

    Returns
    -------
    DeliveryReport

    Raises
    ------
    pipeline.errors.CtdnaError
        A non-delivery problem (e.g. a subject prefix that would leak clinical wording): the
        row is released as ``failed`` first, then the error propagates.
    """
    def clock() -> datetime:
        return _utc(now)

    report = DeliveryReport(run_id=run_id)
    claimer = claimer_id(run_id)
    with engine.connect() as conn:
        start = clock()
        ids = list(conn.execute(
            sa.select(T.c.id).where(_claimable(start, start - lease)).order_by(T.c.id)
        ).scalars())
    limit = settings.notify.max_emails_per_run
    attempted = 0
    for index, row_id in enumerate(tracked(ids, "delivery", progress)):
        if attempted >= limit or report.aborted:
            report.deferred = len(ids) - index
            break
        at = clock()
        if not _claim(engine, row_id, claimer, at, at - lease):
            report.skipped += 1
            continue
        attempted += 1
        with engine.connect() as conn:
            row = conn.execute(sa.select(T).where(T.c.id == row_id)).one()
        content = row.content if isinstance(row.content, dict) else json.loads(row.content)
        recipients = row.recipients if isinstance(row.recipients, list) else json.loads(
            row.recipients)
        chart = None
        if chart_for is not None:
            try:
                chart = chart_for(row.patient_id)
            except Exception as exc:
                # The chart only decorates the email; the alert must still go out.
                report.warnings.append(
                    f"ref {row.ref}: sent without chart ({type(exc).__name__})")
        try:
            message_id = _with_message_id(engine, row, claimer, settings)
            message = build_email(content, row.ref, recipients, settings, chart_png=chart,
                                  now=clock())
            del message["Message-ID"]
            message["Message-ID"] = message_id
            result = transport.send(message)
            fault_point("after_send")  # test hook (pipeline/faults.py); no-op in production
        except DeliveryError as exc:
            permanent = isinstance(exc, PermanentDeliveryError)
            if _fail(engine, row, claimer, str(exc), settings, clock(), permanent=permanent):
                report.dead.append((row.ref, str(exc)))
            else:
                report.failed.append((row.ref, str(exc)))
            if isinstance(exc, TransportUnavailableError):
                report.aborted = True
            continue
        except Exception as exc:
            # Not a delivery problem (bad config, rendering defect): release the claim so the
            # row is not stuck 'sending' for a lease, then let the caller see the error.
            _fail(engine, row, claimer, f"{type(exc).__name__}", settings, clock(),
                  permanent=False)
            raise
        note = f"recipients refused: {', '.join(result.refused)}" if result.refused else None
        finished = _finish(engine, row_id, claimer, {
            "state": SENT, "sent_at": clock(), "message_id": result.message_id,
            "transport": transport.name, "last_error": note, "attempts": T.c.attempts + 1,
        })
        report.sent.append(row.ref)
        if note:
            report.warnings.append(f"ref {row.ref}: {note}")
        if not finished:
            report.warnings.append(
                f"ref {row.ref}: sent, but the claim had expired (lease {lease}); "
                "another run may send it again (same Message-ID) - increase the lease"
            )
    return report


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


def enqueue_message(conn: Connection, *, key: list[Any], patient_id: str, kind: str,
                    tier: str, rule_id: str | None, recipients: list[str],
                    care_team: str | None, content: dict[str, Any],
                    assessment_id: int | None, settings: Settings,
                    now: datetime | None = None) -> tuple[int, str] | None:
    """Enqueue one message that is not an assessment's alert (e.g. an escalation, issue #14).

    The public counterpart of :func:`enqueue_for_assessment` for other modules: the row is
    keyed by the SHA-256 of ``key``, so enqueueing the same message twice (two runs, a
    re-run) creates one row; it is delivered by :func:`deliver_pending` like any other.

    Returns
    -------
    (int, str) or None
        ``(id, ref)`` of the new row, ``None`` when a row with this key exists.
    """
    values = {
        "alert_key": _digest(key), "patient_id": patient_id, "kind": kind, "tier": tier,
        "rule_id": rule_id, "recipients": list(recipients), "care_team": care_team,
        "content": content, "assessment_id": assessment_id, "state": PENDING, "attempts": 0,
        "created_at": _utc(now),
        "message_id": make_msgid(domain=sender_domain(settings.notify.mail_from)),
    }
    new_id = _insert(conn, values)
    if new_id is None:
        return None
    ref = conn.execute(sa.select(T.c.ref).where(T.c.id == new_id)).scalar_one()
    return new_id, str(ref)
