"""Fixtures of the acknowledgement/escalation tests: the real store (SQLite file and the real
PostgreSQL server), a real SMTP server and the real acknowledgement HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

# the real SMTP server fixture of the notification tests (one definition)
from tests.notify.conftest import smtp_server  # noqa: F401

#: A secret for tests only (>= 16 bytes); production reads CTDNA_ACK_SECRET or a block.
SECRET = "test-ack-secret-0123456789abcdef"
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def ack_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTDNA_ACK_SECRET", SECRET)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    from pipeline.store.repository import Store

    store = Store(db_url)
    yield store.engine
    store.dispose()


class Clock:
    """An injectable clock for the HTTP server (links expire)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def ack_server_factory(clock: Clock) -> Iterator[object]:
    """Start the real acknowledgement server on 127.0.0.1 (a free port) for an engine."""
    from pipeline.alerts.server import AckServer

    servers: list[AckServer] = []

    def start(engine: sa.Engine, settings: object) -> AckServer:
        server = AckServer(("127.0.0.1", 0), engine, settings, clock=clock)  # type: ignore[arg-type]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
