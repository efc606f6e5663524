# ruff: noqa: E501 - a frozen copy of the 0.1.0 table definitions
"""Baseline: the schema as created by ctdna 0.1.0 with ``metadata.create_all``.

Frozen copy of the table definitions at that time (never edit; later changes are new
revisions). A store created by 0.1.0 has these tables but no ``alembic_version``; it is
*stamped* at this revision instead of running it (pipeline.store.migrate).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _baseline_metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    sa.Table(
        "patients",
        metadata,
        sa.Column("patient_id", sa.String(64), primary_key=True),
        sa.Column("care_team", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )

    sa.Table(
        "samples",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sample_id", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False, default=1),
        sa.Column("is_current", sa.Boolean, nullable=False, default=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"), nullable=False),
        sa.Column("collection_date", sa.Date, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("file_format", sa.String(16), nullable=False),
        sa.Column("vcf_sample", sa.String(256), nullable=True),
        sa.Column("caller", sa.String(64), nullable=True),
        sa.Column("genome_build", sa.String(8), nullable=False),
        sa.Column("assay", sa.String(128), nullable=True),
        sa.Column("lod_vaf", sa.Float, nullable=False),
        sa.Column("lod_source", sa.String(32), nullable=False),
        sa.Column("tumor_fraction", sa.Float, nullable=True),
        sa.Column("median_depth", sa.Float, nullable=True),
        sa.Column("n_records", sa.Integer, nullable=False),
        sa.Column("kb_version", sa.String(64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("sample_id", "version", name="uq_sample_version"),
        sa.Index("ix_samples_patient", "patient_id", "collection_date"),
    )

    sa.Table(
        "observations",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sample_pk", sa.Integer, sa.ForeignKey("samples.id"), nullable=False, index=True),
        sa.Column("record_index", sa.Integer, nullable=False),
        sa.Column("chrom", sa.String(64), nullable=True),
        sa.Column("pos", sa.BigInteger, nullable=True),
        sa.Column("ref", sa.Text, nullable=True),
        sa.Column("alt", sa.Text, nullable=True),
        sa.Column("variant_type", sa.String(16), nullable=False),
        sa.Column("gene", sa.String(64), nullable=True),
        sa.Column("alteration", sa.String(128), nullable=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("kb_id", sa.String(64), nullable=True),
        sa.Column("protein_change", sa.String(256), nullable=True),
        sa.Column("vaf", sa.Float, nullable=True),
        sa.Column("vaf_source", sa.String(64), nullable=True),
        sa.Column("alt_reads", sa.Integer, nullable=True),
        sa.Column("depth", sa.Integer, nullable=True),
        sa.Column("filter", sa.String(512), nullable=False),
        sa.Column("detected", sa.Boolean, nullable=False),
        sa.Column("copy_number", sa.Float, nullable=True),
        sa.Column("fusion_partner", sa.String(64), nullable=True),
        sa.Column("mate_chrom", sa.String(64), nullable=True),
        sa.Column("mate_pos", sa.BigInteger, nullable=True),
    )

    sa.Table(
        "therapy_lines",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("drug", sa.String(128), nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=True),
        sa.Column("source_path", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("patient_id", "line", name="uq_therapy_line"),
    )

    sa.Table(
        "ingest_events",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("sample_id", sa.String(128), nullable=True),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("content_sha256", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
    )

    sa.Table(
        "assessments",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("therapy_line", sa.Integer, nullable=True),
        sa.Column("config_version", sa.String(64), nullable=False),
        sa.Column("kb_version", sa.String(64), nullable=False),
        sa.Column("pipeline_version", sa.String(32), nullable=False),
        sa.Column("sample_pks", sa.JSON, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Index("ix_assessments_patient", "patient_id", "evaluated_at"),
    )

    sa.Table(
        "alert_notifications",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_key", sa.String(64), nullable=False, unique=True),
        sa.Column("ref", sa.String(16), nullable=False, unique=True),
        sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule_id", sa.String(16), nullable=True),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("assessment_id", sa.Integer, sa.ForeignKey("assessments.id"), nullable=True),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("care_team", sa.String(128), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(256), nullable=True),
        sa.Column("transport", sa.String(16), nullable=True),
        sa.Column("content", sa.JSON, nullable=False),
    )

    sa.Table(
        "inbox_files",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.UniqueConstraint("path", "fingerprint", name="uq_inbox_fingerprint"),
    )
    return metadata


def upgrade() -> None:
    _baseline_metadata().create_all(op.get_bind())


def downgrade() -> None:
    _baseline_metadata().drop_all(op.get_bind())
