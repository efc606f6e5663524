"""Schema migrations of the store (Alembic), run once under a lock (issue #10 item 6).

``ctdna db upgrade`` and the start of every run call :func:`upgrade`; :class:`Store`
calls :func:`ensure_schema`, which costs one ``SELECT`` when the schema is current and
upgrades (under the lock) otherwise. Tables are never created with ``create_all`` per task.

Concurrency: on PostgreSQL the upgrade holds a session-level advisory lock; on SQLite an
exclusive ``flock`` on ``<database file>.migrate-lock``. The second of two concurrent first
runs waits, then finds the schema current and does nothing, so two runs never race on
``CREATE TABLE``.

Stores created by ctdna 0.1.0 (tables made by ``create_all``, no ``alembic_version``) are
recognised by their tables and *stamped* at the baseline revision ``0001``, then upgraded
in place.

Adding a migration: see docs/deployment.md ("Schema migrations"): add the column to
``models.py`` and a revision file under ``pipeline/store/migrations/versions/`` whose
``down_revision`` is the current :data:`HEAD`, then set :data:`HEAD` to the new revision
(a test checks that it matches Alembic's head).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import StoreError

#: The newest revision this code expects (kept in step with migrations/versions).
HEAD = "0005_reevaluate_on"
BASELINE = "0001"
#: Tables every 0.1.0 store has; all present and no ``alembic_version`` = stamp baseline.
BASELINE_TABLES = frozenset({
    "patients", "samples", "observations", "therapy_lines", "ingest_events", "assessments",
    "alert_notifications", "inbox_files",
})
# Arbitrary constant key of the PostgreSQL advisory lock ("ctdnaMIG" as a 63-bit int).
_PG_LOCK_KEY = 0x637464_6E614D49
_current: set[str] = set()
_current_guard = threading.Lock()


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade` did.

    Attributes
    ----------
    before
        Revision found (``None``: empty database; ``"0001"`` after stamping a 0.1.0 store).
    after
        Revision now (:data:`HEAD`).
    stamped_baseline
        True when an unversioned 0.1.0 store was recognised and stamped.
    """

    before: str | None
    after: str
    stamped_baseline: bool


def masked_url(url: str | sa.URL) -> str:
    """The database URL with its password replaced by ``***`` (for messages and logs)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        text = str(url)
        if "@" in text and "://" in text:
            scheme, rest = text.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
        return text


def _alembic_config(conn: Connection) -> object:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = conn
    return config


def current_revision(conn: Connection) -> str | None:
    """The stored schema revision, or ``None`` when the store is unversioned."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


@contextlib.contextmanager
def _migration_lock(engine: Engine, conn: Connection) -> Iterator[None]:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
        return
    database = engine.url.database if dialect == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield  # a private database: nobody to race with
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine) -> UpgradeResult:
    """Bring the store's schema to :data:`HEAD` (idempotent; safe to run concurrently).

    Raises
    ------
    StoreError
        The database cannot be reached, holds an unrecognised schema, or a migration fails
        (message without the password of the URL).
    """
    from alembic import command

    try:
        with engine.connect() as conn, _migration_lock(engine, conn):
            before = current_revision(conn)
            stamped = False
            config = _alembic_config(conn)
            if before is None:
                tables = set(sa.inspect(conn).get_table_names())
                present = tables & BASELINE_TABLES
                if present == BASELINE_TABLES:
                    command.stamp(config, BASELINE)  # type: ignore[arg-type]
                    stamped, before = True, BASELINE
                elif present:
                    raise StoreError(
                        f"the store at {masked_url(engine.url)} has some ctdna tables but "
                        f"not all ({len(present)} of {len(BASELINE_TABLES)}) and no schema "
                        "version; restore it from a backup")
            if before != HEAD:
                command.upgrade(config, "head")  # type: ignore[arg-type]
            conn.commit()
            after = current_revision(conn) or HEAD
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the store at {masked_url(engine.url)}: "
                         f"{type(exc).__name__}") from exc
    with _current_guard:
        _current.add(str(engine.url))
    return UpgradeResult(before=before, after=after, stamped_baseline=stamped)


def ensure_schema(engine: Engine) -> None:
    """Upgrade when the schema is behind :data:`HEAD`; one query when it is current.

    Raises
    ------
    StoreError
        See :func:`upgrade`; also a store *newer* than this code (downgrade ctdna refused).
    """
    key = str(engine.url)
    if key in _current:
        return
    try:
        with engine.connect() as conn:
            revision = current_revision(conn)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {masked_url(engine.url)}: "
                         f"{type(exc).__name__}") from exc
    if revision == HEAD:
        with _current_guard:
            _current.add(key)
        return
    if revision is not None and revision > HEAD:
        raise StoreError(f"the store's schema ({revision}) is newer than this ctdna "
                         f"({HEAD}); upgrade ctdna")
    upgrade(engine)
