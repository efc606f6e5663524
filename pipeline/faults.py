"""Crash points for fault-injection tests (a test hook, documented in docs/deployment.md).

When the environment variable ``CTDNA_FAULT_AT`` names a point, the process kills itself
with ``SIGKILL`` there -- exactly what a power cut, an OOM kill or ``kill -9`` does: no
``finally``, no rollback beyond what the database does itself. The fault-injection suite
(tests/faults) uses it to prove that a plain re-run after a crash at any point delivers
every alert exactly once (issue #10 "Done when"). Unset (always, in production), a fault
point costs one dictionary look-up.

Points, in run order: ``mid_ingest`` (after the first sample of a manifest is stored),
``after_ingest``, ``after_evaluate``, ``after_reports``, ``after_enqueue``, ``after_send``
(a message accepted by the relay, not yet marked sent), ``after_deliver``.
"""

from __future__ import annotations

import os
import signal

ENV = "CTDNA_FAULT_AT"
POINTS = ("mid_ingest", "after_ingest", "after_evaluate", "after_reports", "after_enqueue",
          "after_send", "after_deliver")


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL when ``CTDNA_FAULT_AT`` equals ``name`` (tests only)."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
