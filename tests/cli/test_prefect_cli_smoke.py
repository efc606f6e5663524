"""Prefect's own CLI against a real `prefect server start` serving ctdna (issue #12, item 2).

With prefect 3.8.8 and fastapi 0.151-0.154 every Prefect list command failed with HTTP 422
(`limit: Input should be a valid integer`): the client sends an explicit `"limit": null`
and those FastAPI releases stopped substituting the Body() default for it. This test runs
what an operator runs: a real server, `ctdna serve` in a subprocess, then `prefect
deployment ls`, `deployment run 'surveillance-run/manual'` (watched to a final state),
`flow-run ls` and `flow-run logs`. Everything runs in subprocesses with an explicit
environment (no PREFECT_* inherited), its own PREFECT_HOME and a free port.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.flow, pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent
PREFECT = str(BIN / "prefect")
CTDNA = str(BIN / "ctdna")
DEPLOYMENTS = ("surveillance-run/scheduled", "surveillance-run/manual", "reevaluate/reevaluate")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Each child leads its own process group (start_new_session): stop it and its
    # children (the server's uvicorn, serve's flow-run subprocesses) by that group only.
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Prefect server on a free port and `ctdna serve` on the demo inbox against it."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    from pipeline.demo.data import write_demo_inbox

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CTDNA_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=api,
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
               PREFECT_SERVER_EPHEMERAL_ENABLED="false", COLUMNS="200")
    smtp_port = _free_port()
    smtp = Controller(Sink(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    inbox, config = write_demo_inbox(tmp_path, date(2026, 11, 21))
    lab = yaml.safe_load(config.read_text(encoding="utf-8"))
    lab["notify"].update(delivery_retries=1, delivery_retry_delays_seconds=[0.1])
    config.write_text(yaml.safe_dump(lab), encoding="utf-8")
    env.update(CTDNA_CONFIG=str(config), CTDNA_DB_URL=f"sqlite:///{tmp_path / 'store.sqlite'}",
               CTDNA_SMTP_HOST="127.0.0.1", CTDNA_SMTP_PORT=str(smtp_port),
               CTDNA_SMTP_TLS="none", CTDNA_MAIL_FROM="ctdna@lab.example")
    logs = {name: (tmp_path / f"{name}.log").open("wb") for name in ("server", "serve")}
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=logs["server"],
                              stderr=subprocess.STDOUT, start_new_session=True)
    serve = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "prefect server did not start in 120 s"
            time.sleep(1)
        serve = subprocess.Popen([CTDNA, "serve", "--inbox", str(inbox)], env=env,
                                 stdout=logs["serve"], stderr=subprocess.STDOUT,
                                 start_new_session=True)
        yield {"env": env, "tmp": tmp_path}
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)
        smtp.stop()
        for handle in logs.values():
            handle.close()


def _prefect(ctx: dict[str, Any], *args: str, timeout: float = 150) -> str:
    done = subprocess.run([PREFECT, *args], env=ctx["env"], capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"prefect {' '.join(args)}: {done.stdout[-1500:]}" \
                                 f"{done.stderr[-1500:]}"
    # The 0.1.0 failure was "HTTP 422 ... limit: Input should be a valid integer"; a bare
    # "422" can occur inside a flow-run UUID, so look for the error itself.
    output = done.stdout + done.stderr
    assert "Unprocessable" not in output and "valid integer" not in output
    return done.stdout


def test_prefect_cli_works_against_served_deployments(served: dict[str, Any]) -> None:
    deadline = time.monotonic() + 90
    while True:  # `ctdna serve` registers its deployments a few seconds after start
        listing = _prefect(served, "deployment", "ls")
        if all(name in listing for name in DEPLOYMENTS):
            break
        serve_log = (served["tmp"] / "serve.log").read_text(errors="replace")
        assert time.monotonic() < deadline, f"deployments not registered:\n{serve_log[-2000:]}"
        time.sleep(3)

    ran = _prefect(served, "deployment", "run", "surveillance-run/manual", "--watch",
                   "--watch-interval", "2", "--watch-timeout", "120")
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", ran)
    assert run_id, ran
    assert "COMPLETED" in ran.upper(), ran

    runs = _prefect(served, "flow-run", "ls")
    assert "surveillance-run" in runs and "COMPLETED" in runs.upper()

    logs = _prefect(served, "flow-run", "logs", run_id.group(1))
    assert "surveillance" in logs.lower()
    assert "Finished in state Completed" in logs or "Completed" in logs

    for extra in (("flow", "ls"), ("work-pool", "ls"), ("artifact", "ls")):
        _prefect(served, *extra)
