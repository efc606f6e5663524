"""``ctdna doctor`` against real services: PostgreSQL, an aiosmtpd relay, closed ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.errors import EXIT_CHECKS_FAILED
from tests.notify.helpers import SmtpServer

CTDNA = [sys.executable, "-m", "pipeline.cli"]


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("CTDNA_", "PREFECT_API_URL"))}
    full.update(env)
    return subprocess.run([*CTDNA, "doctor", *args], capture_output=True, text=True, env=full,
                          timeout=120)


def lines_by_check(stdout: str) -> dict[str, str]:
    """``{check name: status}`` from the doctor's table (``STATUS  name  detail``)."""
    table = {}
    for line in stdout.splitlines():
        status, rest = line[:4].strip(), line[6:]
        name = rest.split("  ")[0].strip()
        table[name] = status
    return table


@pytest.fixture
def smtp() -> SmtpServer:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.mark.postgres
def test_all_ok_on_migrated_postgres_with_a_real_smtp_relay(pg_url: str,
                                                            smtp: SmtpServer) -> None:
    from pipeline.store.repository import Store

    Store(pg_url).dispose()  # a store with the current schema
    out = doctor("--db", pg_url, env={"CTDNA_SMTP_HOST": "127.0.0.1",
                                      "CTDNA_SMTP_PORT": str(smtp.port),
                                      "CTDNA_SMTP_TLS": "none"})
    assert out.returncode == 0, out.stdout + out.stderr
    table = lines_by_check(out.stdout)
    assert table == {"config": "OK", "store": "OK", "prefect": "INFO", "smtp": "OK",
                     "profiles": "OK", "knowledge base": "OK"}
    assert "ephemeral mode" in out.stdout and f"127.0.0.1:{smtp.port} answered EHLO" in out.stdout
    password = sa.engine.make_url(pg_url).password
    if password:
        assert password not in out.stdout + out.stderr  # URL shown with the password hidden


@pytest.mark.postgres
def test_empty_postgres_database_is_not_migrated_and_stays_empty(pg_url: str) -> None:
    out = doctor("--db", pg_url, env={})
    assert out.returncode == EXIT_CHECKS_FAILED
    assert lines_by_check(out.stdout)["store"] == "FAIL"
    assert "holds no ctdna store" in out.stdout
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        assert sa.inspect(engine).get_table_names() == []  # the doctor created nothing
    finally:
        engine.dispose()
    assert "1 check(s) failed" in out.stderr and "Traceback" not in out.stderr


def test_every_unreachable_service_is_a_fail_line_exit_4(tmp_path: Path) -> None:
    dead = closed_port()
    out = doctor("--db", f"postgresql://ctdna:secret-pw@127.0.0.1:{dead}/ctdna",
                 env={"CTDNA_SMTP_HOST": "127.0.0.1", "CTDNA_SMTP_PORT": str(dead),
                      "CTDNA_SMTP_TLS": "none",
                      "PREFECT_API_URL": f"http://127.0.0.1:{dead}/api"})
    assert out.returncode == EXIT_CHECKS_FAILED, out.stdout + out.stderr
    table = lines_by_check(out.stdout)
    assert table["store"] == table["smtp"] == table["prefect"] == "FAIL"
    assert table["profiles"] == table["knowledge base"] == "OK"
    assert "secret-pw" not in out.stdout + out.stderr
    assert "3 check(s) failed" in out.stderr and "Traceback" not in out.stdout + out.stderr


def test_starttls_configured_but_not_offered_fails(smtp: SmtpServer, tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite"
    from pipeline.store.repository import Store

    Store(f"sqlite:///{db}").dispose()
    out = doctor("--db", f"sqlite:///{db}", env={
        "CTDNA_SMTP_HOST": "127.0.0.1", "CTDNA_SMTP_PORT": str(smtp.port),
        "CTDNA_SMTP_TLS": "starttls"})
    assert out.returncode == EXIT_CHECKS_FAILED
    assert lines_by_check(out.stdout) == {"config": "OK", "store": "OK", "prefect": "INFO",
                                          "smtp": "FAIL", "profiles": "OK",
                                          "knowledge base": "OK"}
    assert "does not offer STARTTLS" in out.stdout


def test_missing_sqlite_store_fails_and_is_not_created(tmp_path: Path) -> None:
    db = tmp_path / "forgotten.sqlite"
    out = doctor("--db", f"sqlite:///{db}", env={})
    assert out.returncode == EXIT_CHECKS_FAILED
    assert "no store at" in out.stdout and not db.exists()
    assert lines_by_check(out.stdout)["smtp"] == "INFO"  # .eml outbox mode
    assert ".eml outbox mode" in out.stdout


def test_broken_config_is_a_fail_line_not_a_crash(tmp_path: Path) -> None:
    bad = tmp_path / "lab.yaml"
    bad.write_text("rules:\n  confirm_min_dayz: 3\n", encoding="utf-8")
    out = doctor("--db", f"sqlite:///{tmp_path / 'x.sqlite'}", "--config", str(bad), env={})
    assert out.returncode == EXIT_CHECKS_FAILED
    table = lines_by_check(out.stdout)
    assert table["config"] == "FAIL" and table["smtp"] == "FAIL"
    assert "confirm_min_dayz" in out.stdout and "Traceback" not in out.stderr


@pytest.mark.flow
def test_prefect_api_ok_against_a_real_prefect_server(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The Prefect test harness runs a real API server; the doctor's check must see it."""
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from pipeline.cli.doctor import check_prefect

    with prefect_test_harness(server_startup_timeout=180):
        api = PREFECT_API_URL.value()
        assert api
        (check,) = check_prefect({"PREFECT_API_URL": api})
    assert (check.name, check.status) == ("prefect", "OK"), check.detail
