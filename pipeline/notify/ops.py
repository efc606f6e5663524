"""The ops email: once per run, only when something needs a human (issue #14 item 5).

What needs a human: rejected inputs, dead-lettered notifications, routing fall-backs (a
patient without a usable care team), escalations (unacknowledged FAILURE alerts, from the
acknowledgement module), and notifications deferred by an unavailable channel. One
:class:`OpsNotice` collects them over the whole run; :func:`send_run_notice` mails it to
``notify.ops_address`` at the end of the run, or does nothing when all went through.

PHI-free by construction and by check: the notice carries counts, run ids, care-team
names, alert references, SMTP/HTTP codes and redacted rejection reasons (no file names or
accessions); :func:`send_run_notice` also replaces any token of a caller-given deny-list
(the run's patient and sample IDs) with ``[redacted]`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.config import Settings
from pipeline.notify.transport import SendResult, Transport, send_ops_message

REDACTED = "[redacted]"


@dataclass
class OpsNotice:
    """What one run hands to operations (every entry one PHI-free line).

    Attributes
    ----------
    run_id
        The run (Prefect flow-run id).
    rejected
        Rejected inputs, reasons without file names or accessions
        (``RunSummary.rejected_reasons``).
    dead_letters
        (message ref, last error) of notifications dead-lettered in this run.
    fallbacks
        Routing warnings: unknown/missing care teams, unusable addresses, unrouted tiers.
    escalations
        Escalated alerts (reference and age; from the acknowledgement module).
    deferred
        Notifications still owed after the run (retried automatically).
    notes
        Other context for the reader (recovered deliveries, unavailable channels).
    """

    run_id: str
    rejected: list[str] = field(default_factory=list)
    dead_letters: list[tuple[str, str]] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    deferred: int = 0
    notes: list[str] = field(default_factory=list)

    def needs_human(self) -> bool:
        """True when the run must be looked at (deferrals alone retry by themselves)."""
        return bool(self.rejected or self.dead_letters or self.fallbacks or self.escalations)

    def subject(self) -> str:
        """One PHI-free line, e.g. ``run 4877df9c: 2 rejected, 1 dead letter``."""
        parts = [f"{len(v)} {word}" for v, word in (
            (self.rejected, "rejected input(s)"), (self.dead_letters, "dead letter(s)"),
            (self.escalations, "escalation(s)"), (self.fallbacks, "routing fall-back(s)"))
            if v]
        return f"run {self.run_id[:8]}: " + ", ".join(parts or ["nothing to do"])

    def body(self) -> str:
        """The plain-text body: one section per kind of problem, what to do under each."""
        out = [f"ctdna run {self.run_id} needs attention.", ""]
        sections = (
            ("Rejected inputs (originals untouched; copies in the quarantine folder)",
             self.rejected, "Fix the file and deliver it again; the rest of the batch was "
             "processed."),
            ("Dead-lettered notifications (never retried)",
             [f"ref {ref}: {error}" for ref, error in self.dead_letters],
             "Check the recipients / endpoint, then re-queue (docs/notifications.md)."),
            ("Escalations (FAILURE alerts not acknowledged in time)", self.escalations,
             "Reach the care team by phone; acknowledge with `ctdna ack`."),
            ("Routing fall-backs", self.fallbacks,
             "Add the care team to care_teams / notify.routes in the lab config."),
        )
        for title, lines, action in sections:
            if lines:
                out += [f"{title}: {len(lines)}", *[f"  - {line}" for line in lines],
                        f"  What to do: {action}", ""]
        if self.deferred:
            out.append(f"Notifications deferred (retried by the next run): {self.deferred}")
        out += self.notes
        out += ["", "This message carries no patient data; alert references identify the "
                "notifications (ctdna alerts / the ledger)."]
        return "\n".join(out) + "\n"


def redact(text: str, deny: Iterable[str]) -> str:
    """``text`` with every token of ``deny`` (case-sensitive, longest first) replaced."""
    for token in sorted({t for t in deny if t and t.strip()}, key=len, reverse=True):
        text = text.replace(token, REDACTED)
    return text


def send_run_notice(settings: Settings, transport: Transport, notice: OpsNotice, *,
                    deny: Iterable[str] = ()) -> SendResult | None:
    """Mail ``notice`` to ``notify.ops_address`` when it needs a human; else do nothing.

    Parameters
    ----------
    settings
        ``notify.ops_address`` and the subject prefix are read.
    transport
        The email transport.
    notice
        The run's collected notice.
    deny
        Identifiers that must not leave in the ops mail (the run's patient and sample
        IDs); replaced by ``[redacted]`` wherever they occur.

    Returns
    -------
    SendResult or None
        ``None`` when nothing needed a human.

    Raises
    ------
    DeliveryError
        The transport failed (the caller records it as a run warning).
    """
    if not notice.needs_human():
        return None
    tokens = list(deny)
    return send_ops_message(settings, transport, redact(notice.subject(), tokens),
                            redact(notice.body(), tokens))
