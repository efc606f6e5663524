"""The store's repository: atomic per-sample ingestion and the frames the core reads.

Every write of one sample happens in one transaction (patient upsert, version bookkeeping,
sample row, bulk observation insert, ingest event), so a failure leaves nothing
half-written. Concurrent ingestion of the same ``sample_id`` (two scheduled runs on one
inbox) is resolved by the unique ``(sample_id, version)`` constraint: the loser rolls back
and re-reads, and then sees identical content ("unchanged").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from pipeline.errors import AmendRequiredError, StoreError
from pipeline.store import models
from pipeline.store.migrate import ensure_schema, masked_url

if TYPE_CHECKING:  # pandas/numpy load on first use: `ctdna observations` needs neither (#11)
    import numpy as np
    import pandas as pd

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
    warnings: list[str] = field(default_factory=list)  # reader warnings (not stored)
    level_value: float | None = None  # draw-level value (#9 item 7), unit level_unit
    level_unit: str | None = None  # tumor_fraction | mean_vaf | mtm_per_ml
    level_lod: float | None = None
    level_call: str | None = None  # positive | negative


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # first: the pragmas below may wait
    cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_SECONDS * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    _journal_wal(cursor)
    cursor.close()


#: How long an SQLite connection waits for another process's lock (busy timeout, WAL switch).
_SQLITE_BUSY_SECONDS = 30.0


def _journal_wal(cursor: Any, wait_seconds: float = _SQLITE_BUSY_SECONDS) -> None:
    """Switch the file to WAL journaling, waiting out another process's lock.

    On a fresh file that another process is creating the schema in, the switch can fail
    with "database is locked" at once: SQLite does not call the busy handler for it. Two
    processes opening one new store at the same time then failed one time in five
    (tests/store/test_migrations.py, seen in CI); retried here, within the busy timeout.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def plain_value(value: Any) -> Any:
    """Turn pandas/numpy missing values and scalars into plain Python (DB driver, JSON)."""
    if value is None:
        return None
    pandas = sys.modules.get("pandas")  # a pandas NA can only exist once pandas is loaded
    if pandas is not None and (value is pandas.NA or value is pandas.NaT):
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    return value


