"""Clinical alert notifications: care-team routing, the alert ledger (outbox pattern),
PHI-minimal message rendering and SMTP / ``.eml`` transport. See docs/notifications.md."""

from __future__ import annotations

from pipeline.notify.ledger import (
    DeliveryReport,
    EnqueueResult,
    deliver_pending,
    enqueue_evaluated,
    enqueue_for_assessment,
    ledger_rows,
    outstanding_count,
    recover_interrupted,
)
from pipeline.notify.routing import Route, resolve_recipients
from pipeline.notify.transport import (
    EmlOutboxTransport,
    PermanentDeliveryError,
    SmtpTransport,
    TransportUnavailableError,
    send_ops_message,
    transport_from_settings,
)

__all__ = [
    "DeliveryReport",
    "EmlOutboxTransport",
    "EnqueueResult",
    "PermanentDeliveryError",
    "Route",
    "SmtpTransport",
    "TransportUnavailableError",
    "deliver_pending",
    "enqueue_evaluated",
    "enqueue_for_assessment",
    "ledger_rows",
    "outstanding_count",
    "recover_interrupted",
    "resolve_recipients",
    "send_ops_message",
    "transport_from_settings",
]
