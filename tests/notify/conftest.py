"""Fixtures of the notification tests: a real SQLite store, real settings, a real SMTP server.

``engine`` is the extension point for the shared PostgreSQL fixture: every ledger test takes
an ``engine`` with the full schema created by ``pipeline.store.models.metadata``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.config import Settings

from .helpers import SmtpServer, make_settings


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """The real schema on an SQLite file and on the real PostgreSQL server (``db_url``)."""
    from pipeline.store.repository import Store

    store = Store(db_url)  # same engine set-up as production (SQLite pragmas, psycopg URL)
    yield store.engine
    store.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, report_base_url="https://lis.example/ctdna/")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 and a free port (engineering-notes.md section 4.4)."""
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def webhook() -> Iterator[object]:
    """A real HTTP receiver on 127.0.0.1 (tests/notify/webhook_receiver.py)."""
    from .webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
