"""The cadence date of an assessment: ``assessments.reevaluate_on`` (issue #11 item 2).

Incremental runs evaluate only patients whose assessment could have changed: new or amended
data and therapy changes are in the work queue (``pending_evaluations``); a new config,
knowledge-base or pipeline version is read from the latest assessment's version columns;
a passed cadence date (next draw due, draw overdue, line ended) from this column, so the
selection is one query over the latest assessments, not a re-evaluation of the cohort.

Additive: one nullable ``DATE`` column (``NULL``: nothing but new data or a new version
changes the assessment). Rows written before it are back-filled with their own ``as_of``:
their cadence date is unknown, so their patients are re-evaluated once, by the first run
after the upgrade, which then stores a real date.

Revision ID: 0005_reevaluate_on
Revises: 0004_ack
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_reevaluate_on"
down_revision = "0004_ack"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.add_column(sa.Column("reevaluate_on", sa.Date(), nullable=True))
    op.execute("UPDATE assessments SET reevaluate_on = as_of WHERE reevaluate_on IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("assessments") as batch:
        batch.drop_column("reevaluate_on")
