"""Shared fixtures: real databases (SQLite file and a real PostgreSQL server), realdata.

PostgreSQL: ``CTDNA_TEST_PG_URL`` names an admin URL of a running server (``scripts/
test-services.sh`` starts Debian's PostgreSQL and exports it). Each test gets its own fresh
database, dropped afterwards. Without a server, PostgreSQL tests skip, unless
``CTDNA_REQUIRE_PG=1`` (set in CI), where they fail: CI must never go green without them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REALDATA = Path(os.environ.get("CTDNA_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared third-party files (read in place, never copied into the repository)."""
    if not REALDATA.is_dir():
        pytest.skip(f"realdata folder {REALDATA} is absent")
    return REALDATA


def _pg_admin_url() -> str | None:
    url = os.environ.get("CTDNA_TEST_PG_URL")
    if url:
        return url
    if os.environ.get("CTDNA_REQUIRE_PG") == "1":
        pytest.fail("CTDNA_REQUIRE_PG=1 but CTDNA_TEST_PG_URL is not set")
    pytest.skip("no PostgreSQL server (set CTDNA_TEST_PG_URL, see scripts/test-services.sh)")
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the real test server; dropped afterwards."""
    import sqlalchemy as sa

    admin_url = _pg_admin_url()
    assert admin_url is not None
    if admin_url.startswith("postgresql://"):
        admin_url = "postgresql+psycopg://" + admin_url[len("postgresql://"):]
    name = f"ctdna_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CTDNA_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL at {admin_url} unreachable: {exc.orig}")
        pytest.skip(f"PostgreSQL unreachable: {exc.orig}")
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on SQLite (file) and on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    from pipeline.store.repository import Store

    s = Store(db_url)
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def settings() -> object:
    from pipeline.config import load_settings

    return load_settings(env={})


@pytest.fixture
def sink() -> Iterator[object]:
    """A real SMTP server on 127.0.0.1 that fails on command (tests/faults/smtp_sink.py);
    shared by the outbox tests and the kill -9 fault-injection suite (issue #10)."""
    from tests.faults.smtp_sink import FaultySink

    s = FaultySink().start()
    try:
        yield s
    finally:
        s.stop()
