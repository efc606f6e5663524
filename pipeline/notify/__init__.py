"""Clinical alert notifications: care-team routing, the alert ledger (outbox pattern) keyed by
(alert, channel), one digest per patient per run, PHI-minimal rendering, and delivery
channels as plugins (email over SMTP / ``.eml``, webhook). See docs/notifications.md."""

from __future__ import annotations

from pipeline.notify.channels import (
    Channel,
    ChannelRoute,
    EmailChannel,
    Receipt,
    channels_from_settings,
)
from pipeline.notify.digest import Digest, DigestItem
from pipeline.notify.ledger import (
    EnqueueResult,
    enqueue_evaluated,
    enqueue_for_assessment,
    enqueue_items,
    ledger_rows,
)
from pipeline.notify.ops import OpsNotice, send_ops_message, send_run_notice
from pipeline.notify.outbox import (
    DeliveryReport,
    deliver_pending,
    outstanding_count,
    recover_interrupted,
)
from pipeline.notify.routing import Route, resolve_recipients
from pipeline.notify.transport import (
    EmlOutboxTransport,
    PermanentDeliveryError,
    SmtpTransport,
    TransportUnavailableError,
    transport_from_settings,
)

__all__ = [
    "Channel",
    "ChannelRoute",
    "DeliveryReport",
    "Digest",
    "DigestItem",
    "EmailChannel",
    "EmlOutboxTransport",
    "EnqueueResult",
    "OpsNotice",
    "PermanentDeliveryError",
    "Receipt",
    "Route",
    "SmtpTransport",
    "TransportUnavailableError",
    "channels_from_settings",
    "deliver_pending",
    "enqueue_evaluated",
    "enqueue_for_assessment",
    "enqueue_items",
    "ledger_rows",
    "outstanding_count",
    "recover_interrupted",
    "resolve_recipients",
    "send_ops_message",
    "send_run_notice",
    "transport_from_settings",
]
