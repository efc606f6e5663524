"""The store's repository: atomic per-sample ingestion and the frames the core reads.

Every write of one sample happens in one transaction (patient upsert, version bookkeeping,
sample row, bulk observation insert, ingest event), so a failure leaves nothing
half-written. Concurrent ingestion of the same ``sample_id`` (two scheduled runs on one
inbox) is resolved by the unique ``(sample_id, version)`` constraint: the loser rolls back
and re-reads, and then sees identical content ("unchanged").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from pipeline.errors import AmendRequiredError, StoreError
from pipeline.store import models

IngestAction = Literal["ingested", "unchanged", "amended"]

OBSERVATION_COLUMNS = (
    "record_index", "chrom", "pos", "ref", "alt", "variant_type", "gene", "alteration",
    "category", "kb_id", "protein_change", "vaf", "vaf_source", "alt_reads", "depth", "filter",
    "detected", "copy_number", "fusion_partner", "mate_chrom", "mate_pos",
)


def default_database_url() -> str:
    """``CTDNA_DB_URL`` if set, else an SQLite file in the user's data folder."""
    if os.environ.get("CTDNA_DB_URL"):
        return os.environ["CTDNA_DB_URL"]
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = base / "ctdna"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'ctdna.sqlite'}"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PreparedSample:
    """A validated, annotated sample ready to be stored (built by ``pipeline.ingest``)."""

    sample_id: str
    patient_id: str
    collection_date: date
    care_team: str | None
    source_path: str
    content_sha256: str
    file_format: str
    vcf_sample: str | None
    caller: str | None
    genome_build: str
    assay: str | None
    lod_vaf: float
    lod_source: str
    tumor_fraction: float | None
    median_depth: float | None
    n_records: int
    kb_version: str
    observations: pd.DataFrame  # OBSERVATION_COLUMNS
    warnings: tuple[str, ...] = ()  # reader warnings, for the ingest report (not stored)
    level_value: float | None = None  # draw-level value (#9 item 7), unit level_unit
    level_unit: str | None = None  # tumor_fraction | mean_vaf | mtm_per_ml
    level_lod: float | None = None
    level_call: str | None = None  # positive | negative


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def plain_value(value: Any) -> Any:
    """Turn pandas/numpy missing values and scalars into plain Python (DB driver, JSON)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


class Store:
    """Access to the longitudinal store.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``); default from
        :func:`default_database_url`.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_database_url()
        if self.url.startswith("postgresql://"):
            # psycopg 3 is the driver we install; plain postgresql:// would ask for psycopg2.
            self.url = "postgresql+psycopg://" + self.url[len("postgresql://"):]
        try:
            self.engine: Engine = sa.create_engine(self.url, future=True, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise StoreError(f"invalid database URL {self.url!r}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            models.metadata.create_all(self.engine)
        except OperationalError as exc:
            raise StoreError(f"cannot open the store at {self.engine.url!r}: {exc.orig}") from exc

    def dispose(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ writes
    def ingest_sample(self, prepared: PreparedSample, *, amend: bool = False,
                      run_id: str | None = None) -> IngestAction:
        """Store one sample atomically; see module docstring for the versioning rules.

        Raises
        ------
        AmendRequiredError
            The ``sample_id`` exists with different content and ``amend`` is False.
        """
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    return self._ingest_in_tx(conn, prepared, amend=amend, run_id=run_id)
            except IntegrityError:
                # Another run inserted the same sample_id/version concurrently: re-read.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ingest_in_tx(self, conn: Connection, prepared: PreparedSample, *, amend: bool,
                      run_id: str | None) -> IngestAction:
        t = models.samples
        current = conn.execute(
            sa.select(t.c.id, t.c.version, t.c.content_sha256)
            .where(t.c.sample_id == prepared.sample_id, t.c.is_current.is_(True))
        ).first()
        now = now_utc()
        if current is not None and current.content_sha256 == prepared.content_sha256:
            self._event(conn, "unchanged", prepared, run_id, now)
            return "unchanged"
        if current is not None and not amend:
            raise AmendRequiredError(
                f"sample_id {prepared.sample_id!r} is already stored with different content; "
                "re-run with --amend to store this as a new version (the earlier one is kept)",
                path=prepared.source_path, field="sample_id",
            )
        self._upsert_patient(conn, prepared.patient_id, prepared.care_team, now)
        version = 1
        if current is not None:
            version = current.version + 1
            conn.execute(
                t.update().where(t.c.id == current.id).values(is_current=False, superseded_at=now)
            )
        sample_pk = conn.execute(
            t.insert().values(
                sample_id=prepared.sample_id, version=version, is_current=True,
                patient_id=prepared.patient_id, collection_date=prepared.collection_date,
                source_path=prepared.source_path, content_sha256=prepared.content_sha256,
                file_format=prepared.file_format, vcf_sample=prepared.vcf_sample,
                caller=prepared.caller, genome_build=prepared.genome_build,
                assay=prepared.assay, lod_vaf=float(prepared.lod_vaf),
                lod_source=prepared.lod_source, tumor_fraction=prepared.tumor_fraction,
                median_depth=prepared.median_depth, n_records=prepared.n_records,
                kb_version=prepared.kb_version, ingested_at=now,
                level_value=prepared.level_value, level_unit=prepared.level_unit,
                level_lod=prepared.level_lod, level_call=prepared.level_call,
            )
        ).inserted_primary_key[0]
        rows = self._observation_rows(prepared.observations, int(sample_pk))
        if rows:
            conn.execute(models.observations.insert(), rows)
        action: IngestAction = "amended" if current is not None else "ingested"
        self._event(conn, action, prepared, run_id, now)
        return action

    @staticmethod
    def _observation_rows(frame: pd.DataFrame, sample_pk: int) -> list[dict[str, Any]]:
        if frame.empty:
            return []
        data = frame.reindex(columns=list(OBSERVATION_COLUMNS))
        data = data.astype(object).where(data.notna(), None)
        records = data.to_dict("records")
        for record in records:
            for key, value in record.items():
                record[key] = plain_value(value)
            record["sample_pk"] = sample_pk
        return records

    @staticmethod
    def _upsert_patient(conn: Connection, patient_id: str, care_team: str | None,
                        now: datetime) -> None:
        p = models.patients
        existing = conn.execute(
            sa.select(p.c.care_team).where(p.c.patient_id == patient_id)
        ).first()
        if existing is None:
            try:
                with conn.begin_nested():
                    conn.execute(p.insert().values(patient_id=patient_id, care_team=care_team,
                                                   created_at=now))
            except IntegrityError:
                pass  # created concurrently by another run
        if care_team and (existing is None or existing.care_team != care_team):
            conn.execute(p.update().where(p.c.patient_id == patient_id)
                         .values(care_team=care_team))

    @staticmethod
    def _event(conn: Connection, action: str, prepared: PreparedSample | None,
               run_id: str | None, now: datetime, *, path: str | None = None,
               error: str | None = None, sample_id: str | None = None) -> None:
        conn.execute(models.ingest_events.insert().values(
            at=now, action=action,
            sample_id=prepared.sample_id if prepared else sample_id,
            path=prepared.source_path if prepared else path,
            content_sha256=prepared.content_sha256 if prepared else None,
            error=error, run_id=run_id,
        ))

    def record_rejection(self, *, path: str, error: str, sample_id: str | None,
                         run_id: str | None = None) -> None:
        """Keep a rejected input in the ingest history (nothing of the sample is stored)."""
        with self.engine.begin() as conn:
            self._event(conn, "rejected", None, run_id, now_utc(), path=path, error=error,
                        sample_id=sample_id)

    def replace_therapies(self, therapies: pd.DataFrame, source_path: str | None) -> int:
        """Store a therapy history: per patient, the given lines replace the stored ones.

        All patients of the file are written in one transaction (all or nothing).
        """
        now = now_utc()
        with self.engine.begin() as conn:
            for patient_id, group in therapies.groupby("patient_id", sort=True):
                self._upsert_patient(conn, str(patient_id), None, now)
                conn.execute(models.therapy_lines.delete()
                             .where(models.therapy_lines.c.patient_id == str(patient_id)))
                conn.execute(models.therapy_lines.insert(), [
                    {"patient_id": str(patient_id), "line": int(r.line), "drug": str(r.drug),
                     "start_date": r.start_date, "end_date": plain_value(r.end_date),
                     "intent": plain_value(getattr(r, "intent", None)),
                     "source_path": source_path, "updated_at": now}
                    for r in group.itertuples(index=False)
                ])
        return len(therapies)

    def update_annotations(self, frame: pd.DataFrame) -> int:
        """Write re-annotated ``gene, alteration, category, kb_id`` back by observation id."""
        if frame.empty:
            return 0
        o = models.observations
        rows = [
            {"b_id": int(r.observation_id), "b_gene": plain_value(r.gene),
             "b_alteration": plain_value(r.alteration), "b_category": str(r.category),
             "b_kb_id": plain_value(r.kb_id)}
            for r in frame.itertuples(index=False)
        ]
        stmt = (o.update().where(o.c.id == sa.bindparam("b_id"))
                .values(gene=sa.bindparam("b_gene"), alteration=sa.bindparam("b_alteration"),
                        category=sa.bindparam("b_category"), kb_id=sa.bindparam("b_kb_id")))
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
        return len(rows)

    def save_assessment(self, payload: dict[str, Any], *, sample_pks: Sequence[int],
                        evaluated_at: datetime | None = None) -> int:
        """Store one assessment (the contract JSON plus audit fields); returns its id."""
        with self.engine.begin() as conn:
            result = conn.execute(models.assessments.insert().values(
                patient_id=payload["patient_id"], as_of=date.fromisoformat(str(payload["as_of"])),
                evaluated_at=evaluated_at or now_utc(), status=payload["status"],
                therapy_line=(payload.get("therapy") or {}).get("line"),
                config_version=payload["config_version"], kb_version=payload["kb_version"],
                pipeline_version=payload["pipeline_version"],
                sample_pks=[int(x) for x in sample_pks], payload=payload,
            ))
            return int(result.inserted_primary_key[0])

    # ------------------------------------------------------------------ reads
    def _frame(self, stmt: sa.Select[Any]) -> pd.DataFrame:
        with self.engine.connect() as conn:
            result = conn.execute(stmt)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def patient_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(
                sa.select(models.patients.c.patient_id).order_by(models.patients.c.patient_id))]

    def patient(self, patient_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(models.patients)
                               .where(models.patients.c.patient_id == patient_id)).first()
        return dict(row._mapping) if row else None

    def care_teams(self, patient_ids: Iterable[str]) -> dict[str, str | None]:
        """Care team of each given patient, in one query."""
        p = models.patients
        stmt = sa.select(p.c.patient_id, p.c.care_team).where(p.c.patient_id.in_(list(patient_ids)))
        with self.engine.connect() as conn:
            return {row.patient_id: row.care_team for row in conn.execute(stmt)}

    def samples_frame(self, patient_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Current version of every draw (including draws with no calls)."""
        t = models.samples
        stmt = (sa.select(t.c.id.label("sample_pk"), t.c.sample_id, t.c.patient_id,
                          t.c.collection_date, t.c.lod_vaf, t.c.lod_source, t.c.tumor_fraction,
                          t.c.assay, t.c.median_depth, t.c.n_records, t.c.genome_build,
                          t.c.version, t.c.caller, t.c.source_path, t.c.level_value,
                          t.c.level_unit, t.c.level_lod, t.c.level_call)
                .where(t.c.is_current.is_(True)))
        if patient_ids is not None:
            stmt = stmt.where(t.c.patient_id.in_(list(patient_ids)))
        frame = self._frame(stmt.order_by(t.c.patient_id, t.c.collection_date, t.c.sample_id))
        for column in ("level_value", "level_lod"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        for column in ("level_unit", "level_call"):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        return _coerce_dates(frame, ["collection_date"])

    def observations_frame(self, patient_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Every observation of the current sample versions, with the draw context joined."""
        o, t = models.observations, models.samples
        stmt = (sa.select(o.c.id.label("observation_id"), t.c.id.label("sample_pk"),
                          t.c.sample_id, t.c.patient_id, t.c.collection_date, t.c.lod_vaf,
                          t.c.tumor_fraction, t.c.assay, t.c.genome_build,
                          *[o.c[c] for c in OBSERVATION_COLUMNS])
                .join(t, o.c.sample_pk == t.c.id).where(t.c.is_current.is_(True)))
        if patient_ids is not None:
            stmt = stmt.where(t.c.patient_id.in_(list(patient_ids)))
        frame = self._frame(stmt.order_by(t.c.patient_id, t.c.collection_date, t.c.sample_id,
                                          o.c.record_index, o.c.id))
        frame = _coerce_dates(frame, ["collection_date"])
        for column in ("pos", "alt_reads", "depth", "mate_pos", "record_index"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
        for column in ("vaf", "copy_number", "lod_vaf", "tumor_fraction"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        if not frame.empty:
            frame["detected"] = frame["detected"].astype(bool)
        return frame

    def therapies_frame(self, patient_ids: Iterable[str] | None = None) -> pd.DataFrame:
        t = models.therapy_lines
        stmt = sa.select(t.c.patient_id, t.c.line, t.c.drug, t.c.start_date, t.c.end_date,
                         t.c.intent)
        if patient_ids is not None:
            stmt = stmt.where(t.c.patient_id.in_(list(patient_ids)))
        frame = self._frame(stmt.order_by(t.c.patient_id, t.c.line))
        # Intent not declared = palliative (the contract's default line of therapy, #9 item 7).
        frame["intent"] = frame["intent"].astype(object).where(frame["intent"].notna(),
                                                               "palliative")
        return _coerce_dates(frame, ["start_date", "end_date"])

    def ingest_history(self, sample_id: str | None = None) -> pd.DataFrame:
        e = models.ingest_events
        stmt = sa.select(e)
        if sample_id is not None:
            stmt = stmt.where(e.c.sample_id == sample_id)
        return self._frame(stmt.order_by(e.c.id))

    def sample_versions(self, sample_id: str) -> pd.DataFrame:
        t = models.samples
        return self._frame(sa.select(t).where(t.c.sample_id == sample_id).order_by(t.c.version))

    def assessments_frame(self, patient_id: str | None = None,
                          latest_only: bool = False) -> pd.DataFrame:
        a = models.assessments
        stmt = sa.select(a)
        if patient_id is not None:
            stmt = stmt.where(a.c.patient_id == patient_id)
        frame = self._frame(stmt.order_by(a.c.patient_id, a.c.evaluated_at, a.c.id))
        if latest_only and not frame.empty:
            frame = frame.groupby("patient_id", as_index=False).tail(1).reset_index(drop=True)
        return frame


def _coerce_dates(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Dates come back as ``datetime.date`` from both SQLite and PostgreSQL."""
    for column in columns:
        if column in frame.columns:
            frame[column] = [
                (v.date() if isinstance(v, datetime) else
                 date.fromisoformat(v) if isinstance(v, str) else
                 None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                for v in frame[column]
            ]
    return frame
