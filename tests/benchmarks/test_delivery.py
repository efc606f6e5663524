"""Alert delivery at cohort size (issue #11 item 3: "105 alert emails in <= 2 s").

105 patients, each with a FAILURE alert, a WARNING alert and a status change: 105 digests
(315 ledger rows). Timed: ``deliver_pending`` alone (claims, rendering, MIME, transport,
ledger writes), against a real aiosmtpd server in its own process on 127.0.0.1 and against
the ``.eml`` outbox. The inline chart is the real trend-chart PNG of a patient, rendered
once before timing: rendering is the report step's (one render per patient per run, shared
with the email), not the delivery's. Figures go to docs/performance.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notify.helpers import (
    add_patients,
    assessment,
    free_port,
    make_settings,
    resistance_alert,
    smtp_settings,
)

pytestmark = pytest.mark.benchmark
N = 105
SERVER = """
import sys, time
from aiosmtpd.controller import Controller
class Count:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
c = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
while True:
    time.sleep(60)
"""


@pytest.fixture
def relay() -> Iterator[int]:
    """A real SMTP server (aiosmtpd) in its own process, so it does not share our GIL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _chart_png(tmp_path: Path) -> bytes:
    """One real trend chart (the report's renderer), rendered before timing."""
    from pipeline.notify.charts import store_chart_provider
    from pipeline.store.repository import Store
    from tests.notify.test_chart import _store_with_draws

    store = Store(f"sqlite:///{tmp_path / 'chart.sqlite'}")
    try:
        png = store_chart_provider(_store_with_draws(store.engine))("PT-0001")
    finally:
        store.dispose()
    assert png is not None
    return png


def _ledger(tmp_path: Path, settings: object) -> object:
    from pipeline.notify import enqueue_for_assessment
    from pipeline.store.repository import Store

    store = Store(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ids = [f"PT-{i:04d}" for i in range(N)]
    add_patients(store.engine, *[(pid, "thoracic-a") for pid in ids])
    warn = resistance_alert("S-102", tier="WARNING", rule_id="P4", gene="KRAS",
                            alteration="G12C")
    with store.engine.begin() as conn:
        for pid in ids:
            enqueue_for_assessment(conn, assessment(patient_id=pid, alerts=[
                resistance_alert("S-101"), warn]), None, "thoracic-a", settings)
    return store


@pytest.mark.parametrize("mode", ["smtp", "eml"])
@pytest.mark.parametrize("chart", [True, False], ids=["chart", "no-chart"])
def test_105_alert_emails(tmp_path: Path, request: pytest.FixtureRequest, benchmark,
                          mode: str, chart: bool) -> None:
    from pipeline.notify import deliver_pending, transport_from_settings

    if mode == "smtp":
        settings = smtp_settings(tmp_path, request.getfixturevalue("relay"))
    else:
        settings = make_settings(tmp_path)
    png = _chart_png(tmp_path) if chart else None
    store = _ledger(tmp_path, settings)
    transport = transport_from_settings(settings)
    cpu: list[float] = []

    def deliver() -> int:
        started = time.process_time()
        report = deliver_pending(store.engine, settings, transport, "bench",  # type: ignore[attr-defined]
                                 chart_for=(lambda _pid: png) if png else None)
        cpu.append(time.process_time() - started)
        return len(report.sent)

    sent = benchmark.pedantic(deliver, rounds=1, iterations=1)
    assert sent == N
    benchmark.extra_info.update(emails=sent, cpu_seconds=cpu[0])
    size = f"{len(png) // 1024} kB chart" if png else "no chart"
    print(f"\n{mode}, {size}: {sent} digests, process CPU {cpu[0]:.2f} s")
    store.dispose()  # type: ignore[attr-defined]
