"""Issue #12 item 1: the first run works from a brand-new PREFECT_HOME, or says why in one line.

These run ``ctdna`` as a subprocess with a clean environment (no PREFECT_API_URL, an empty
PREFECT_HOME), exactly as a new user's first command; no test harness is involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import EXIT_PREFECT_UNAVAILABLE

pytestmark = pytest.mark.flow

CTDNA = [sys.executable, "-m", "pipeline.cli"]


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CTDNA_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra)
    return env


@pytest.mark.timeout(900)  # migrations + server start took ~130 s on a loaded 2-vCPU box
def test_demo_first_run_from_clean_prefect_home(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    assert not home.exists()
    done = subprocess.run([*CTDNA, "demo", "--workdir", str(tmp_path / "demo")],
                          env=_clean_env(home), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert any((tmp_path / "demo").rglob("*.html")), "the demo wrote no report"


def test_temporary_server_too_slow_is_one_line_with_its_own_exit_code(tmp_path: Path) -> None:
    # 1 s cannot be enough for a server that must first import Prefect and migrate its DB.
    env = _clean_env(tmp_path / "prefect-home",
                     PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    done = subprocess.run([*CTDNA, "demo", "--workdir", str(tmp_path / "demo")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == EXIT_PREFECT_UNAVAILABLE
    errors = [line for line in done.stderr.splitlines() if line.startswith("ctdna: error")]
    assert len(errors) == 1 and "prefect server start" in errors[0]
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in errors[0]
    assert "Traceback" not in done.stderr


def test_serve_refuses_without_api_url(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    done = subprocess.run([*CTDNA, "serve", "--inbox", str(inbox)],
                          env=_clean_env(tmp_path / "prefect-home"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == EXIT_PREFECT_UNAVAILABLE
    assert "PREFECT_API_URL" in done.stderr and "prefect server start" in done.stderr
    assert "Traceback" not in done.stderr
