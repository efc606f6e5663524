"""Work queue and outbox: ``pending_evaluations``; ``alert_notifications.next_attempt_at``.

Issue #10 items 1 and 2. ``pending_evaluations`` is the durable mark "this patient has new
data and must be evaluated"; ``next_attempt_at`` is the backoff of a failed delivery.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_evaluations",
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"),
                  primary_key=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
    )
    # batch mode: SQLite cannot ALTER most things; adding a nullable column works either way.
    with op.batch_alter_table("alert_notifications") as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_notifications") as batch:
        batch.drop_column("next_attempt_at")
    op.drop_table("pending_evaluations")
