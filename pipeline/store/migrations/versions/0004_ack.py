"""Alert acknowledgement and escalation events: ``alert_events`` (issue #14 item 2).

An append-only table of what happened to a notified alert after it was sent (delivered,
acknowledged by whom and when, escalated, closed). Additive: one new table, nothing else
changes, so it can be chained before or after the other 0004 revisions (chained after
0004_alerting here).

Revision ID: 0004_ack
Revises: 0004_alerting
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_ack"
down_revision = "0004_alerting"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_ref", sa.String(16), sa.ForeignKey("alert_notifications.ref"),
                  nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(256), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("token_nonce", sa.String(64), nullable=True, unique=True),
        sa.Column("detail", sa.JSON, nullable=True),
    )
    op.create_index("ix_alert_events_ref", "alert_events", ["alert_ref", "event"])


def downgrade() -> None:
    op.drop_index("ix_alert_events_ref", table_name="alert_events")
    op.drop_table("alert_events")
