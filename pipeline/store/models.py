"""Table definitions of the longitudinal store (SQLAlchemy Core).

Core tables (not ORM classes) because ingestion is bulk: one ``INSERT`` of many rows per
sample keeps a 100,000-record VCF in seconds, not minutes.

History is never overwritten: an amended sample gets a new ``samples`` row with
``version + 1``; the old row is kept with ``is_current = False`` and ``superseded_at`` set,
and its observations stay attached to it.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

patients = sa.Table(
    "patients",
    metadata,
    sa.Column("patient_id", sa.String(64), primary_key=True),
    sa.Column("care_team", sa.String(128), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

samples = sa.Table(
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
    sa.Column("file_format", sa.String(16), nullable=False),  # vcf | table
    sa.Column("vcf_sample", sa.String(256), nullable=True),
    sa.Column("caller", sa.String(64), nullable=True),
    sa.Column("genome_build", sa.String(8), nullable=False),
    sa.Column("assay", sa.String(128), nullable=True),
    sa.Column("lod_vaf", sa.Float, nullable=False),  # fraction 0-1
    sa.Column("lod_source", sa.String(32), nullable=False),  # manifest | assay | depth | default
    sa.Column("tumor_fraction", sa.Float, nullable=True),  # fraction 0-1, assay-reported
    sa.Column("median_depth", sa.Float, nullable=True),
    sa.Column("n_records", sa.Integer, nullable=False),
    sa.Column("kb_version", sa.String(64), nullable=False),
    sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
    # Draw-level (sample-level) result, #9 item 7 (all NULL for variant-level draws):
    # value in level_unit (fraction 0-1 for tumor_fraction/mean_vaf, molecules/mL for
    # mtm_per_ml; NULL = not reported or not detected), its LoD, positive|negative.
    sa.Column("level_value", sa.Float, nullable=True),
    sa.Column("level_unit", sa.String(16), nullable=True),
    sa.Column("level_lod", sa.Float, nullable=True),
    sa.Column("level_call", sa.String(8), nullable=True),
    sa.UniqueConstraint("sample_id", "version", name="uq_sample_version"),
    sa.Index("ix_samples_patient", "patient_id", "collection_date"),
)

observations = sa.Table(
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
    sa.Column("vaf", sa.Float, nullable=True),  # fraction 0-1; NULL when unknown
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

therapy_lines = sa.Table(
    "therapy_lines",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"), nullable=False),
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("drug", sa.String(128), nullable=False),
    sa.Column("start_date", sa.Date, nullable=False),
    sa.Column("end_date", sa.Date, nullable=True),
    # palliative | curative | adjuvant; NULL = not given (read as palliative), #9 item 7
    sa.Column("intent", sa.String(16), nullable=True),
    sa.Column("source_path", sa.Text, nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("patient_id", "line", name="uq_therapy_line"),
)

ingest_events = sa.Table(
    "ingest_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),  # ingested|unchanged|amended|rejected
    sa.Column("sample_id", sa.String(128), nullable=True),
    sa.Column("path", sa.Text, nullable=True),
    sa.Column("content_sha256", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
)

assessments = sa.Table(
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
    sa.Column("sample_pks", sa.JSON, nullable=False),  # exact sample rows (versions) used
    sa.Column("payload", sa.JSON, nullable=False),  # the full assessment (contract JSON + extras)
    # Migration 0005 (#11 item 2): first date the assessment changes without new data;
    # incremental runs re-evaluate the patient once it has come.
    sa.Column("reevaluate_on", sa.Date, nullable=True),
    sa.Index("ix_assessments_patient", "patient_id", "evaluated_at"),
)

# The alert ledger (outbox pattern): one row per (patient, rule, findings) notification.
# ``alert_key`` is unique, so two concurrent runs cannot create the same notification twice;
# delivery is claimed with a compare-and-set on ``state`` so that only one run sends it.
alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_key", sa.String(64), nullable=False, unique=True),
    sa.Column("ref", sa.String(16), nullable=False, unique=True),  # random, non-derivable
    sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # alert | status
    sa.Column("rule_id", sa.String(16), nullable=True),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("assessment_id", sa.Integer, sa.ForeignKey("assessments.id"), nullable=True),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("care_team", sa.String(128), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # pending|sending|sent|failed|dead
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("claimed_by", sa.String(64), nullable=True),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("message_id", sa.String(256), nullable=True),
    sa.Column("transport", sa.String(16), nullable=True),  # smtp | eml
    sa.Column("content", sa.JSON, nullable=False),  # what the message says (for re-send)
    # Migration 0002 (issue #10 item 2): earliest time a ``failed`` row may be retried
    # (backoff); NULL = now. ``message_id`` is now set at enqueue, so a re-send after a relay
    # stored-then-failed carries the same Message-ID and mail servers can deduplicate it.
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    # Migration 0004_alerting (issue #14): the ledger is keyed by (alert, channel). ``channel``
    # names the configured channel (NULL = email); ``item_key`` is the channel-independent
    # identity of the alert (``alert_key`` = item_key for email, sha256(item_key, channel)
    # otherwise); rows sharing ``digest_ref`` are one message (one digest per patient, channel
    # and run) and change state together (NULL = a digest of one: its own ``ref``).
    sa.Column("channel", sa.String(64), nullable=True),
    sa.Column("item_key", sa.String(64), nullable=True),
    sa.Column("digest_ref", sa.String(16), nullable=True),
    sa.Column("receipt", sa.Text, nullable=True),  # what the channel reported on acceptance
    sa.Index("ix_alert_notifications_digest", "digest_ref"),
    sa.Index("ix_alert_notifications_state", "state"),
)

# Migration 0002 (issue #10 item 1): the durable work queue from sample to email. A row is
# written in the same transaction that stores a sample (or a therapy history) of the patient,
# and deleted in the same transaction that enqueues the patient's alerts. A crash anywhere in
# between leaves the row, so the next plain run evaluates the patient again.
pending_evaluations = sa.Table(
    "pending_evaluations",
    metadata,
    sa.Column("patient_id", sa.String(64), sa.ForeignKey("patients.patient_id"),
              primary_key=True),
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.String(16), nullable=False),  # ingested|amended|therapies|force
    sa.Column("run_id", sa.String(64), nullable=True),
)

# Files seen in the lab's inbox. The inbox is never modified (the lab owns it); instead a
# fingerprint (content hash of the manifest plus size and mtime of every file it names)
# tells a scheduled run which manifests are new or changed since they were processed.
inbox_files = sa.Table(
    "inbox_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # manifest | therapies
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # ok | partial | rejected
    sa.UniqueConstraint("path", "fingerprint", name="uq_inbox_fingerprint"),
)

# Migration 0004_ack (issue #14 item 2): what happened to a notified alert after it was sent,
# append-only (never updated or deleted, so the record of who acknowledged what and when is
# an audit trail). ``alert_ref`` is the ledger row's random reference (the "alert id" care
# teams quote). ``event``: delivered (the acknowledgement link was opened: the message reached
# a mailbox) | acknowledged | escalated | closed. ``token_nonce`` is unique: a signed
# acknowledgement link is accepted once. The current state of every alert is derived from the
# ledger row and these events in one query (pipeline/store/alerts.py).
alert_events = sa.Table(
    "alert_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("alert_ref", sa.String(16), sa.ForeignKey("alert_notifications.ref"),
              nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(256), nullable=True),  # who (name or address); NULL = ctdna
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("via", sa.String(16), nullable=False),  # cli | link | run
    sa.Column("token_nonce", sa.String(64), nullable=True, unique=True),
    sa.Column("detail", sa.JSON, nullable=True),  # e.g. the escalation message's ref and address
    sa.Index("ix_alert_events_ref", "alert_ref", "event"),
)
