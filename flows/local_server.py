"""Prefect's temporary API server, made to start on the first try (issue #12, item 1).

Without ``PREFECT_API_URL``, Prefect starts a temporary ("ephemeral") API server in a
subprocess and waits ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` (20 s by default)
for it to answer. On a fresh machine the subprocess first compiles its imports and runs
every Prefect database migration on an empty ``PREFECT_HOME``: 25-76 s on 2 cores, so the
first ``make demo`` failed 10 times out of 10 with an "internal error". Two fixes, both
only for the temporary server (a configured server is never touched):

- the Prefect database of the ``PREFECT_HOME`` in use is migrated here, in-process and
  before the server starts, so the subprocess finds nothing left to migrate (and two
  processes never migrate one SQLite file at once: that was the "database is locked"
  start-up traceback);
- the start-up timeout is raised to :data:`EPHEMERAL_STARTUP_TIMEOUT_S` unless the user
  set one.

If the server still does not answer, :class:`pipeline.errors.OrchestratorUnavailableError`
says what to do in one line (exit status 5 at the CLI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import OrchestratorUnavailableError

#: Seconds the temporary server may take to answer (Prefect's default is 20 s; a cold start
#: measured 25-76 s on 2 cores, issue #12).
EPHEMERAL_STARTUP_TIMEOUT_S = 240
_TIMEOUT_ENV = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
_STARTUP_FAILURE = "ephemeral Prefect API server"


def uses_temporary_server() -> bool:
    """True when no Prefect API is configured, so Prefect would start a temporary server."""
    from prefect.settings import get_current_settings

    return not get_current_settings().api.url


def _migration_marker() -> Path:
    import prefect
    from prefect.settings import get_current_settings

    home = Path(get_current_settings().home).expanduser()
    return home / f".ctdna-prefect-db-migrated-{prefect.__version__}"


def migrate_prefect_database() -> None:
    """Bring the Prefect database of the current ``PREFECT_HOME`` to Prefect's head revision.

    Idempotent; a marker file per Prefect version skips the (import-heavy) check on later
    runs. Only meaningful for the temporary server's local database.
    """
    marker = _migration_marker()
    if marker.exists():
        return
    import asyncio

    from prefect.server.database import provide_database_interface

    marker.parent.mkdir(parents=True, exist_ok=True)
    # Prefect's own upgrade path (what `prefect server database upgrade` runs): Alembic in
    # an AnyIO worker thread, as its migration environment expects.
    asyncio.run(provide_database_interface().create_db())
    marker.touch()


@contextmanager
def local_prefect() -> Iterator[None]:
    """Run the enclosed flow call against a Prefect that will answer.

    With a configured API (``PREFECT_API_URL``) this does nothing. Otherwise it migrates the
    local Prefect database first and raises the temporary server's start-up timeout (only
    for this call), and turns Prefect's start-up time-out into a one-line, actionable
    :class:`~pipeline.errors.OrchestratorUnavailableError`.
    """
    if not uses_temporary_server():
        yield
        return
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    migrate_prefect_database()
    timeout = int(os.environ.get(_TIMEOUT_ENV) or EPHEMERAL_STARTUP_TIMEOUT_S)
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: timeout}):
        try:
            yield
        except RuntimeError as exc:
            if _STARTUP_FAILURE not in str(exc):
                raise
            raise OrchestratorUnavailableError(
                f"Prefect's temporary server did not start within {timeout} s; start a server "
                "(`prefect server start`) and set PREFECT_API_URL, or raise "
                f"{_TIMEOUT_ENV}") from None
