"""Read-only checks of a store: does it exist, is it reachable, is its schema complete.

Used by ``ctdna doctor`` and by the CLI's notice when a command is about to create a new,
empty store (issue #12 item 4). Nothing here creates or changes a table: opening a
:class:`~pipeline.store.repository.Store` would create the schema, which is exactly what a
health check must not do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline.store import models


@dataclass(frozen=True)
class StoreHealth:
    """What :func:`check_store` found.

    Attributes
    ----------
    reachable
        A connection could be made.
    error
        Why not (one line), when not reachable.
    missing_tables
        Tables of the current schema absent from the database.
    missing_columns
        ``table.column`` of the current schema absent from existing tables.
    revision
        The Alembic revision when the store records one (``alembic_version``), else None.
    """

    reachable: bool
    error: str | None = None
    missing_tables: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    revision: str | None = None
    tables: tuple[str, ...] = field(default_factory=tuple)

    @property
    def migrated(self) -> bool:
        return self.reachable and not self.missing_tables and not self.missing_columns


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3, the driver ctdna installs (as in ``Store``)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for in-memory or other databases)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or \
            parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def store_is_new(url: str) -> bool:
    """True when opening ``url`` would create a new, empty store.

    SQLite: the file does not exist (or is empty). Other databases: the ``samples`` table
    is absent (the database itself must exist; creating it is the operator's job).
    """
    path = sqlite_path(url)
    if path is not None:
        return not path.is_file() or path.stat().st_size == 0
    if make_url(normalise_url(url)).get_backend_name() == "sqlite":
        return True  # in-memory
    health = check_store(url)
    return health.reachable and "samples" in health.missing_tables


def check_store(url: str, *, timeout_seconds: float = 10) -> StoreHealth:
    """Connect (without creating anything) and compare the schema with the current one."""
    normalised = normalise_url(url)
    path = sqlite_path(normalised)
    if path is not None and not path.is_file():
        return StoreHealth(False, f"no store at {path} (the file does not exist)")
    connect_args: dict[str, object] = {}
    backend = make_url(normalised).get_backend_name()
    if backend == "postgresql":
        connect_args["connect_timeout"] = max(1, int(timeout_seconds))
    elif backend == "sqlite":
        connect_args["timeout"] = timeout_seconds
    try:
        engine = sa.create_engine(normalised, connect_args=connect_args)
    except (sa.exc.ArgumentError, ImportError) as exc:
        return StoreHealth(False, f"invalid database URL: {exc}")
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            present = set(inspector.get_table_names())
            missing_tables = sorted(set(models.metadata.tables) - present)
            missing_columns = []
            for name, table in models.metadata.tables.items():
                if name not in present:
                    continue
                have = {c["name"] for c in inspector.get_columns(name)}
                missing_columns += [f"{name}.{c.name}" for c in table.columns
                                    if c.name not in have]
            revision = None
            if "alembic_version" in present:
                revision = conn.execute(sa.text(
                    "SELECT version_num FROM alembic_version")).scalar()
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        return StoreHealth(False, str(orig).strip().splitlines()[0] if str(orig).strip()
                           else type(orig).__name__)
    finally:
        engine.dispose()
    return StoreHealth(True, None, tuple(missing_tables), tuple(missing_columns), revision,
                       tuple(sorted(present)))
