"""``ctdna ack-server`` as a lab starts it: a real subprocess on 127.0.0.1 that answers, and a
one-line refusal (exit 2) without a secret or without a store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipeline.store.repository import Store
from tests.notify.helpers import free_port

from .conftest import SECRET

CTDNA = [sys.executable, "-m", "pipeline.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CTDNA_DEBUG", "CTDNA_ACK_SECRET")}
    return {**env, **extra}


def test_ack_server_serves_and_stops(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    Store(url).dispose()  # an existing store
    port = free_port()
    proc = subprocess.Popen([*CTDNA, "ack-server", "--port", str(port), "--db", url],
                            env=_env(CTDNA_ACK_SECRET=SECRET), stderr=subprocess.PIPE,
                            text=True)
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        assert body == "ok"
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"listening on http://127.0.0.1:{port}" in err


def test_ack_server_refuses_without_secret_or_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    missing = subprocess.run([*CTDNA, "ack-server", "--db", url], env=_env(),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no ctdna store there" in missing.stderr
    Store(url).dispose()
    no_secret = subprocess.run([*CTDNA, "ack-server", "--db", url], env=_env(),
                               capture_output=True, text=True, timeout=60)
    assert no_secret.returncode == 2
    assert no_secret.stderr.strip() == (
        "ctdna: error: field notify.ack: no acknowledgement-link secret: set CTDNA_ACK_SECRET "
        "or name a Prefect Secret block in notify.ack.secret_block")
