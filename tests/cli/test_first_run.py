"""The first run on a fresh machine (issue #12, item 1): a brand-new PREFECT_HOME, no server.

These run the real `ctdna` console script in a subprocess with a PREFECT_HOME that has never
been used, exactly as a new user's first `make demo` does: Prefect's temporary server must
start on the first try (its database is migrated before it starts, and it gets a start-up
timeout of its own), and when it cannot start the user gets one actionable line and exit 5.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import EXIT_ORCHESTRATOR_UNAVAILABLE

pytestmark = pytest.mark.flow

CTDNA = str(Path(sys.executable).with_name("ctdna"))


def _fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "CTDNA_"))}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", **extra)
    return env


def test_demo_succeeds_first_time_with_a_new_prefect_home(tmp_path: Path) -> None:
    done = subprocess.run([CTDNA, "demo", "--workdir", str(tmp_path / "demo")],
                          env=_fresh_env(tmp_path), capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    # one digest per patient with news (issue #14): DEMO-001, -002, -003
    assert "alert notifications: 3 new, 3 sent, 0 deferred" in done.stdout
    assert "Traceback" not in done.stderr and "database is locked" not in done.stderr
    assert len(list((tmp_path / "demo" / "outbox").glob("*.eml"))) == 3
    assert (tmp_path / "demo" / "reports" / "cohort.html").is_file()


def test_server_that_cannot_start_is_one_actionable_line(tmp_path: Path) -> None:
    # A 1-second budget cannot be met by any start: the user must get the fix, not a
    # traceback or "internal error ... report it".
    env = _fresh_env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")
    done = subprocess.run([CTDNA, "demo", "--workdir", str(tmp_path / "demo")], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == EXIT_ORCHESTRATOR_UNAVAILABLE, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("ctdna: error:")]
    assert len(errors) == 1
    assert "PREFECT_API_URL" in errors[0] and "prefect server start" in errors[0]
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_serve_refuses_without_a_prefect_server(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    done = subprocess.run([CTDNA, "serve", "--inbox", str(inbox)], env=_fresh_env(tmp_path),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_ORCHESTRATOR_UNAVAILABLE
    assert "prefect server start" in done.stderr and "PREFECT_API_URL" in done.stderr
    assert not (tmp_path / "prefect-home").exists() or not any(
        (tmp_path / "prefect-home").glob("*.db"))
