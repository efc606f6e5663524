"""Channels and digests in the alert ledger (issue #14 items 1 and 3).

``alert_notifications`` becomes the ledger of (alert, channel): one row per notifiable
alert or status change *and* per delivery channel (email, a webhook, ...).

* ``channel``: the configured channel that delivers the row (``NULL`` = ``email``, the
  only channel before this revision).
* ``item_key``: the channel-independent identity of what is notified (the former
  ``alert_key``). ``alert_key`` stays unique; for the email channel it equals ``item_key``
  (so rows written before this revision keep deduplicating), for any other channel it is
  ``sha256(item_key, channel)``: uniqueness of (alert, channel) without touching the
  existing unique index.
* ``digest_ref``: the reference of the one message (digest) that delivers the row; all new
  rows of one patient and channel in one run share it, and are claimed, sent, retried and
  dead-lettered together. ``NULL`` (older rows) = a digest of one, its own ``ref``.
* ``receipt``: what the channel reported on acceptance (``.eml`` file, HTTP status).

Additive only: new nullable columns and an index; existing rows are back-filled
(``item_key = alert_key``, ``channel = 'email'``).

Revision ID: 0004_alerting
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_alerting"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_notifications") as batch:
        batch.add_column(sa.Column("channel", sa.String(64), nullable=True))
        batch.add_column(sa.Column("item_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("digest_ref", sa.String(16), nullable=True))
        batch.add_column(sa.Column("receipt", sa.Text(), nullable=True))
    op.create_index("ix_alert_notifications_digest", "alert_notifications", ["digest_ref"])
    op.create_index("ix_alert_notifications_state", "alert_notifications", ["state"])
    op.execute("UPDATE alert_notifications SET item_key = alert_key, channel = 'email' "
               "WHERE item_key IS NULL")


def downgrade() -> None:
    op.drop_index("ix_alert_notifications_state", table_name="alert_notifications")
    op.drop_index("ix_alert_notifications_digest", table_name="alert_notifications")
    with op.batch_alter_table("alert_notifications") as batch:
        for column in ("receipt", "digest_ref", "item_key", "channel"):
            batch.drop_column(column)
