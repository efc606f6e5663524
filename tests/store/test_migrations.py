"""Schema migrations (issue #10 item 6): fresh stores, 0.1.0 stores upgraded in place, races."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from pipeline.store import migrate, models
from pipeline.store.repository import Store

MIGRATIONS = Path(migrate.__file__).parent / "migrations"


def _engine(url: str) -> sa.Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url)


def _baseline_metadata() -> sa.MetaData:
    path = MIGRATIONS / "versions" / "0001_baseline.py"
    spec = importlib.util.spec_from_file_location("baseline_0001", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._baseline_metadata()  # type: ignore[no-any-return]


def test_head_constant_matches_alembic_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [migrate.HEAD]


def test_fresh_store_is_migrated_to_head_and_matches_the_models(db_url: str) -> None:
    store = Store(db_url)
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.HEAD
        assert compare_metadata(MigrationContext.configure(conn), models.metadata) == []
    store.dispose()


def test_store_made_by_0_1_0_is_stamped_and_upgraded_in_place(db_url: str) -> None:
    engine = _engine(db_url)
    _baseline_metadata().create_all(engine)  # exactly what 0.1.0's create_all made
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(models.patients.insert().values(patient_id="P1", created_at=now))
        conn.execute(sa.text(
            "INSERT INTO alert_notifications (alert_key, ref, patient_id, kind, tier, "
            "recipients, state, attempts, created_at, content) VALUES ('k', 'R1', 'P1', "
            "'alert', 'WARNING', '[]', 'pending', 0, :now, '{}')"), {"now": now})
        conn.execute(sa.text(
            "INSERT INTO assessments (patient_id, as_of, evaluated_at, status, config_version, "
            "kb_version, pipeline_version, sample_pks, payload) VALUES ('P1', '2026-11-02', "
            ":now, 'OPTIMAL', 'c', 'k', '0.1.0', '[]', '{}')"), {"now": now})
    result = migrate.upgrade(engine)
    assert (result.before, result.after, result.stamped_baseline) == ("0001", migrate.HEAD, True)
    with engine.connect() as conn:
        row = conn.execute(sa.select(models.alert_notifications)).one()
        assert row.ref == "R1" and row.next_attempt_at is None  # data kept, column added
        # 0005: an old assessment's cadence date is unknown -> its own as_of, so the first
        # incremental run re-evaluates the patient (#11 item 2)
        old = conn.execute(sa.select(models.assessments)).one()
        assert str(old.reevaluate_on)[:10] == "2026-11-02" == str(old.as_of)[:10]
        assert conn.execute(sa.select(sa.func.count())
                            .select_from(models.pending_evaluations)).scalar() == 0
        assert compare_metadata(MigrationContext.configure(conn), models.metadata) == []
    again = migrate.upgrade(engine)
    head = migrate.HEAD
    assert (again.before, again.after, again.stamped_baseline) == (head, head, False)
    engine.dispose()


def test_partial_unversioned_schema_is_refused(tmp_path: Path) -> None:
    engine = _engine(f"sqlite:///{tmp_path / 'odd.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE patients (patient_id TEXT PRIMARY KEY)"))
    with pytest.raises(migrate.StoreError, match="some ctdna tables"):
        migrate.upgrade(engine)


def test_password_is_masked() -> None:
    masked = migrate.masked_url("postgresql+psycopg://lab:s3cret@db.example:5432/ctdna")
    assert "s3cret" not in masked and "***" in masked


_OPEN = "import sys; from pipeline.store.repository import Store; Store(sys.argv[1]).dispose()"


@pytest.mark.parametrize("rounds", [6])  # SQLite failed 1 time in 5 before the WAL retry
def test_two_concurrent_first_opens_do_not_race(db_url: str, rounds: int,
                                                tmp_path: Path) -> None:
    """Two processes opening one fresh store at once: both succeed, schema at head once."""
    for index in range(rounds):
        url = db_url
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'race{index}.sqlite'}"
        elif index:
            engine = _engine(url)  # PostgreSQL: empty the database again for the next round
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN, url],
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0], errors
        engine = _engine(url)
        with engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        engine.dispose()
