"""One surveillance-type run at a time, whichever deployment started it (issue #12 item 3).

Per-deployment concurrency limits (the scheduled, manual and re-evaluation deployments
each had their own limit of 1) let a manual re-run overlap a scheduled run. Every run
instead holds the single slot of one Prefect global concurrency limit, created (or reset
to 1) on first use; a second run waits for the slot. Operators see it in the UI under
Concurrency -> Global and with ``prefect gcl inspect ctdna-surveillance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

LIMIT_NAME = "ctdna-surveillance"


def ensure_limit() -> None:
    """Create the global concurrency limit with one slot if missing (or reset it to one)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectAlreadyExists, PrefectHTTPStatusError

    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(LIMIT_NAME, 1)
        except (ObjectAlreadyExists, PrefectHTTPStatusError) as exc:
            # Prefect's upsert is read-then-create, not atomic: two runs starting together
            # on a fresh server both see "missing" and the second create gets 409 Conflict
            # (seen in clean-clone CI). The limit now exists; make sure it has one slot.
            status = getattr(getattr(exc, "response", None), "status_code", 409)
            if status != 409:
                raise
            client.upsert_global_concurrency_limit_by_name(LIMIT_NAME, 1)


@contextmanager
def one_run_at_a_time(enabled: bool = True) -> Iterator[None]:
    """Hold the single slot of ``ctdna-surveillance`` for the duration of the block.

    ``enabled`` is ``schedule.exclusive_runs`` of the config; when False the block runs
    without the slot (each deployment still has its own limit of 1, flows/serve.py).
    """
    from prefect.concurrency.sync import concurrency

    if not enabled:
        yield
        return
    ensure_limit()
    # The holder renews its lease while it runs; a killed run's slot is freed when its
    # lease lapses, so a short lease lets the re-run after a crash start within a minute
    # (default 300 s would hold crash recovery back five minutes).
    with concurrency(LIMIT_NAME, occupy=1, strict=True, lease_duration=60):
        yield