def _json_text(value: Any) -> str:
    """Text of a JSON column: orjson, 5-10 times faster than ``json.dumps`` on the 10,000
    payloads of a cohort evaluation (#11 item 2); read back with ``json.loads`` as before
    (the same values; non-ASCII stored as UTF-8, not ``\\u`` escapes)."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


class Store:
    """Access to the longitudinal store.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///...`` or ``postgresql+psycopg://...``); default from
        :func:`default_database_url`.
    migrate
        Bring the schema to the current revision when it is behind (default). ``False``
        opens the store as it is (``ctdna db upgrade`` reports before/after itself).
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = url or default_database_url()
        if self.url.startswith("postgresql://"):
            # psycopg 3 is the driver we install; plain postgresql:// would ask for psycopg2.
            self.url = "postgresql+psycopg://" + self.url[len("postgresql://"):]
        try:
            # hide_parameters: database errors must not carry patient or sample IDs into
            # logs, Prefect states or the ops email (issue #10 item 7).
            self.engine: Engine = sa.create_engine(self.url, future=True, pool_pre_ping=True,
                                                   hide_parameters=True,
                                                   json_serializer=_json_text)
        except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
            # Never echo the URL as given: it may carry a password (issue #10 item 7).
            raise StoreError(f"invalid database URL {masked_url(self.url)} "
                             f"({type(exc).__name__})") from exc
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        if migrate:
            # Migrations, not create_all: one SELECT when current (pipeline.store.migrate).
            ensure_schema(self.engine)

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

    def ingest_samples(self, prepared: Sequence[PreparedSample], *, amend: bool = False,
                       run_id: str | None = None) -> list[IngestAction | AmendRequiredError]:
        """Store a batch of samples in bulk; the outcome of each, aligned with ``prepared``.

        Issue #11 item 1: the stored content hashes of the whole batch are read in one
        query (identical re-ingest is a no-op decided there), and the new samples, their
        observations and the ingest events are written with multi-row INSERTs in one
        transaction, so each sample is still all-or-nothing. When a concurrent run wins a
        race on a ``(sample_id, version)`` the batch rolls back and falls back to one
        transaction per sample (:meth:`ingest_sample`, which re-reads and retries).
        """
        if not prepared:
            return []
        try:
            with self.engine.begin() as conn:
                return self._ingest_batch_in_tx(conn, prepared, amend=amend, run_id=run_id)
        except IntegrityError:
            outcomes: list[IngestAction | AmendRequiredError] = []
            for sample in prepared:
                try:
                    outcomes.append(self.ingest_sample(sample, amend=amend, run_id=run_id))
                except AmendRequiredError as exc:
                    outcomes.append(exc)
            return outcomes

    def current_hashes(self, conn: Connection, sample_ids: Sequence[str]) -> dict[str, Any]:
        """``sample_id -> (id, version, content_sha256)`` of the current versions; one query
        per 30,000 IDs (below SQLite's and PostgreSQL's bound-parameter limits)."""
        t = models.samples
        found: dict[str, Any] = {}
        ids = list(dict.fromkeys(sample_ids))
        for start in range(0, len(ids), _IN_CHUNK):
            stmt = (sa.select(t.c.id, t.c.sample_id, t.c.version, t.c.content_sha256)
                    .where(t.c.sample_id.in_(ids[start:start + _IN_CHUNK]),
                           t.c.is_current.is_(True)))
            found.update({row.sample_id: row for row in conn.execute(stmt)})
        return found

    def _ingest_batch_in_tx(self, conn: Connection, prepared: Sequence[PreparedSample], *,
                            amend: bool, run_id: str | None
                            ) -> list[IngestAction | AmendRequiredError]:
        import numpy as np
        import pandas as pd

        t = models.samples
        current = self.current_hashes(conn, [p.sample_id for p in prepared])
        now = now_utc()
        outcomes: list[IngestAction | AmendRequiredError] = []
        events: list[dict[str, Any]] = []
        writes: list[tuple[PreparedSample, Any]] = []
        for sample in prepared:
            cur = current.get(sample.sample_id)
            if cur is not None and cur.content_sha256 == sample.content_sha256:
                outcomes.append("unchanged")
            elif cur is not None and not amend:
                outcomes.append(AmendRequiredError(
                    f"sample_id {sample.sample_id!r} is already stored with different "
                    "content; re-run with --amend to store this as a new version (the earlier "
                    "one is kept)", path=sample.source_path, field="sample_id"))
                continue
            else:
                outcomes.append("amended" if cur is not None else "ingested")
                writes.append((sample, cur))
            events.append(_event_row(str(outcomes[-1]), sample, run_id, now))
        if writes:
            teams: dict[str, str | None] = {}
            for sample, _ in writes:
                if sample.care_team or sample.patient_id not in teams:
                    teams[sample.patient_id] = sample.care_team or teams.get(sample.patient_id)
            self._upsert_patients(conn, teams, now)
            superseded = [int(cur.id) for _, cur in writes if cur is not None]
            if superseded:
                conn.execute(t.update().where(t.c.id.in_(superseded))
                             .values(is_current=False, superseded_at=now))
            rows = [_sample_row(sample, 1 if cur is None else cur.version + 1, now)
                    for sample, cur in writes]
            pks = _insert_ids(conn, t, rows)
            frames = [sample.observations for sample, _ in writes]
            lengths = [len(f) for f in frames]
            if sum(lengths):
                merged = pd.concat([f for f in frames if len(f)], ignore_index=True)
                pk_column = np.repeat(np.array(pks, dtype=object), lengths)
                for start in range(0, len(merged), _ROWS_CHUNK):
                    insert_observations(conn, self._observation_rows(
                        merged.iloc[start:start + _ROWS_CHUNK],
                        pk_column[start:start + _ROWS_CHUNK]))
            # Same transaction as the samples: a stored draw's patient cannot be
            # stored-but-forgotten by a crash before evaluation (issue #10 item 1).
            mark_pending(conn, sorted({sample.patient_id for sample, _ in writes}), "ingest",
                         run_id, now)
        if events:
            conn.execute(models.ingest_events.insert(), events)
        return outcomes

    def _upsert_patients(self, conn: Connection, teams: dict[str, str | None],
                         now: datetime) -> None:
        """Create missing patients and update changed care teams, in bulk."""
        p = models.patients
        existing: dict[str, str | None] = {}
        ids = list(teams)
        for start in range(0, len(ids), _IN_CHUNK):
            existing.update({r.patient_id: r.care_team for r in conn.execute(
                sa.select(p.c.patient_id, p.c.care_team)
                .where(p.c.patient_id.in_(ids[start:start + _IN_CHUNK])))})
        new = [{"patient_id": pid, "care_team": team, "created_at": now}
               for pid, team in teams.items() if pid not in existing]
        if new:
            conn.execute(p.insert(), new)
        changed = [{"b_pid": pid, "b_team": team} for pid, team in teams.items()
                   if pid in existing and team and existing[pid] != team]
        if changed:
            conn.execute(p.update().where(p.c.patient_id == sa.bindparam("b_pid"))
                         .values(care_team=sa.bindparam("b_team")), changed)

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
        sample_pk = _inserted_id(conn.execute(
            t.insert().values(**_sample_row(prepared, version, now))), "samples")
        frame = prepared.observations
        for start in range(0, len(frame), _ROWS_CHUNK):
            insert_observations(conn, self._observation_rows(
                frame.iloc[start:start + _ROWS_CHUNK], sample_pk))
        action: IngestAction = "amended" if current is not None else "ingested"
        self._event(conn, action, prepared, run_id, now)
        # Same transaction as the sample: the patient cannot be stored-but-forgotten.
        mark_pending(conn, [prepared.patient_id], action, run_id, now)
        return action

    @staticmethod
    def _observation_rows(frame: pd.DataFrame, sample_pk: int | np.ndarray
                          ) -> ObservationRows:
        """Plain-Python rows for one bulk insert, built column-wise (issue #11: a per-value
        Python loop cost seconds on a 200,000-record VCF); a nullable column that is empty
        in every row is left out of the statement (NULL all the same)."""
        import numpy as np

        if frame.empty:
            return ObservationRows((), [])
        data = frame.reindex(columns=list(OBSERVATION_COLUMNS))
        names: list[str] = []
        columns: list[list[Any]] = []
        for name in OBSERVATION_COLUMNS:
            column = data[name]
            if name in _NULLABLE_OBSERVATION_COLUMNS and column.isna().all():
                continue
            values = _plain_column(column)
            names.append(name)
            columns.append(values)
        pks = np.broadcast_to(np.asarray(sample_pk, dtype=object), (len(data),))
        return ObservationRows((*names, "sample_pk"),
                               list(zip(*columns, pks.tolist(), strict=True)))

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

    def record_rejections(self, rejections: Sequence[tuple[str, str, str | None]],
                          run_id: str | None = None) -> None:
        """Keep many rejected inputs ``(path, error, sample_id)`` in one INSERT."""
        if not rejections:
            return
        now = now_utc()
        with self.engine.begin() as conn:
            conn.execute(models.ingest_events.insert(), [
                {"at": now, "action": "rejected", "sample_id": sample_id, "path": path,
                 "content_sha256": None, "error": error, "run_id": run_id}
                for path, error, sample_id in rejections])

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
                    {"patient_id": str(patient_id), "line": int(r["line"]), "drug": str(r["drug"]),
                     "start_date": r["start_date"], "end_date": plain_value(r["end_date"]),
                     "intent": plain_value(r.get("intent")),
                     "source_path": source_path, "updated_at": now}
                    for r in group.to_dict("records")
                ])
            mark_pending(conn, sorted({str(p) for p in therapies["patient_id"]}), "therapies",
                         None, now)
        return len(therapies)

    def update_annotations(self, frame: pd.DataFrame) -> int:
        """Write re-annotated ``gene, alteration, category, kb_id`` back by observation id."""
        if frame.empty:
            return 0
        o = models.observations
        rows = [
            {"b_id": int(r["observation_id"]), "b_gene": plain_value(r["gene"]),
             "b_alteration": plain_value(r["alteration"]), "b_category": str(r["category"]),
             "b_kb_id": plain_value(r["kb_id"])}
            for r in frame.to_dict("records")
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
        (assessment_id,) = self.save_assessments([(payload, sample_pks)],
                                                 evaluated_at=evaluated_at)
        return assessment_id

    def save_assessments(self, items: Sequence[tuple[dict[str, Any], Sequence[int]]], *,
                         evaluated_at: datetime | None = None) -> list[int]:
        """Store many assessments in one transaction; returns their ids in ``items`` order.

        Parameters
        ----------
        items
            ``(payload, sample_pks)`` per assessment: the contract JSON and the primary keys
            of the exact sample rows (versions) the rules read.
        evaluated_at
            The evaluation's time (UTC), the same for the batch; now when None.

        One multi-row INSERT ... RETURNING instead of one transaction per patient (#11
        item 2: 10,000 commits were seconds of a cohort evaluation); all or nothing.
        """
        if not items:
            return []
        when = evaluated_at or now_utc()
        rows = [{
            "patient_id": payload["patient_id"],
            "as_of": date.fromisoformat(str(payload["as_of"])),
            "evaluated_at": when, "status": payload["status"],
            "therapy_line": (payload.get("therapy") or {}).get("line"),
            "config_version": payload["config_version"], "kb_version": payload["kb_version"],
            "pipeline_version": payload["pipeline_version"],
            "sample_pks": [int(x) for x in pks], "payload": payload,
            "reevaluate_on": (None if payload.get("reevaluate_on") is None
                              else date.fromisoformat(str(payload["reevaluate_on"]))),
        } for payload, pks in items]
        with self.engine.begin() as conn:
            return _insert_ids(conn, models.assessments, rows)

    # ------------------------------------------------------------------ work queue
    def mark_pending(self, patient_ids: Iterable[str], reason: str,
                     run_id: str | None = None) -> None:
        """Mark stored patients as needing evaluation (``--force``); unknown IDs are ignored."""
        p = models.patients
        with self.engine.begin() as conn:
            known = [r[0] for r in conn.execute(
                sa.select(p.c.patient_id).where(p.c.patient_id.in_(list(patient_ids))))]
            mark_pending(conn, known, reason, run_id, now_utc())

    def pending_patients(self, run_id: str | None = None,
                         started_at: datetime | None = None) -> list[str]:
        """Patients marked as needing evaluation (sorted).

        With ``run_id`` and ``started_at`` (a flow run), only the marks that run owns: its
        own, marks without a run, and marks older than its start (left by an earlier or a
        crashed run). Marks a concurrent run made after this one started are that run's
        work, so two workers on two inbox shards do not both evaluate every patient (#11
        item 6).
        """
        return sorted(self.pending_reasons(run_id, started_at))

    def pending_reasons(self, run_id: str | None = None,
                        started_at: datetime | None = None) -> dict[str, str]:
        """The marks :meth:`pending_patients` returns, as patient -> reason of the mark.

        Reasons: ``ingest``, ``amended``, ``therapies``, ``force`` (data and operator) and
        the incremental-run reasons of ``pipeline.service.STALE_REASONS`` (#11 item 2).
        """
        q = models.pending_evaluations
        stmt = sa.select(q.c.patient_id, q.c.reason).order_by(q.c.patient_id)
        if run_id is not None and started_at is not None:
            stmt = stmt.where(sa.or_(q.c.run_id.is_(None), q.c.run_id == run_id,
                                     q.c.marked_at < started_at))
        with self.engine.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(stmt)}

    # ------------------------------------------------------------------ reads
    def _frame(self, stmt: sa.Select[Any]) -> pd.DataFrame:
        import pandas as pd

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
        import pandas as pd

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
            frame[column] = frame[column].astype(object).mask(frame[column].isna(), None)
        return _coerce_dates(frame, ["collection_date"])

    @staticmethod
    def _observations_stmt(patient_ids: Iterable[str] | None) -> sa.Select[Any]:
        o, t = models.observations, models.samples
        stmt = (sa.select(o.c.id.label("observation_id"), t.c.id.label("sample_pk"),
                          t.c.sample_id, t.c.patient_id, t.c.collection_date, t.c.lod_vaf,
                          t.c.tumor_fraction, t.c.assay, t.c.genome_build,
                          *[o.c[c] for c in OBSERVATION_COLUMNS])
                .join(t, o.c.sample_pk == t.c.id).where(t.c.is_current.is_(True)))
        if patient_ids is not None:
            # ix_samples_patient (patient_id, collection_date) + observations.sample_pk index:
            # one patient's rows are found without scanning the cohort (#11 item 4).
            stmt = stmt.where(t.c.patient_id.in_(list(patient_ids)))
        return stmt.order_by(t.c.patient_id, t.c.collection_date, t.c.sample_id,
                             o.c.record_index, o.c.id)

    def observation_records(self, patient_ids: Iterable[str]) -> list[dict[str, Any]]:
        """:meth:`observations_frame` as plain rows, without loading pandas (the start-up of
        ``ctdna observations`` on a 10,000-patient store, issue #11 item 4)."""
        with self.engine.connect() as conn:
            return [dict(row) for row in conn.execute(
                self._observations_stmt(patient_ids)).mappings()]

    def observations_frame(self, patient_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Every observation of the current sample versions, with the draw context joined."""
        import pandas as pd

        frame = self._frame(self._observations_stmt(patient_ids))
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
                          latest_only: bool = False, *,
                          patient_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Stored assessments (oldest first per patient); ``patient_ids`` reads many in one
        query (the report step's alert histories, issue #11 item 3)."""
        a = models.assessments
        stmt = sa.select(a)
        if patient_id is not None:
            stmt = stmt.where(a.c.patient_id == patient_id)
        if patient_ids is not None:
            stmt = stmt.where(a.c.patient_id.in_(list(patient_ids)))
        frame = self._frame(stmt.order_by(a.c.patient_id, a.c.evaluated_at, a.c.id))
        if latest_only and not frame.empty:
            frame = frame.groupby("patient_id", as_index=False).tail(1).reset_index(drop=True)
        return frame

    def cohort_facts(self) -> tuple[dict[str, date], dict[str, list[str]]]:
        """Per patient: the latest draw's collection date, and the detected alterations
        (``"GENE ALTERATION"``, sorted) of current sample versions; two grouped queries
        for the cohort page instead of whole frames (issue #11 item 3)."""
        t, o = models.samples, models.observations
        last_stmt = (sa.select(t.c.patient_id, sa.func.max(t.c.collection_date))
                     .where(t.c.is_current.is_(True)).group_by(t.c.patient_id))
        alt_stmt = (sa.select(t.c.patient_id, o.c.gene, o.c.alteration).distinct()
                    .join(t, o.c.sample_pk == t.c.id)
                    .where(t.c.is_current.is_(True), o.c.detected.is_(True),
                           o.c.gene.is_not(None), o.c.alteration.is_not(None))
                    .order_by(t.c.patient_id, o.c.gene, o.c.alteration))
        alterations: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            last = {pid: (day if isinstance(day, date) else date.fromisoformat(str(day)[:10]))
                    for pid, day in conn.execute(last_stmt) if day is not None}
            for pid, gene, alteration in conn.execute(alt_stmt):
                alterations.setdefault(pid, []).append(f"{gene} {alteration}")
        return last, alterations

    def evaluation_stamps(self) -> pd.DataFrame:
        """What incremental runs compare (#11 item 2): per patient, its latest assessment's
        versions and cadence date, without the payloads.

        Columns ``patient_id``, ``as_of``, ``config_version``, ``kb_version``,
        ``pipeline_version``, ``reevaluate_on`` (``datetime.date`` or None); one row per
        patient with at least one assessment (the latest by ``evaluated_at``, then id).
        """
        a = models.assessments
        last = (sa.select(a.c.patient_id, sa.func.max(a.c.evaluated_at).label("at"))
                .group_by(a.c.patient_id).subquery())
        stmt = (sa.select(a.c.patient_id, a.c.as_of, a.c.config_version, a.c.kb_version,
                          a.c.pipeline_version, a.c.reevaluate_on)
                .join(last, sa.and_(a.c.patient_id == last.c.patient_id,
                                    a.c.evaluated_at == last.c.at))
                .order_by(a.c.patient_id, a.c.id))
        frame = self._frame(stmt)
        if not frame.empty:
            frame = frame.groupby("patient_id", as_index=False).tail(1).reset_index(drop=True)
        return _coerce_dates(frame, ["as_of", "reevaluate_on"])

    def latest_assessments_frame(self) -> pd.DataFrame:
        """The latest stored assessment of every patient, without reading older ones.

        The cohort page needs one row per patient; reading every assessment of every run
        (``assessments_frame(latest_only=True)``) grows with the number of runs.
        """
        a = models.assessments
        last = (sa.select(a.c.patient_id, sa.func.max(a.c.evaluated_at).label("at"))
                .group_by(a.c.patient_id).subquery())
        stmt = (sa.select(a).join(last, sa.and_(a.c.patient_id == last.c.patient_id,
                                                a.c.evaluated_at == last.c.at))
                .order_by(a.c.patient_id, a.c.id))
        frame = self._frame(stmt)
        if not frame.empty:
            frame = frame.groupby("patient_id", as_index=False).tail(1).reset_index(drop=True)
        return frame


def mark_pending(conn: Connection, patient_ids: Sequence[str], reason: str,
                 run_id: str | None, now: datetime) -> None:
    """Upsert the work-queue mark of each patient in the caller's transaction.

    An existing mark gets a fresh ``marked_at``: :func:`clear_pending` removes only marks
    older than the moment the evaluation read the store, so data stored *during* an
    evaluation keeps its mark and is evaluated by the next run (issue #10 item 1).
    """
    if not patient_ids:
        return
    q = models.pending_evaluations
    dialect = conn.dialect.name
    rows = [{"patient_id": pid, "marked_at": now, "reason": reason, "run_id": run_id}
            for pid in patient_ids]
    if dialect in ("sqlite", "postgresql"):
        # The dialect modules load here, not at import: `ctdna observations` never writes,
        # and the PostgreSQL dialect (with asyncpg's) cost ~0.1 s of its start-up (#11).
        insert: Any
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            insert = sqlite_insert(q)
        else:
            from sqlalchemy.dialects.postgresql import insert as pg_insert
            insert = pg_insert(q)
        conn.execute(insert.on_conflict_do_update(
            index_elements=[q.c.patient_id],
            set_={"marked_at": insert.excluded.marked_at, "reason": insert.excluded.reason,
                  "run_id": insert.excluded.run_id}), rows)
        return
    for row in rows:  # other dialects: delete + insert in the same transaction
        conn.execute(q.delete().where(q.c.patient_id == row["patient_id"]))
        conn.execute(q.insert().values(**row))


def clear_pending(conn: Connection, patient_id: str, read_at: datetime) -> bool:
    """Remove a patient's mark if it is not newer than ``read_at``; True when removed.

    Called in the transaction that enqueues the patient's alerts, so "evaluated" and
    "alerts in the ledger" commit together.
    """
    q = models.pending_evaluations
    result = conn.execute(q.delete().where(q.c.patient_id == patient_id,
                                           q.c.marked_at <= read_at))
    return bool(result.rowcount)


def _coerce_dates(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Dates come back as ``datetime.date`` from both SQLite and PostgreSQL."""
    import numpy as np

    for column in columns:
        if column in frame.columns:
            frame[column] = [
                (v.date() if isinstance(v, datetime) else
                 date.fromisoformat(v) if isinstance(v, str) else
                 None if v is None or (isinstance(v, float) and np.isnan(v)) else v)
                for v in frame[column]
            ]
    return frame


#: Bound parameters per ``IN (...)`` query (SQLite allows 32,766, PostgreSQL 65,535).
_IN_CHUNK = 30_000


def _insert_ids(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` into ``table`` (inside the caller's transaction); their primary keys,
    in ``rows`` order.

    PostgreSQL: one multi-row ``INSERT ... RETURNING`` ordered by parameter. SQLite:
    SQLAlchemy cannot order a multi-row RETURNING there and sends one INSERT per row
    (10,000 statements for a cohort's assessments; #11 items 1-2), so one executemany
    instead: SQLite's write lock is held from the first insert to the commit, and a new
    rowid is the largest so far plus one, so the rows just inserted hold the ``len(rows)``
    largest ids, in ``rows`` order.
    """
    if conn.dialect.name == "sqlite":
        conn.execute(table.insert(), rows)
        ids = sorted(int(i) for i in conn.execute(
            sa.select(table.c.id).order_by(table.c.id.desc()).limit(len(rows))).scalars())
    else:
        stmt = table.insert().returning(table.c.id, sort_by_parameter_order=True)
        ids = [int(i) for i in conn.execute(stmt, rows).scalars().all()]
    if len(ids) != len(rows):
        raise StoreError(f"insert into {table.name} returned {len(ids)} ids for "
                         f"{len(rows)} rows")
    return ids


def _inserted_id(result: sa.CursorResult[Any], table: str) -> int:
    """The primary key of the row a single-row INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:  # SQLAlchemy gives None only for a statement that inserted no row
        raise StoreError(f"insert into {table} returned no primary key")
    return int(key[0])


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _plain_column(series: pd.Series) -> list[Any]:
    """A column as plain Python values with None for every missing value (numeric
    columns convert in C; an object column only goes value by value when it holds
    something else than str/int/float/bool/None, e.g. a numpy scalar)."""
    import numpy as np
    import pandas as pd

    kind = series.dtype.kind
    if kind in "iub" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        return series.to_numpy().tolist()  # numpy ints/bools: no missing value possible
    if kind == "f" and not isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        floats = series.to_numpy()
        if not np.isnan(floats).any():
            return floats.tolist()
    # pandas accepts na_value=None (documented); pandas-stubs 2.3 list only scalar na_values
    values = series.to_numpy(dtype=object, na_value=None).tolist()  # type: ignore[call-overload]
    if series.dtype == object and not set(map(type, values)) <= _PLAIN_TYPES:
        values = [plain_value(v) for v in values]
    return values


#: Observation rows converted to Python and inserted at a time: the Python tuples of a
#: 200,000-record VCF at once cost ~150 MiB of peak memory (issue #11); one transaction
#: still covers every chunk.
_ROWS_CHUNK = 25_000

@dataclass(frozen=True)
class ObservationRows:
    """Rows of one bulk observation insert and the columns they hold, in row order."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


#: Observation columns a bulk insert may leave out when no row has a value: nullable and
#: without a default. Binding a NULL per row and column was most of SQLite's insert time:
#: a 200,000-record VCF has 8 such columns of 22 (1.0 s → 0.5 s; issue #11 item 1).
_NULLABLE_OBSERVATION_COLUMNS = frozenset(
    c.name for c in models.observations.columns
    if c.nullable and c.default is None and c.server_default is None)


def insert_observations(conn: Connection, batch: ObservationRows) -> None:
    """Insert observation rows in bulk, inside the caller's transaction (so a sample stays
    all-or-nothing).

    PostgreSQL: one ``COPY ... FROM STDIN`` through psycopg; SQLite: one driver-level
    ``executemany`` of a prepared INSERT (SQLAlchemy's per-row parameter processing cost
    about 10 µs a row, 2 s for a 200,000-record VCF; issue #11 item 1); other dialects:
    SQLAlchemy Core ``insert`` with many rows.
    """
    if not batch.rows:
        return
    names = ", ".join(batch.columns)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        driver = conn.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(  # type: ignore[union-attr]
                f"COPY observations ({names}) FROM STDIN") as copy:
            for row in batch.rows:
                copy.write_row(row)
    elif dialect == "sqlite":
        marks = ", ".join("?" * len(batch.columns))
        conn.exec_driver_sql(f"INSERT INTO observations ({names}) VALUES ({marks})",
                             batch.rows)
    else:
        conn.execute(models.observations.insert(), [
            dict(zip(batch.columns, row, strict=True)) for row in batch.rows])


def _sample_row(sample: PreparedSample, version: int, now: datetime) -> dict[str, Any]:
    return dict(
        sample_id=sample.sample_id, version=version, is_current=True,
        patient_id=sample.patient_id, collection_date=sample.collection_date,
        source_path=sample.source_path, content_sha256=sample.content_sha256,
        file_format=sample.file_format, vcf_sample=sample.vcf_sample,
        caller=sample.caller, genome_build=sample.genome_build,
        assay=sample.assay, lod_vaf=float(sample.lod_vaf),
        lod_source=sample.lod_source, tumor_fraction=sample.tumor_fraction,
        median_depth=sample.median_depth, n_records=sample.n_records,
        kb_version=sample.kb_version, ingested_at=now, superseded_at=None,
        level_value=sample.level_value, level_unit=sample.level_unit,
        level_lod=sample.level_lod, level_call=sample.level_call,
    )


def _event_row(action: str, sample: PreparedSample, run_id: str | None,
               now: datetime) -> dict[str, Any]:
    return {"at": now, "action": action, "sample_id": sample.sample_id,
            "path": sample.source_path, "content_sha256": sample.content_sha256,
            "error": None, "run_id": run_id}
