"""Fault-injection suite (issue #10 "Done when"): crashes, a faulty relay, concurrent runs.

Real ``ctdna run`` subprocesses (``python -m pipeline.cli run``) killed with SIGKILL at each
stage through the documented test hook ``CTDNA_FAULT_AT`` (pipeline/faults.py), a real
SMTP sink on 127.0.0.1 that refuses, stores-then-answers-500 and accepts, and two
concurrent first runs on SQLite and on PostgreSQL. The invariant checked throughout: 0
lost alerts (every notification the data call for is in the ledger and was stored by the
relay) and no alert under two different Message-IDs.

To stay within a few minutes the subprocesses share the session's Prefect server (the
harness of tests/flows/conftest.py, via ``PREFECT_API_URL``) instead of each starting an
ephemeral one, and the crash stages are chained on one store: each run crashes at the next
stage, leaving the state the previous crash left plus its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.faults.smtp_sink import FaultySink

pytestmark = pytest.mark.flow

REPO = Path(__file__).resolve().parents[2]
KILLED = -signal.SIGKILL


@pytest.fixture
def lab(tmp_path: Path, sink: FaultySink) -> dict[str, Any]:
    from prefect.settings import get_current_settings

    from pipeline.demo.data import write_demo_inbox

    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["notify"].update(delivery_retries=0, retry_backoff_minutes=[0])
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CTDNA_", "PREFECT_API_URL"))}
    env.update(
        PREFECT_API_URL=str(get_current_settings().api.url),  # the session's harness
        PREFECT_LOGGING_TO_API_ENABLED="false",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        CTDNA_SMTP_HOST="127.0.0.1", CTDNA_SMTP_PORT=str(sink.port), CTDNA_SMTP_TLS="none",
        CTDNA_MAIL_FROM="ctdna@lab.example", PYTHONPATH=str(REPO),
    )
    return {"inbox": inbox, "config": config, "env": env, "tmp": tmp_path}


def _start(lab: dict[str, Any], db_url: str, fault: str | None = None) -> subprocess.Popen:
    env = dict(lab["env"])
    if fault:
        env["CTDNA_FAULT_AT"] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--inbox", str(lab["inbox"]),
         "--db", db_url, "--config", str(lab["config"]),
         "--reports", str(lab["tmp"] / "reports")],
        env=env, cwd=lab["tmp"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(lab: dict[str, Any], db_url: str, fault: str | None = None) -> tuple[int, str]:
    started = time.monotonic()
    proc = _start(lab, db_url, fault)
    out, err = proc.communicate(timeout=240)
    print(f"ctdna run (fault {fault}): exit {proc.returncode} in "
          f"{time.monotonic() - started:.1f} s")
    return proc.returncode, out + err


def _assert_every_alert_exactly_once(db_url: str, sink: FaultySink, config: Path) -> int:
    """0 lost, none under two Message-IDs; returns the number of messages (digests)."""
    from pipeline.config import load_settings
    from pipeline.knowledge import load_knowledge_base
    from pipeline.notify import enqueue_for_assessment, ledger_rows
    from pipeline.service import evaluate_patients
    from pipeline.store.repository import Store

    store = Store(db_url)
    try:
        rows = ledger_rows(store.engine)
        assert rows and {r["state"] for r in rows} == {"sent"}, \
            sorted((r["state"], r["last_error"]) for r in rows)
        stored = sink.by_ref()
        # every ledger row reached the relay, each under exactly its own Message-ID
        assert {r["ref"]: {r["message_id"]} for r in rows} == stored
        # nothing the data call for is missing from the ledger: enqueueing a fresh
        # evaluation of every patient creates no new row (rolled back)
        settings = load_settings(config, env={})
        results = evaluate_patients(store, settings, load_knowledge_base(), None,
                                    persist=False)
        with store.engine.connect() as conn:
            tx = conn.begin()
            missing = [i for r in results for i in enqueue_for_assessment(
                conn, r.assessment, None, r.care_team, settings)]
            tx.rollback()
        assert missing == []
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM pending_evaluations")
                                ).scalar() == 0
        return len({r["message_id"] for r in rows})  # one digest per patient (#14)
    finally:
        store.dispose()


@pytest.mark.timeout(900)
def test_kill_at_every_stage_then_plain_rerun_delivers_each_alert_once(
        lab: dict[str, Any], sink: FaultySink) -> None:
    db_url = f"sqlite:///{lab['tmp'] / 'store.sqlite'}"
    for stage in ("mid_ingest", "after_ingest", "after_evaluate", "after_reports",
                  "after_enqueue"):
        code, log = _run(lab, db_url, stage)
        assert code == KILLED, (stage, code, log[-2000:])
    assert sink.handler.stored == []

    # relay down: everything valid processed, nothing delivered -> exit 3, not 0
    sink.refuse()
    code, log = _run(lab, db_url)
    assert code == 3, log[-2000:]
    assert "deferred" in log and sink.handler.stored == []

    # relay back, but it stores the first message and answers 500; the run is killed right
    # after the next accepted message, before marking it sent
    sink.start()
    sink.handler.script = ["store-then-500"]
    code, log = _run(lab, db_url, "after_send")
    assert code == KILLED, log[-2000:]
    assert len(sink.handler.stored) == 2

    code, log = _run(lab, db_url, "after_deliver")  # recovers the 'sending' row, then dies
    assert code == KILLED, log[-2000:]
    code, log = _run(lab, db_url)  # plain re-run: nothing new, success
    assert code == 0, log[-2000:]

    n = _assert_every_alert_exactly_once(db_url, sink, lab["config"])
    assert n >= 3  # the lab's patients with alerts, one digest each
    # only the two interrupted messages were stored twice (same Message-ID), all others once
    assert len(sink.handler.stored) - len(sink.ops_messages()) == n + 2


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_two_concurrent_first_runs_store_once_and_mail_once(
        lab: dict[str, Any], sink: FaultySink, backend: str,
        request: pytest.FixtureRequest) -> None:
    db_url = (f"sqlite:///{lab['tmp'] / 'race.sqlite'}" if backend == "sqlite"
              else str(request.getfixturevalue("pg_url")))
    procs = [_start(lab, db_url) for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outputs]
    n = _assert_every_alert_exactly_once(db_url, sink, lab["config"])
    assert len(sink.digests()) == n  # no re-sends at all: one copy per digest


def test_rejected_input_exits_2_and_the_rest_is_delivered(lab: dict[str, Any],
                                                          sink: FaultySink) -> None:
    (lab["inbox"] / "batch-001" / "D004-W6.vcf").write_text(
        "##fileformat=VCFv4.2\nthis is not a vcf\n", encoding="utf-8")
    db_url = f"sqlite:///{lab['tmp'] / 'store.sqlite'}"
    code, log = _run(lab, db_url)
    assert code == 2, log[-2000:]
    assert "1 rejected" in log and sink.by_ref()
