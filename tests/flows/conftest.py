"""Flow tests: one session-scoped Prefect test harness and a real SMTP server on 127.0.0.1.

The harness takes 15-25 s to start on 2 vCPU (engineering-notes §1.10), so it is started
once, and only for the tests in this folder; everything else is tested as plain functions.
"""

from __future__ import annotations

import email
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(scope="session", autouse=True)
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@dataclass
class RecordingHandler:
    """aiosmtpd handler that keeps every accepted message; can refuse with 451 (outage)."""

    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 temporary failure (simulated outage)"
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos),
                                  email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[RecordingHandler, int]]:
    from aiosmtpd.controller import Controller

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def lab_env(tmp_path: Path, smtp_server: tuple[RecordingHandler, int],
            monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A demo inbox, a lab config with care teams, SMTP on the local server, SQLite store."""
    from datetime import date

    from pipeline.demo.data import write_demo_inbox

    handler, port = smtp_server
    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    lab = yaml.safe_load(config.read_text(encoding="utf-8"))
    # no 70 s waits; no backoff between the back-to-back runs of a test
    lab["notify"].update(delivery_retries=1, delivery_retry_delays_seconds=[0.1],
                         retry_backoff_minutes=[0])
    config.write_text(yaml.safe_dump(lab), encoding="utf-8")
    monkeypatch.setenv("CTDNA_CONFIG", str(config))
    monkeypatch.setenv("CTDNA_DB_URL", f"sqlite:///{tmp_path / 'store.sqlite'}")
    monkeypatch.setenv("CTDNA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CTDNA_SMTP_PORT", str(port))
    monkeypatch.setenv("CTDNA_SMTP_TLS", "none")
    monkeypatch.setenv("CTDNA_MAIL_FROM", "ctdna@lab.example")
    return {"inbox": inbox, "config": config, "handler": handler, "port": port,
            "tmp": tmp_path}
