"""Draw-level values on samples; intent on therapy lines (issue #9 item 7).

Sample-level assays (tumor-informed MRD: tumor fraction, mean VAF, MTM/mL, positive/negative)
report one value per draw: ``samples.level_value`` (fraction 0-1 for tumor_fraction/mean_vaf,
molecules per mL for mtm_per_ml), ``level_unit``, ``level_lod`` (same unit) and ``level_call``
(positive|negative). ``therapy_lines.intent`` (palliative|curative|adjuvant; NULL read as
palliative) switches the rules to surveillance mode for curative-intent and adjuvant lines.
All nullable: existing rows keep their meaning.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("level_value", sa.Float(), nullable=True))
        batch.add_column(sa.Column("level_unit", sa.String(16), nullable=True))
        batch.add_column(sa.Column("level_lod", sa.Float(), nullable=True))
        batch.add_column(sa.Column("level_call", sa.String(8), nullable=True))
    with op.batch_alter_table("therapy_lines") as batch:
        batch.add_column(sa.Column("intent", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("therapy_lines") as batch:
        batch.drop_column("intent")
    with op.batch_alter_table("samples") as batch:
        for column in ("level_call", "level_lod", "level_unit", "level_value"):
            batch.drop_column(column)
