"""Delivery of the outbox: due digests claimed in bulk, sent per channel, outcomes batched.

Issue #11 item 3 (105 alert emails in <= 2 s) and issue #10 item 2 (outbox semantics):

* **Claim in bulk.** Due digests are claimed :data:`CLAIM_CHUNK` at a time with one
  compare-and-set ``UPDATE ... SET state='sending', claimed_by=<run> WHERE <digest> IN (...)
  AND <claimable>``; the rows this run then holds are its own. Two concurrent runs never hold
  the same row, and the run holds no database lock while talking to a relay.
* **Send.** Each digest goes through its channel (:mod:`pipeline.notify.channels`); one SMTP
  connection serves the whole run; each patient's chart is rendered once.
* **Record in few transactions.** Successes are written every :data:`FLUSH_EVERY` messages
  or :data:`FLUSH_SECONDS` (and at the end); failures at once. A crash before a flush leaves
  those digests ``sending``: the next run's :func:`recover_interrupted` makes them retryable
  and they are re-sent **with the same Message-ID** (the documented at-least-once window,
  now up to one flush batch instead of one message).
* **Per-channel outage.** A channel that is unreachable stops being tried for this run (its
  digests go back to the queue, ``deferred``); the other channels carry on.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipeline.config import Settings
from pipeline.errors import DeliveryError
from pipeline.faults import fault_point
from pipeline.notify.channels import (
    EMAIL,
    Channel,
    ChannelRoute,
    Receipt,
    channels_from_settings,
    open_sessions,
)
from pipeline.notify.digest import Digest, digest_from_rows
from pipeline.notify.ledger import (
    DEAD,
    DEFAULT_LEASE,
    FAILED,
    PENDING,
    SENDING,
    SENT,
    _utc,
)
from pipeline.notify.message import sender_domain
from pipeline.notify.transport import (
    PermanentDeliveryError,
    Transport,
    TransportUnavailableError,
)
from pipeline.progress import Progress, tracked
from pipeline.store.models import alert_notifications as T

#: Digests claimed per compare-and-set ``UPDATE``.
CLAIM_CHUNK = 100
#: Successful deliveries recorded per transaction, at most ...
FLUSH_EVERY = 50
#: ... and at least this often (seconds), so a slow relay keeps the crash window small.
FLUSH_SECONDS = 1.0

#: The digest a row belongs to: its ``digest_ref``, or its own ``ref`` (rows from before 0004).
DIGEST = sa.func.coalesce(T.c.digest_ref, T.c.ref)


@dataclass
class DeliveryReport:
    """What one :func:`deliver_pending` run did (no PHI: references and counts only).

    Attributes
    ----------
    run_id
        The run that delivered.
    sent
        References of the messages (digests) sent.
    failed
        (reference, error) of messages that failed and stay retryable (backoff).
    dead
        (reference, error) of messages moved to the dead letter in this run: a permanent
        rejection, or ``notify.max_attempts`` attempts used up. Never retried.
    skipped
        Messages another run claimed first.
    deferred
        Messages left for a later run by this call (rate limit reached or channel down).
    aborted
        True when a channel was unavailable and the run stopped trying it.
    warnings
        Partial recipient refusals, charts not drawn and other non-fatal problems.
    receipts
        Reference -> receipt of every message sent (channel, transport, detail).
    """

    run_id: str
    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    dead: list[tuple[str, str]] = field(default_factory=list)
    skipped: int = 0
    deferred: int = 0
    aborted: bool = False
    warnings: list[str] = field(default_factory=list)
    receipts: dict[str, Receipt] = field(default_factory=dict)

    def ops_summary(self) -> str:
        """A PHI-free text for the ops mailbox."""
        lines = [
            f"Notification run {self.run_id}: {len(self.sent)} sent, {len(self.failed)} failed, "
            f"{len(self.dead)} dead-lettered, {self.deferred} deferred, {self.skipped} claimed "
            "by another run.",
        ]
        if self.aborted:
            lines.append("A delivery channel (mail relay or webhook) was unavailable; the "
                         "remaining alerts stay pending.")
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
    """Make messages left ``sending`` by a dead run retryable again; returns their refs.

    A row is recovered when its claimer's process (same host) is gone, or when its lease has
    expired. The interrupted attempt may have reached the relay; the re-send carries the same
    Message-ID, so the recipient's mail server (or webhook receiver) can recognise it.
    """
    at = _utc(now)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T.c.id, T.c.ref, DIGEST.label("grp"), T.c.claimed_by,
                                      T.c.claimed_at).where(T.c.state == SENDING)).all()
    stale: dict[tuple[str, str | None], list[int]] = {}
    for row in rows:
        claimed_at = _utc(row.claimed_at) if row.claimed_at is not None else None
        expired = claimed_at is None or claimed_at < at - lease
        if expired or _claimer_dead(row.claimed_by):
            stale.setdefault((row.grp, row.claimed_by), []).append(row.id)
    recovered: list[str] = []
    with engine.begin() as conn:
        for (group, claimed_by), ids in stale.items():
            done = conn.execute(
                sa.update(T).where(T.c.id.in_(ids), T.c.state == SENDING,
                                   T.c.claimed_by == claimed_by)
                .values(state=FAILED, attempts=T.c.attempts + 1, claimed_by=None,
                        claimed_at=None, next_attempt_at=None,
                        last_error="interrupted while sending (run died); re-sent with the "
                                   "same Message-ID")
            ).rowcount
            if done:
                recovered.append(group)
    return recovered


def outstanding_count(engine: Engine) -> int:
    """Messages awaiting a (re)try: digests ``pending`` or ``failed`` (the run's "deferred").

    Rows ``sending`` belong to the run that claimed them (a concurrent run, or a crashed
    one recovered by the next run's :func:`recover_interrupted`), so they are not counted.
    """
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count(sa.distinct(DIGEST)))
                                .where(T.c.state.in_([PENDING, FAILED]))).scalar_one())


def _claimable(at: datetime, cutoff: datetime) -> sa.ColumnElement[bool]:
    due = sa.or_(T.c.next_attempt_at.is_(None), T.c.next_attempt_at <= at)
    return sa.or_(
        sa.and_(T.c.state.in_([PENDING, FAILED]), due),
        sa.and_(T.c.state == SENDING, T.c.claimed_at < cutoff),
    )


def _due_groups(engine: Engine, at: datetime, lease: timedelta) -> list[str]:
    """Digests with a claimable row, oldest first."""
    with engine.connect() as conn:
        return [str(g) for g in conn.execute(
            sa.select(DIGEST.label("grp")).where(_claimable(at, at - lease))
            .group_by(DIGEST).order_by(sa.func.min(T.c.id))).scalars()]


def _claim_groups(engine: Engine, groups: list[str], claimer: str, at: datetime,
                  lease: timedelta) -> dict[str, list[Any]]:
    """Compare-and-set ``-> sending`` for ``groups``; the rows now owned, by digest."""
    with engine.begin() as conn:
        conn.execute(sa.update(T).where(DIGEST.in_(groups), _claimable(at, at - lease))
                     .values(state=SENDING, claimed_by=claimer, claimed_at=at))
        rows = conn.execute(sa.select(T, DIGEST.label("grp"))
                            .where(DIGEST.in_(groups), T.c.state == SENDING,
                                   T.c.claimed_by == claimer)).all()
    owned: dict[str, list[Any]] = {}
    for row in rows:
        owned.setdefault(str(row.grp), []).append(row)
    return owned


class _Recorder:
    """Buffers outcomes and writes them in one transaction per flush."""

    def __init__(self, engine: Engine, claimer: str) -> None:
        self.engine = engine
        self.claimer = claimer
        self.pending: list[tuple[str, dict[str, Any], str | None]] = []
        self.last = time.monotonic()

    def add(self, group: str, values: dict[str, Any], lost_warning: str | None = None) -> None:
        self.pending.append((group, values, lost_warning))

    def due(self) -> bool:
        return len(self.pending) >= FLUSH_EVERY or time.monotonic() - self.last >= FLUSH_SECONDS

    def flush(self) -> list[str]:
        """Write the buffered outcomes; warnings for claims lost meanwhile (lease expired)."""
        warnings: list[str] = []
        if self.pending:
            with self.engine.begin() as conn:
                for group, values, lost in self.pending:
                    if _finish(conn, group, self.claimer, values) == 0 and lost:
                        warnings.append(lost)
        self.pending = []
        self.last = time.monotonic()
        return warnings

    def release(self, groups: list[str]) -> None:
        """Give claimed but unattempted digests back to the queue, as they were."""
        if not groups:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.update(T).where(DIGEST.in_(groups), T.c.state == SENDING,
                                            T.c.claimed_by == self.claimer)
                         .values(state=sa.case((T.c.attempts == 0, PENDING), else_=FAILED),
                                 claimed_by=None, claimed_at=None))


def _finish(conn: Connection, group: str, claimer: str, values: dict[str, Any]) -> int:
    """Move an owned digest on; the number of rows (0 when the claim was lost)."""
    return int(conn.execute(
        sa.update(T).where(DIGEST.in_([group]), T.c.state == SENDING, T.c.claimed_by == claimer)
        .values(**values)).rowcount)


def _failure(rows: list[Any], error: str, settings: Settings, at: datetime, *,
             permanent: bool) -> tuple[dict[str, Any], bool]:
    """Values recording a failed attempt, and whether it went to the dead letter."""
    attempt = int(rows[0].attempts or 0) + 1
    dead = permanent or attempt >= settings.notify.max_attempts
    backoff = settings.notify.retry_backoff_minutes
    wait = backoff[min(attempt - 1, len(backoff) - 1)] if backoff else 0.0
    return {
        "state": DEAD if dead else FAILED, "attempts": T.c.attempts + 1,
        "last_error": error[:2000], "claimed_by": None, "claimed_at": None,
        "next_attempt_at": None if dead else at + timedelta(minutes=wait),
    }, dead


@dataclass(frozen=True)
class _Job:
    """One digest on its way: what a worker delivers."""

    group: str
    rows: list[Any]
    channel: str
    digest: Digest
    route: ChannelRoute


@dataclass
class _Run:
    """State of one delivery run."""

    engine: Engine
    settings: Settings
    channels: Mapping[str, Channel]
    claimer: str
    report: DeliveryReport
    clock: Callable[[], datetime]
    lease: timedelta
    chart_for: Callable[[str], bytes | None] | None
    #: Channels found unavailable in this run: their other digests wait for the next run.
    down: set[str] = field(default_factory=set)
    #: Channels that accepted a message in this run: only those are sent to in parallel, so
    #: a relay that is down costs one failed attempt, not one per worker.
    proven: set[str] = field(default_factory=set)

    def chart(self, patient_id: str, ref: str) -> bytes | None:
        if self.chart_for is None:
            return None
        try:
            return self.chart_for(patient_id)
        except Exception as exc:
            # The chart only decorates the email; the alert must still go out.
            self.report.warnings.append(f"ref {ref}: sent without chart ({type(exc).__name__})")
            return None

    def prepare(self, group: str, rows: list[Any]) -> _Job:
        """The digest and route of one owned digest (main thread: reads the store)."""
        channel_name = str(rows[0].channel or EMAIL)
        message_id = self._message_id(group, rows)
        recipients = rows[0].recipients if isinstance(rows[0].recipients, list) else \
            json.loads(rows[0].recipients)
        chart = self.chart(str(rows[0].patient_id), group) if channel_name == EMAIL else None
        digest = digest_from_rows(rows, message_id=message_id, chart_png=chart,
                                  now=self.clock())
        route = ChannelRoute(channel=channel_name, care_team=rows[0].care_team,
                             targets=tuple(recipients))
        return _Job(group, rows, channel_name, digest, route)

    def transmit(self, job: _Job) -> Receipt:
        """Deliver one digest (a worker thread); raises the channel's delivery errors."""
        channel = self.channels.get(job.channel)
        if channel is None:
            raise PermanentDeliveryError(
                f"channel {job.channel!r} is no longer configured (notify.channels)")
        receipt = channel.deliver(job.digest, job.route)
        fault_point("after_send")  # test hook (pipeline/faults.py); no-op in production
        return receipt

    def settle(self, job: _Job, outcome: Future[Receipt], recorder: _Recorder) -> None:
        """Record one delivery's outcome (failures are written at once)."""
        report, group = self.report, job.group
        try:
            receipt = outcome.result()
        except DeliveryError as exc:
            values, dead = _failure(job.rows, str(exc), self.settings, self.clock(),
                                    permanent=isinstance(exc, PermanentDeliveryError))
            recorder.add(group, values)
            report.warnings.extend(recorder.flush())
            (report.dead if dead else report.failed).append((group, str(exc)))
            if isinstance(exc, TransportUnavailableError):
                self.down.add(job.channel)
                report.aborted = True
            return
        except Exception as exc:
            # Not a delivery problem (bad config, rendering defect): release the claim so
            # the digest is not stuck 'sending' for a lease, then let the caller see it.
            recorder.add(group, _failure(job.rows, type(exc).__name__, self.settings,
                                         self.clock(), permanent=False)[0])
            recorder.flush()
            raise
        self.proven.add(job.channel)
        note = f"recipients refused: {', '.join(receipt.refused)}" if receipt.refused else None
        recorder.add(group, {
            "state": SENT, "sent_at": self.clock(), "message_id": receipt.message_id,
            "transport": receipt.transport[:16], "receipt": receipt.detail,
            "last_error": note, "attempts": T.c.attempts + 1,
        }, f"ref {group}: sent, but the claim had expired (lease {self.lease}); another run "
           "may send it again (same Message-ID) - increase the lease")
        report.sent.append(group)
        report.receipts[group] = receipt
        if note:
            report.warnings.append(f"ref {group}: {note}")

    def _message_id(self, group: str, rows: list[Any]) -> str:
        """The digest's Message-ID; rows enqueued before migration 0002 get one now."""
        if rows[0].message_id:
            return str(rows[0].message_id)
        message_id = make_msgid(domain=sender_domain(self.settings.notify.mail_from))
        with self.engine.begin() as conn:
            _finish(conn, group, self.claimer, {"message_id": message_id})
        return message_id


def deliver_pending(
    engine: Engine,
    settings: Settings,
    transport: Transport | None,
    run_id: str,
    now: datetime | None = None,
    *,
    lease: timedelta = DEFAULT_LEASE,
    chart_for: Callable[[str], bytes | None] | None = None,
    progress: Progress | None = None,
    channels: Mapping[str, Channel] | None = None,
) -> DeliveryReport:
    """Send every due digest, at most ``notify.max_emails_per_run`` messages.

    Parameters
    ----------
    engine
        The store's engine.
    settings
        Resolved settings (``notify.max_attempts``, ``retry_backoff_minutes``, channels).
    transport
        The email transport (:class:`~pipeline.notify.transport.SmtpTransport` or
        ``EmlOutboxTransport``); ``None``: from settings.
    run_id
        Identifies this run in ``claimed_by`` (with host and process id; no PHI).
    now
        Fixed clock for claims, lease, backoff and time stamps (UTC); default the current time.
    lease
        A digest left ``sending`` longer than this (a crashed run) may be claimed again.
    chart_for
        Optional ``patient_id -> PNG bytes`` for an inline trend chart in emails (render
        each patient once per run, e.g. :func:`pipeline.notify.charts.store_chart_provider`).
    progress
        Optional progress reporter (:mod:`pipeline.progress`), counted in messages.
    channels
        The channels by name; default :func:`pipeline.notify.channels.channels_from_settings`
        (``email`` over ``transport`` plus ``notify.channels``).

    Returns
    -------
    DeliveryReport
        Counts in messages (one digest = one message).

    Raises
    ------
    pipeline.errors.CtdnaError
        A non-delivery problem (e.g. a subject prefix that would leak clinical wording): the
        digest is released as ``failed`` first, then the error propagates.
    """
    def clock() -> datetime:
        return _utc(now)

    report = DeliveryReport(run_id=run_id)
    run = _Run(engine=engine, settings=settings, claimer=claimer_id(run_id), report=report,
               channels=channels if channels is not None else channels_from_settings(
                   settings, transport=transport),
               clock=clock, lease=lease, chart_for=chart_for)
    groups = _due_groups(engine, clock(), lease)
    limit = settings.notify.max_emails_per_run
    report.deferred = max(0, len(groups) - limit)
    workers = settings.notify.delivery_workers
    with open_sessions(dict(run.channels)), \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ctdna-deliver") as pool:
        _deliver_all(run, pool, workers, groups[:limit], progress)
    return report


def _deliver_all(run: _Run, pool: ThreadPoolExecutor, workers: int, todo: list[str],
                 progress: Progress | None) -> None:
    """Claim ``todo`` chunk by chunk and deliver it with up to ``workers`` in flight."""
    recorder = _Recorder(run.engine, run.claimer)
    inflight: deque[tuple[_Job, Future[Receipt]]] = deque()

    def settle_all(limit: int = 0) -> None:
        while len(inflight) > limit:
            run.settle(*inflight.popleft(), recorder)

    owned: dict[str, list[Any]] = {}
    claimed_upto = 0
    try:
        for index, group in enumerate(tracked(todo, "delivery", progress)):
            if index >= claimed_upto:
                settle_all()
                recorder.release(list(owned))  # digests of a channel that went down
                chunk = todo[index:index + CLAIM_CHUNK]
                owned = _claim_groups(run.engine, chunk, run.claimer, run.clock(), run.lease)
                claimed_upto = index + len(chunk)
                run.report.skipped += len(chunk) - len(owned)
            rows = owned.get(group)
            if rows is None:
                continue
            if str(rows[0].channel or EMAIL) in run.down:
                run.report.deferred += 1
                continue
            del owned[group]
            job = run.prepare(group, rows)
            # a channel not yet proven in this run gets one message at a time
            alone = job.channel not in run.proven
            if alone:
                settle_all()
            inflight.append((job, pool.submit(run.transmit, job)))
            settle_all(0 if alone else workers - 1)
            if recorder.due():
                run.report.warnings.extend(recorder.flush())
        settle_all()
    finally:
        for job, outcome in inflight:  # only after an error above: record what was sent
            with contextlib.suppress(Exception):
                run.settle(job, outcome, recorder)
        run.report.warnings.extend(recorder.flush())
        recorder.release(list(owned))


def dead_letter_errors(engine: Engine, refs: list[str]) -> list[tuple[str, str]]:
    """(digest ref, last error) of dead-lettered digests, for the ops notice (no PHI)."""
    if not refs:
        return []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(DIGEST.label("grp"), sa.func.max(T.c.last_error))
                            .where(DIGEST.in_(refs), T.c.state == DEAD)
                            .group_by(DIGEST)).all()
    errors = {str(grp): str(error or "") for grp, error in rows}
    return [(ref, errors.get(ref, "")) for ref in refs]
